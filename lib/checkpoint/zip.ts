/**
 * Minimal zip reader for torch.save archives: finds the central directory from the end of the file (EOCD,
 * ZIP64 locator and record), lists entries (ZIP64 extra fields included), and locates an entry's data via its
 * local header. Only the directory and the headers are read; entry data stays on disk.
 */
import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { corrupt, crc32, readExact, readExactSync } from './io.js';

export interface ZipEntry {
  name: string;
  /** The name bytes as stored, to compare with the local header. */
  rawName: Buffer;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

export interface ZipDirectory {
  entries: Map<string, ZipEntry>;
  /** Where the central directory starts: every entry's data must end before it. */
  centralDirectoryOffset: number;
  zip64: boolean;
}

/** A central directory larger than this is refused (XXLarge's is ~75 KB; 16 MB is ~150k entries). */
export const MAX_CENTRAL_DIRECTORY = 16 * 1024 * 1024;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const EOCD_SIZE = 22;
const LOCATOR_SIZE = 20;
const ZIP64_EOCD_SIZE = 56;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;

function u64(buf: Buffer, at: number, file: string, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(file, `zip ${what} ${v} is too large`);
  return Number(v);
}

/** Finds the end-of-central-directory record and the central directory it describes, and parses it. */
export async function readZipDirectory(handle: FileHandle, file: string, size: number): Promise<ZipDirectory> {
  if (size < EOCD_SIZE) throw corrupt(file, `zip file is ${size} bytes, too short for an end-of-central-directory record`);
  const tailLength = Math.min(size, EOCD_SIZE + U16_MAX + LOCATOR_SIZE);
  const tailStart = size - tailLength;
  const tail = await readExact(handle, file, tailStart, tailLength, 'zip trailer');

  // The EOCD is the last signature whose comment exactly reaches the end; else the last one that fits.
  let eocd = -1;
  for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== SIG_EOCD) continue;
    const end = i + EOCD_SIZE + tail.readUInt16LE(i + 20);
    if (end === tailLength) {
      eocd = i;
      break;
    }
    if (end < tailLength && eocd < 0) eocd = i;
  }
  if (eocd < 0) throw corrupt(file, 'no zip end-of-central-directory record (not a zip file, or truncated)');
  const eocdAbs = tailStart + eocd;
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) throw corrupt(file, 'multi-disk (split) zip archives are not supported');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let cdLimit = eocdAbs; // the directory must end before the record that describes it
  let zip64 = false;

  if (eocd >= LOCATOR_SIZE && tail.readUInt32LE(eocd - LOCATOR_SIZE) === SIG_ZIP64_LOCATOR) {
    zip64 = true;
    const loc = eocd - LOCATOR_SIZE;
    if (tail.readUInt32LE(loc + 4) !== 0 || tail.readUInt32LE(loc + 16) > 1) throw corrupt(file, 'multi-disk (split) zip archives are not supported');
    const recordAt = u64(tail, loc + 8, file, 'ZIP64 end record offset');
    if (recordAt + ZIP64_EOCD_SIZE > eocdAbs - LOCATOR_SIZE) throw corrupt(file, `ZIP64 end record offset ${recordAt} is out of range`);
    const rec = await readExact(handle, file, recordAt, ZIP64_EOCD_SIZE, 'ZIP64 end record');
    if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw corrupt(file, `no ZIP64 end-of-central-directory record at byte ${recordAt}`);
    if (rec.readUInt32LE(16) !== 0 || rec.readUInt32LE(20) !== 0) throw corrupt(file, 'multi-disk (split) zip archives are not supported');
    count = u64(rec, 32, file, 'entry count');
    cdSize = u64(rec, 40, file, 'central directory size');
    cdOffset = u64(rec, 48, file, 'central directory offset');
    cdLimit = recordAt;
  } else if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
    throw corrupt(file, 'zip end record needs ZIP64 values but the ZIP64 locator is missing');
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY) throw corrupt(file, `zip central directory of ${cdSize} bytes exceeds the ${MAX_CENTRAL_DIRECTORY}-byte limit`);
  if (cdOffset + cdSize > cdLimit) throw corrupt(file, `zip central directory (${cdSize} bytes at ${cdOffset}) runs past its end record`);
  if (count * CENTRAL_SIZE > cdSize) throw corrupt(file, `zip claims ${count} entries but its central directory is only ${cdSize} bytes`);

  const cd =
    cdOffset >= tailStart ? tail.subarray(cdOffset - tailStart, cdOffset - tailStart + cdSize) : await readExact(handle, file, cdOffset, cdSize, 'zip central directory');
  return { entries: parseCentralDirectory(cd, count, file), centralDirectoryOffset: cdOffset, zip64 };
}

function parseCentralDirectory(cd: Buffer, count: number, file: string): Map<string, ZipEntry> {
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + CENTRAL_SIZE > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw corrupt(file, `zip central directory entry ${i} is malformed`);
    const flags = cd.readUInt16LE(p + 8);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const end = p + CENTRAL_SIZE + nameLength + extraLength + commentLength;
    if (end > cd.length) throw corrupt(file, `zip central directory entry ${i} runs past the directory`);
    const rawName = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLength);
    const name = rawName.toString(flags & 0x800 ? 'utf8' : 'latin1');
    if (flags & 1) throw corrupt(file, `zip entry ${name} is encrypted`);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    let compressedSize = cd.readUInt32LE(p + 20);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const disk = cd.readUInt16LE(p + 34);
    // ZIP64 extra: 8-byte values, in this order, for exactly the fields saturated in the fixed header.
    const extra = cd.subarray(p + CENTRAL_SIZE + nameLength, p + CENTRAL_SIZE + nameLength + extraLength);
    const z64 = findExtra(extra, 0x0001, file, name);
    let q = 0;
    const take = (what: string): number => {
      if (!z64 || q + 8 > z64.length) throw corrupt(file, `zip entry ${name} lacks the ZIP64 ${what}`);
      const v = u64(z64, q, file, `${what} of ${name}`);
      q += 8;
      return v;
    };
    if (uncompressedSize === U32_MAX) uncompressedSize = take('uncompressed size');
    if (compressedSize === U32_MAX) compressedSize = take('compressed size');
    if (localHeaderOffset === U32_MAX) localHeaderOffset = take('local header offset');
    let diskNumber = disk;
    if (disk === U16_MAX) {
      if (!z64 || q + 4 > z64.length) throw corrupt(file, `zip entry ${name} lacks the ZIP64 disk number`);
      diskNumber = z64.readUInt32LE(q);
    }
    if (diskNumber !== 0) throw corrupt(file, `zip entry ${name} lives on another disk (split archives are not supported)`);
    if (entries.has(name)) throw corrupt(file, `zip has two entries named ${name}`);
    entries.set(name, {
      name,
      rawName,
      method: cd.readUInt16LE(p + 10),
      flags,
      crc32: cd.readUInt32LE(p + 16),
      compressedSize,
      uncompressedSize,
      localHeaderOffset,
    });
    p = end;
  }
  return entries;
}

/** Returns the data of extra-field block `id`, or undefined; malformed block lists are corrupt. */
function findExtra(extra: Buffer, id: number, file: string, name: string): Buffer | undefined {
  let p = 0;
  let found: Buffer | undefined;
  while (p + 4 <= extra.length) {
    const blockId = extra.readUInt16LE(p);
    const length = extra.readUInt16LE(p + 2);
    if (p + 4 + length > extra.length) throw corrupt(file, `zip entry ${name} has a malformed extra field`);
    if (blockId === id && !found) found = extra.subarray(p + 4, p + 4 + length);
    p += 4 + length;
  }
  return found;
}

/**
 * Reads `entry`'s local header and returns the absolute offset of its data, checked against the directory.
 * Synchronous on purpose: a checkpoint needs hundreds of these tiny reads, and a pread costs ~10x less CPU
 * than an async FileHandle read (they block only as long as those few-hundred-byte reads take).
 */
export function entryDataOffset(fd: number, file: string, dir: ZipDirectory, entry: ZipEntry): number {
  const limit = dir.centralDirectoryOffset;
  const at = entry.localHeaderOffset;
  const fixed = LOCAL_SIZE + entry.rawName.length;
  if (at + fixed > limit) throw corrupt(file, `zip entry ${entry.name}: local header offset ${at} is out of range`);
  // One read usually covers the header, name and extra field (torch pads with an extra field to align data to 64).
  let head = readExactSync(fd, file, at, Math.min(fixed + HEADER_SLACK, limit - at), `local header of ${entry.name}`);
  if (head.readUInt32LE(0) !== SIG_LOCAL) throw corrupt(file, `zip entry ${entry.name}: no local header at byte ${at}`);
  const nameLength = head.readUInt16LE(26);
  const extraLength = head.readUInt16LE(28);
  const headerLength = LOCAL_SIZE + nameLength + extraLength;
  if (nameLength !== entry.rawName.length || !head.subarray(LOCAL_SIZE, LOCAL_SIZE + nameLength).equals(entry.rawName)) {
    throw corrupt(file, `zip entry ${entry.name}: local header names a different file`);
  }
  if (head.readUInt16LE(8) !== entry.method) throw corrupt(file, `zip entry ${entry.name}: local and central compression methods differ`);
  const dataOffset = at + headerLength;
  if (dataOffset + entry.compressedSize > limit) throw corrupt(file, `zip entry ${entry.name}: data (${entry.compressedSize} bytes at ${dataOffset}) runs past the central directory`);
  if (headerLength > head.length) head = readExactSync(fd, file, at, headerLength, `local header of ${entry.name}`);

  // Sizes in the local header must agree with the directory unless a data descriptor follows the data.
  if (!(head.readUInt16LE(6) & 0x8)) {
    let compressed = head.readUInt32LE(18);
    let uncompressed = head.readUInt32LE(22);
    if (compressed === U32_MAX || uncompressed === U32_MAX) {
      const z64 = findExtra(head.subarray(LOCAL_SIZE + nameLength, headerLength), 0x0001, file, entry.name);
      if (!z64 || z64.length < 16) throw corrupt(file, `zip entry ${entry.name}: local header lacks its ZIP64 sizes`);
      uncompressed = u64(z64, 0, file, `local size of ${entry.name}`);
      compressed = u64(z64, 8, file, `local size of ${entry.name}`);
    }
    if (compressed !== entry.compressedSize || uncompressed !== entry.uncompressedSize) {
      throw corrupt(file, `zip entry ${entry.name}: local header sizes (${compressed}/${uncompressed}) disagree with the directory (${entry.compressedSize}/${entry.uncompressedSize})`);
    }
  }
  return dataOffset;
}

/** Bytes read past a local header's name to catch its extra field in the same read. */
const HEADER_SLACK = 256;

/** Reads a small entry whole (stored or deflated), capped at `maxBytes`, and checks its CRC. */
export async function readZipEntry(handle: FileHandle, file: string, dir: ZipDirectory, entry: ZipEntry, maxBytes: number): Promise<Buffer> {
  if (entry.uncompressedSize > maxBytes || entry.compressedSize > maxBytes) {
    throw corrupt(file, `zip entry ${entry.name} is ${entry.uncompressedSize} bytes, over the ${maxBytes}-byte limit`);
  }
  const dataOffset = entryDataOffset(handle.fd, file, dir, entry);
  const raw = await readExact(handle, file, dataOffset, entry.compressedSize, `data of ${entry.name}`);
  let data: Buffer;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.uncompressedSize) throw corrupt(file, `stored zip entry ${entry.name} has different compressed and uncompressed sizes`);
    data = raw;
  } else if (entry.method === 8) {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (err) {
      throw corrupt(file, `zip entry ${entry.name} does not inflate: ${(err as Error).message}`, err);
    }
    if (data.length !== entry.uncompressedSize) throw corrupt(file, `zip entry ${entry.name} inflates to ${data.length} bytes, not ${entry.uncompressedSize}`);
  } else {
    throw corrupt(file, `zip entry ${entry.name} uses compression method ${entry.method}; only stored (0) and deflate (8) are supported`);
  }
  if (crc32(data) !== entry.crc32) throw corrupt(file, `zip entry ${entry.name} fails its CRC check`);
  return data;
}
