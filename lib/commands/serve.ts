/** `convnext-clip serve`: the HTTP server until SIGTERM/SIGINT, which drain accepted requests and exit. */
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { Collection } from '../search/collection.js';
import { SERVER_DEFAULTS, type ServerOptions, createServer } from '../server/index.js';
import { type ModelFlags, loadModelFrom, modelOptions, nonNegativeInt, oneOf, port, positiveInt } from './options.js';

type Limits = 'maxBatch' | 'maxWaitMs' | 'maxQueue' | 'timeoutMs' | 'maxBodyBytes' | 'maxPixels' | 'maxItems' | 'maxTextChars' | 'maxRequestTextChars' | 'headersTimeoutMs' | 'bodyTimeoutMs' | 'keepAliveTimeoutMs';

interface ServeFlags extends ModelFlags, Required<Pick<ServerOptions, Limits>> {
  host: string;
  db?: string;
  port: number;
  classifierCache: number;
  graceMs: number;
  logLevel: string;
  maxImageBatch?: number;
  idleTimeoutMs?: number;
}

export function registerServe(program: Command): void {
  const d = SERVER_DEFAULTS;
  modelOptions(program.command('serve').description('HTTP server: batched text/image embeddings and zero-shot classification (POST /v1/...; GET /healthz /readyz /metrics /openapi.json)'))
    .option('--host <host>', 'address to bind (0.0.0.0 to accept other machines)', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', port, 8080)
    .option('--max-batch <n>', 'most rows per forward pass; 1 turns batching off', positiveInt, d.maxBatch)
    .option('--max-image-batch <n>', 'most images per forward pass (default: --max-batch)', positiveInt)
    .option('--max-wait-ms <n>', 'how long the first queued request waits for others to join its batch (0: none; requests arriving during a forward pass still join the next)', nonNegativeInt, d.maxWaitMs)
    .option('--max-queue <n>', 'requests waiting before new ones get 429', positiveInt, d.maxQueue)
    .option('--timeout-ms <n>', 'per-request time limit (503 if still queued, else 504)', positiveInt, d.timeoutMs)
    .option('--max-body-bytes <n>', 'largest request body (413 above)', positiveInt, d.maxBodyBytes)
    .option('--max-pixels <n>', 'largest image in pixels (413 above)', positiveInt, d.maxPixels)
    .option('--max-items <n>', 'most texts, images or labels per request', positiveInt, d.maxItems)
    .option('--max-text-chars <n>', 'longest text, label or template in characters (413 above)', positiveInt, d.maxTextChars)
    .option('--max-request-text-chars <n>', 'most characters one request may give the tokenizer, all texts or prompts together (413 above)', positiveInt, d.maxRequestTextChars)
    .option('--headers-timeout-ms <n>', 'time a client has to send the request headers; slower ones are cut off', positiveInt, d.headersTimeoutMs)
    .option('--body-timeout-ms <n>', 'time a client has to send the whole request, body included (408 after)', positiveInt, d.bodyTimeoutMs)
    .option('--idle-timeout-ms <n>', 'close a connection silent this long; must exceed --timeout-ms (default: max(60000, timeout + 5000))', positiveInt)
    .option('--keep-alive-timeout-ms <n>', 'close an idle keep-alive connection after this long', positiveInt, d.keepAliveTimeoutMs)
    .option('--classifier-cache <n>', 'zero-shot classifiers kept (LRU)', nonNegativeInt, d.classifierCacheSize)
    .option('--grace-ms <n>', 'on SIGTERM/SIGINT, longest wait for accepted requests (then open connections are closed)', nonNegativeInt, 30_000)
    .option('--log-level <level>', 'fastify log level on stdout', oneOf('fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'), 'warn')
    .option('--db <dir>', 'a collection made by `index`: adds POST /v1/search, thumbnails and the search page at /')
    .action(async (flags: ServeFlags) => {
      const { clip, source } = await loadModelFrom(flags);
      const collection = flags.db ? await Collection.open(flags.db, clip, { mustExist: true, weights: source }) : undefined;
      const app = await createServer(clip, {
        maxBatch: flags.maxBatch,
        maxImageBatch: flags.maxImageBatch,
        maxWaitMs: flags.maxWaitMs,
        maxQueue: flags.maxQueue,
        timeoutMs: flags.timeoutMs,
        maxBodyBytes: flags.maxBodyBytes,
        maxPixels: flags.maxPixels,
        maxItems: flags.maxItems,
        maxTextChars: flags.maxTextChars,
        maxRequestTextChars: flags.maxRequestTextChars,
        headersTimeoutMs: flags.headersTimeoutMs,
        bodyTimeoutMs: flags.bodyTimeoutMs,
        idleTimeoutMs: flags.idleTimeoutMs,
        keepAliveTimeoutMs: flags.keepAliveTimeoutMs,
        classifierCacheSize: flags.classifierCache,
        logger: { level: flags.logLevel },
      }, { modelId: flags.model, collection });
      try {
        await app.listen({ host: flags.host, port: flags.port });
      } catch (err) {
        collection?.close();
        clip.dispose();
        throw err;
      }
      const { address, port: bound } = app.server.address() as AddressInfo;
      const host = address.includes(':') ? `[${address}]` : address;
      process.stderr.write(`convnext-clip: listening on http://${host}:${bound} (${clip.backend} ${clip.precision}, max batch ${flags.maxBatch}, max wait ${flags.maxWaitMs} ms)\n`);

      let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
      await new Promise<void>((resolve) => {
        let signalled = false;
        onSignal = (signal: NodeJS.Signals) => {
          if (signalled) {
            process.stderr.write(`convnext-clip: ${signal} again, exiting without draining\n`);
            process.exit(1);
          }
          signalled = true;
          process.stderr.write(`convnext-clip: ${signal}: draining ${app.inFlight} request(s), refusing new work\n`);
          app.shutdown({ graceMs: flags.graceMs }).then(resolve, resolve);
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      process.off('SIGTERM', onSignal!);
      process.off('SIGINT', onSignal!);
      collection?.close();
      clip.dispose();
      process.stderr.write('convnext-clip: stopped\n');
    });
}
