/**
 * Error classes of sdb-x-sdk and the mapping from the wire's error codes.
 *
 * `instanceof` works across copies of the classes (the ESM and the CJS
 * build loaded in one process, or two installed versions): every error
 * carries, under a global symbol, the names of the classes it was built
 * from, and each class's Symbol.hasInstance checks that list.
 */

/** The wire's error codes (docs/protocol.md), plus what the SDK itself produces. */
export type ErrorCode =
  | 'invalid_argument'
  | 'unauthenticated'
  | 'permission_denied'
  | 'not_found'
  | 'timeout'
  | 'conflict'
  | 'rate_limited'
  | 'resource_exhausted'
  | 'internal'
  | 'unavailable'
  | (string & {});

const KINDS = Symbol.for('sdb-x-sdk.errorKinds');

/** Options of every error class. */
export interface SandboxSDKErrorOptions {
  /** The underlying error. */
  cause?: unknown;
  /** The operation (Socket.IO event) that failed, e.g. 'sandbox:create'. */
  operation?: string;
}

/** Base class of every error the SDK throws. `code` is the wire's error code. */
export class SandboxSDKError extends Error {
  /** The name `instanceof` recognizes instances by, across copies of this class. */
  static readonly kind: string = 'SandboxSDKError';

  readonly code: ErrorCode;
  /** The operation (Socket.IO event) that failed, when there was one. */
  readonly operation?: string;

  constructor(message: string, code: ErrorCode = 'internal', options: SandboxSDKErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.operation !== undefined) this.operation = options.operation;
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function'; c = Object.getPrototypeOf(c)) {
      if (Object.prototype.hasOwnProperty.call(c, 'kind')) kinds.push((c as unknown as { kind: string }).kind);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds), enumerable: false });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // A user's subclass without its own kind: ordinary prototype check.
    if (!Object.prototype.hasOwnProperty.call(this, 'kind')) {
      return Function.prototype[Symbol.hasInstance].call(this, value);
    }
    if (typeof value !== 'object' || value === null) return false;
    const kinds = (value as { [KINDS]?: unknown })[KINDS];
    return Array.isArray(kinds) && kinds.includes((this as unknown as { kind: string }).kind);
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, operation: this.operation };
  }
}

/** The server can't be reached, or the connection was lost during the call. */
export class ConnectionError extends SandboxSDKError {
  static override readonly kind = 'ConnectionError';
  constructor(message: string, code: ErrorCode = 'unavailable', options?: SandboxSDKErrorOptions) {
    super(message, code, options);
  }
}

/** The call, or the code it ran, went past its timeout. */
export class TimeoutError extends SandboxSDKError {
  static override readonly kind = 'TimeoutError';
  constructor(message: string, code: ErrorCode = 'timeout', options?: SandboxSDKErrorOptions) {
    super(message, code, options);
  }
}

/**
 * The server refused or failed the operation: no such sandbox, template,
 * context or file (not_found), the target's state forbids it (conflict),
 * bad input (invalid_argument), a write found the sandbox's disk quota
 * (`resources.diskMb`) or a file system in it full (resource_exhausted:
 * delete files first; retrying alone fails the same way), or a server
 * failure (internal).
 */
export class SandboxError extends SandboxSDKError {
  static override readonly kind = 'SandboxError';
  constructor(message: string, code: ErrorCode = 'internal', options?: SandboxSDKErrorOptions) {
    super(message, code, options);
  }
}

/** A limit was hit; wait `retryAfter` ms before trying again. */
export class RateLimitError extends SandboxSDKError {
  static override readonly kind = 'RateLimitError';
  /** How long to wait, in ms. */
  readonly retryAfter: number;
  constructor(message: string, retryAfter = 1000, options?: SandboxSDKErrorOptions) {
    super(message, 'rate_limited', options);
    this.retryAfter = retryAfter;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), retryAfter: this.retryAfter };
  }
}

/** The API key is missing or unknown (unauthenticated), or may not do this (permission_denied; a file op's permission_denied is a SandboxError). */
export class AuthenticationError extends SandboxSDKError {
  static override readonly kind = 'AuthenticationError';
  constructor(message: string, code: ErrorCode = 'unauthenticated', options?: SandboxSDKErrorOptions) {
    super(message, code, options);
  }
}

/** An argument was rejected by the SDK before anything was sent. `field` names it. */
export class ValidationError extends SandboxSDKError {
  static override readonly kind = 'ValidationError';
  /** The offending field, e.g. 'options.templateId'. */
  readonly field: string;
  constructor(field: string, message: string, options?: SandboxSDKErrorOptions) {
    super(message, 'invalid_argument', options);
    this.field = field;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), field: this.field };
  }
}

/** An error as the server sends it in a failed ack. */
export interface WireError {
  code?: unknown;
  message?: unknown;
  retryAfterMs?: unknown;
}

/**
 * errorFromWire turns the error of a failed ack (or of a refused handshake)
 * into the SDK's class for its code; the code and message are kept.
 */
export function errorFromWire(wire: WireError | undefined | null, operation?: string): SandboxSDKError {
  const code = typeof wire?.code === 'string' && wire.code !== '' ? wire.code : 'internal';
  const message =
    typeof wire?.message === 'string' && wire.message !== ''
      ? wire.message
      : `${operation ?? 'request'} failed with ${code}`;
  const opts: SandboxSDKErrorOptions = operation === undefined ? {} : { operation };
  switch (code) {
    case 'rate_limited': {
      const ms = typeof wire?.retryAfterMs === 'number' && wire.retryAfterMs >= 0 ? wire.retryAfterMs : 1000;
      return new RateLimitError(message, ms, opts);
    }
    case 'timeout':
      return new TimeoutError(message, code, opts);
    case 'permission_denied':
      // A file op's permission_denied is the sandbox's file system saying
      // no (EACCES, a read-only mount), not the key's rights.
      if (operation?.startsWith('file:')) return new SandboxError(message, code, opts);
      return new AuthenticationError(message, code, opts);
    case 'unauthenticated':
      return new AuthenticationError(message, code, opts);
    case 'not_found':
    case 'conflict':
    case 'invalid_argument':
    case 'resource_exhausted':
    case 'internal':
      return new SandboxError(message, code, opts);
    case 'unavailable':
      return new ConnectionError(message, code, opts);
    default:
      return new SandboxSDKError(message, code, opts);
  }
}
