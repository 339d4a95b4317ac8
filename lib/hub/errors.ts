/** Hub failures are ClipErrors with a finer `reason` (and the HTTP status when there was one). */
import { ClipError, type ClipErrorCode } from '../errors.js';

/** `protocol`: the server sent something we refuse to use (a commit that is not 40 hex digits, an unsafe etag or redirect). */
export type HubErrorReason = 'network' | 'offline' | 'auth' | 'not-found' | 'integrity' | 'lock-timeout' | 'invalid' | 'protocol';

const CODES: Record<HubErrorReason, ClipErrorCode> = {
  network: 'E_NETWORK',
  offline: 'E_OFFLINE',
  auth: 'E_AUTH',
  'not-found': 'E_NOT_FOUND',
  integrity: 'E_INTEGRITY',
  'lock-timeout': 'E_TIMEOUT',
  invalid: 'E_INVALID_ARGUMENT',
  protocol: 'E_NETWORK',
};

export class HubError extends ClipError {
  readonly reason: HubErrorReason;
  /** The HTTP status that caused it, when there was one. */
  readonly status?: number;

  constructor(reason: HubErrorReason, message: string, options: { subject?: string; cause?: unknown; status?: number } = {}) {
    super(CODES[reason], message, options);
    this.reason = reason;
    this.status = options.status;
  }
}

export function isHubError(err: unknown, reason?: HubErrorReason): err is HubError {
  return err instanceof HubError && (reason === undefined || err.reason === reason);
}
