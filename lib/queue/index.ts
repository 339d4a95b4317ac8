/** Embedding shards over many machines with BullMQ on Redis: `queue add`, `queue work`, `queue status`. */
export { addShardJobs, type QueueAddOptions, type QueueAddResult } from './add.js';
export { DEFAULT_QUEUE, DEFAULT_REDIS, checkRedisUrl, redactUrl } from './connection.js';
export { checkJob, jobId, relativeShard, type ShardJob, type ShardJobResult } from './jobs.js';
export { queueStatus, type QueueStatus } from './status.js';
export { runQueueWorker, runShardJob, workerName, type QueueWorkOptions, type QueueWorkResult, type WorkerEvent } from './work.js';
