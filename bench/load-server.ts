/**
 * The server process of bench/load.ts: loads a model, serves on a free loopback port, prints {"port"} on stdout,
 * drains and exits on SIGTERM. Run: node --import tsx bench/load-server.ts <model-dir> <threads> '<ServerOptions JSON>'
 */
import type { AddressInfo } from 'node:net';
import { Clip } from '../lib/clip.js';
import { type ServerOptions, createServer } from '../lib/server/index.js';

const [model, threads, json] = process.argv.slice(2);
const clip = await Clip.load(model, { backend: 'native', threads: Number(threads) });
const app = await createServer(clip, JSON.parse(json ?? '{}') as ServerOptions);
await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ port: (app.server.address() as AddressInfo).port })}\n`);
process.once('SIGTERM', async () => {
  await app.shutdown({ graceMs: 5000 });
  clip.dispose();
  process.exit(0);
});
