/**
 * Every failure the library reports on purpose is a ClipError with a stable `code`, so callers can branch on
 * it (`err.code === 'E_CHECKPOINT_CORRUPT'`) and servers can map it to a status.
 */
export type ClipErrorCode =
  | 'E_INVALID_ARGUMENT' // a caller passed something of the wrong type or range
  | 'E_NOT_FOUND' // a file or model directory is missing
  | 'E_IO' // the operating system refused a read
  | 'E_CONFIG' // open_clip_config.json is unreadable or inconsistent
  | 'E_UNKNOWN_ARCHITECTURE' // a timm model name or projection type we do not implement
  | 'E_CHECKPOINT_CORRUPT' // truncated or malformed checkpoint bytes (zip, pickle, safetensors)
  | 'E_CHECKPOINT_UNSAFE' // a pickle asked for a global outside the state-dict allow list
  | 'E_TENSOR_MISSING' // the checkpoint lacks a tensor the architecture needs
  | 'E_TENSOR_SHAPE' // a tensor has the wrong shape or dtype
  | 'E_VOCAB' // the tokenizer vocabulary is missing or malformed
  | 'E_INPUT_TOO_LARGE' // an input over a configured limit
  | 'E_IMAGE_DECODE' // an image that cannot be decoded
  | 'E_BACKEND_UNAVAILABLE' // no backend could be loaded
  | 'E_DISPOSED' // a model used after dispose()
  | 'E_NATIVE' // the native engine reported a failure
  | 'E_NETWORK' // a download failed after its retries
  | 'E_OFFLINE' // offline mode (HF_HUB_OFFLINE) and the cache lacks a file
  | 'E_AUTH' // the Hub refused access (gated or private repository)
  | 'E_INTEGRITY' // downloaded bytes do not match the size or checksum the Hub reported
  | 'E_LOCKED' // another process holds the lock on an output (embed-dir --out)
  | 'E_TIMEOUT'; // an operation ran past its time limit

export class ClipError extends Error {
  readonly code: ClipErrorCode;
  /** The file, tensor or input the error is about, when there is one. */
  readonly subject?: string;

  constructor(code: ClipErrorCode, message: string, options: { subject?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClipError';
    this.code = code;
    this.subject = options.subject;
  }
}

export function isClipError(err: unknown, code?: ClipErrorCode): err is ClipError {
  return err instanceof ClipError && (code === undefined || err.code === code);
}
