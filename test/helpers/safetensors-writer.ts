/** Test-only safetensors writer: any header (object or raw text), data bytes, optional lying length. */
export function safetensorsBytes(header: unknown, data: Uint8Array | number = 0, lengthOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]);
}
