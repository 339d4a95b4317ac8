/**
 * safetensors files on disk: the header is read with positional reads and validated by the one shared parser
 * (safetensors-header.ts, also used by the browser entry); tensor bytes are never read here.
 */
import type { TensorManifest } from '../manifest.js';
import { ioError, openFile } from './io.js';
import { type ByteSource, readSafetensorsHeader } from './safetensors-header.js';

export { MAX_SAFETENSORS_HEADER } from './safetensors-header.js';

export async function readSafetensorsManifest(file: string): Promise<TensorManifest> {
  const { handle, size } = await openFile(file);
  const source: ByteSource = {
    size,
    async read(offset, into) {
      for (let done = 0; done < into.length; ) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(into, done, into.length - done, offset + done));
        } catch (err) {
          throw ioError(file, err);
        }
        if (bytesRead === 0) throw ioError(file, new Error(`the file ended at byte ${offset + done} while its header was read`));
        done += bytesRead;
      }
    },
  };
  try {
    return await readSafetensorsHeader(source, file);
  } finally {
    await handle.close();
  }
}
