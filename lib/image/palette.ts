/**
 * Palette entries read from the file itself (sharp expands palettes): PNG PLTE, GIF global colour table.
 * Needed only for the padding colour of palette images, which Pillow pads with a palette index.
 */

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function pngPalette(bytes: Uint8Array): Uint8Array | undefined {
  if (!PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 8; at + 8 <= bytes.length; ) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    if (type === 'PLTE') return bytes.subarray(at + 8, Math.min(bytes.length, at + 8 + length));
    if (type === 'IDAT' || type === 'IEND') return undefined;
    at += 12 + length;
  }
  return undefined;
}

function gifPalette(bytes: Uint8Array): Uint8Array | undefined {
  const head = String.fromCharCode(...bytes.subarray(0, 6));
  if ((head !== 'GIF87a' && head !== 'GIF89a') || bytes.length < 13) return undefined;
  const packed = bytes[10];
  if (!(packed & 0x80)) return undefined;
  const entries = 2 ** ((packed & 7) + 1);
  return bytes.subarray(13, Math.min(bytes.length, 13 + 3 * entries));
}

/** index -> RGB; indices past the palette read Pillow's initial grey ramp. */
export function paletteLookup(bytes: Uint8Array): (index: number) => [number, number, number] {
  const table = pngPalette(bytes) ?? gifPalette(bytes);
  return (index) => {
    if (table && 3 * index + 2 < table.length) return [table[3 * index], table[3 * index + 1], table[3 * index + 2]];
    return [index, index, index];
  };
}
