/**
 * Byte-level codecs for mojibake repair. Bytes travel as "byte strings": one UTF-16 unit per byte
 * (codes 0..255), so byte patterns can be matched with ordinary regexes.
 */
import { CHARMAP_SPECS, type CharmapSpec } from './charmaps.js';

/** A single-byte encoding (Python charmap codec, or one of ftfy's "sloppy" variants). */
export class Charmap {
  readonly name: string;
  readonly sloppy: boolean;
  /** Byte 0x80 + i decodes to high[i]. */
  readonly high: string;
  private readonly toByte = new Map<number, number>();

  constructor(spec: CharmapSpec) {
    this.name = spec.name;
    this.sloppy = spec.sloppy;
    this.high = spec.high;
    for (let i = 0; i < 128; i++) this.toByte.set(spec.high.charCodeAt(i), 0x80 + i);
    // Sloppy codecs let byte 1A stand for U+FFFD, and then cannot encode U+001A itself.
    if (spec.sloppy) this.toByte.set(0xfffd, 0x1a);
  }

  /** ftfy `possible_encoding`: can every character of `text` be written in this encoding? */
  canEncode(text: string): boolean {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c < 0x80) {
        if (c === 0x1a && this.sloppy) return false;
      } else if (!this.toByte.has(c)) {
        return false;
      }
    }
    return true;
  }

  /** Encode to a byte string; call only after canEncode(text). */
  encode(text: string): string {
    let out = '';
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      out += String.fromCharCode(c < 0x80 ? c : (this.toByte.get(c) as number));
    }
    return out;
  }
}

export const CHARMAPS: readonly Charmap[] = CHARMAP_SPECS.map((spec) => new Charmap(spec));

function charmap(name: string): Charmap {
  const found = CHARMAPS.find((c) => c.name === name);
  if (!found) throw new Error(`internal: no charmap ${name}`);
  return found;
}

export const SLOPPY_1252 = charmap('sloppy-windows-1252');

/** Bytes that the strict windows-1252 codec leaves undefined. */
const CP1252_UNDEFINED = new Set([0x81, 0x8d, 0x8f, 0x90, 0x9d]);

/** Strict `text.encode('latin-1').decode('windows-1252')`, or null when it would raise. */
export function latin1AsWindows1252(text: string): string | null {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x100) return null;
    if (c >= 0x80 && c < 0xa0) {
      if (CP1252_UNDEFINED.has(c)) return null;
      out += SLOPPY_1252.high[c - 0x80];
    } else {
      out += text[i];
    }
  }
  return out;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function bytesOf(bytes: string): Uint8Array {
  return Uint8Array.from(Buffer.from(bytes, 'latin1'));
}

/** Strict UTF-8 decode of a byte string (Python `bytes.decode('utf-8')`), or null on any error. */
export function decodeUtf8(bytes: string): string | null {
  try {
    return STRICT_UTF8.decode(bytesOf(bytes));
  } catch {
    return null;
  }
}

const isCont = (b: number): boolean => b >= 0x80 && b <= 0xbf;

/**
 * ftfy's "utf-8-variants": strict UTF-8, plus Java's C0 80 for U+0000 and CESU-8 surrogate pairs
 * (ED A0-AF xx ED B0-BF xx). Anything else strict UTF-8 rejects is still an error (null).
 */
export function decodeUtf8Variants(bytes: string): string | null {
  const b = bytesOf(bytes);
  let out = '';
  let runStart = 0;
  const flush = (end: number): boolean => {
    if (end === runStart) return true;
    try {
      out += STRICT_UTF8.decode(b.subarray(runStart, end));
      return true;
    } catch {
      return false;
    }
  };
  let i = 0;
  while (i < b.length) {
    if (b[i] === 0xc0 && b[i + 1] === 0x80) {
      if (!flush(i)) return null;
      out += '\0';
      i += 2;
      runStart = i;
    } else if (
      b[i] === 0xed &&
      i + 5 < b.length &&
      b[i + 1] >= 0xa0 &&
      b[i + 1] <= 0xaf &&
      isCont(b[i + 2]) &&
      b[i + 3] === 0xed &&
      b[i + 4] >= 0xb0 &&
      b[i + 4] <= 0xbf &&
      isCont(b[i + 5])
    ) {
      if (!flush(i)) return null;
      const cp =
        ((b[i + 1] & 0x0f) << 16) + ((b[i + 2] & 0x3f) << 10) + ((b[i + 4] & 0x0f) << 6) + (b[i + 5] & 0x3f) + 0x10000;
      out += String.fromCodePoint(cp);
      i += 6;
      runStart = i;
    } else {
      i++;
    }
  }
  return flush(b.length) ? out : null;
}
