/**
 * The Socket.IO side of the SDK: one connection, its (re)connection, requests
 * with acks and timeouts, retries of idempotent requests, and the dispatch
 * of stream:* events to the request that chose their streamId.
 */
import { io, type Socket } from 'socket.io-client';
import {
  AuthenticationError,
  ConnectionError,
  RateLimitError,
  SandboxSDKError,
  TimeoutError,
  errorFromWire,
} from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { ExecutionError, OutputMessage, Result } from './types.js';

/** Callbacks of one streaming request. */
export interface StreamHandlers {
  onStdout?: (output: OutputMessage) => void;
  onStderr?: (output: OutputMessage) => void;
  onResult?: (result: Result) => void;
  onError?: (error: ExecutionError) => void;
  /** template:log lines (template:logs). */
  onLog?: (line: string) => void;
}

/** How one request is made. */
export interface RequestOptions {
  /** How long to wait for the ack once the request is sent, in ms. */
  timeoutMs: number;
  /** Safe to send again after a lost connection (reads, overwrites, deletes). */
  idempotent?: boolean;
  /** A repeated delete that finds nothing succeeded the first time. */
  notFoundAfterRetryIsSuccess?: boolean;
  /** Put a fresh streamId in the payload and deliver its events here. */
  stream?: StreamHandlers;
  /** Count the call's time as execution time. */
  execution?: boolean;
}

export interface TransportOptions {
  apiKey: string;
  serverUrl: string;
  timeout: number;
  maxRetries: number;
  retryDelay: number;
  socketOptions: Record<string, unknown>;
  logger: Logger;
  metrics: Metrics;
}

interface Waiter {
  resolve: () => void;
  reject: (err: SandboxSDKError) => void;
}

interface Pending {
  event: string;
  idempotent: boolean;
  fail: (err: SandboxSDKError) => void;
}

/** What a directory watch is told by the server (see watch.ts). */
export interface WatchHandlers {
  onEvent: (ev: Record<string, unknown>) => void;
  /** The watch ended by itself: error is unset when its directory was deleted. */
  onEnd: (error?: SandboxSDKError) => void;
}

/** The longest pause between two retries or reconnection attempts. */
const MAX_BACKOFF_MS = 30_000;

const AUTH_CODES = new Set(['unauthenticated', 'permission_denied']);

export class Transport {
  private readonly socket: Socket;
  private readonly opts: TransportOptions;
  private readonly log: Logger;
  /** True between disconnect() and the next waitForConnection(). */
  private closedByUser = false;
  /** True once connected; reconnections after that never give up. */
  private everConnected = false;
  /** Failed connection attempts since the last connect() or successful connection. */
  private failures = 0;
  private readonly waiters = new Set<Waiter>();
  private readonly pending = new Set<Pending>();
  private readonly streams = new Map<string, StreamHandlers>();
  private readonly watches = new Map<string, WatchHandlers>();
  private readonly clientId = Math.random().toString(36).slice(2, 10);
  private nextStream = 0;

  constructor(opts: TransportOptions) {
    this.opts = opts;
    this.log = opts.logger;
    const backoffMax = Math.min(MAX_BACKOFF_MS, Math.max(opts.retryDelay, 1) * 2 ** Math.max(opts.maxRetries, 1));
    this.socket = io(opts.serverUrl, {
      autoConnect: false,
      forceNew: true,
      reconnection: true,
      reconnectionAttempts: Infinity,
      reconnectionDelay: Math.max(opts.retryDelay, 1),
      reconnectionDelayMax: backoffMax,
      timeout: Math.min(opts.timeout, 20_000),
      ...opts.socketOptions,
      auth: { ...authOption(opts.socketOptions.auth), apiKey: opts.apiKey },
    });
    this.socket.on('connect', () => this.onConnect());
    this.socket.on('connect_error', (err: Error & { data?: unknown }) => this.onConnectError(err));
    this.socket.on('disconnect', (reason: string) => this.onDisconnect(reason));
    this.socket.on('stream:output', (ev: unknown) => this.onStreamOutput(ev));
    this.socket.on('stream:result', (ev: unknown) => this.onStreamResult(ev));
    this.socket.on('stream:error', (ev: unknown) => this.onStreamError(ev));
    this.socket.on('template:log', (ev: unknown) => this.onTemplateLog(ev));
    this.socket.on('file:event', (ev: unknown) => this.onWatchEvent(ev));
    this.socket.on('file:watch:end', (ev: unknown) => this.onWatchEnd(ev));
  }

  /** newId returns an id unique to this client (for watches chosen before they start). */
  newId(prefix: string): string {
    return `${prefix}${this.clientId}-${++this.nextStream}`;
  }

  /** addWatch delivers the events of watchId to h until removeWatch or its end. */
  addWatch(watchId: string, h: WatchHandlers): void {
    this.watches.set(watchId, h);
  }

  removeWatch(watchId: string): void {
    this.watches.delete(watchId);
  }

  private onTemplateLog(ev: unknown): void {
    const found = this.handlersFor(ev);
    if (!found) return;
    const [h, rec] = found;
    this.callback(h.onLog, typeof rec.line === 'string' ? rec.line : String(rec.line ?? ''), 'onLine');
  }

  private onWatchEvent(ev: unknown): void {
    if (typeof ev !== 'object' || ev === null) return;
    const rec = ev as Record<string, unknown>;
    const h = typeof rec.watchId === 'string' ? this.watches.get(rec.watchId) : undefined;
    if (h) this.callback(h.onEvent, rec, 'onEvent');
  }

  private onWatchEnd(ev: unknown): void {
    if (typeof ev !== 'object' || ev === null) return;
    const rec = ev as Record<string, unknown>;
    if (typeof rec.watchId !== 'string') return;
    const h = this.watches.get(rec.watchId);
    if (!h) return;
    this.watches.delete(rec.watchId);
    const err = rec.error ? errorFromWire(rec.error as Record<string, unknown>, 'file:watch') : undefined;
    this.callback(h.onEnd, err, 'onEnd');
  }

  /** connected tells whether the socket is connected now. */
  get connected(): boolean {
    return this.socket.connected;
  }

  /**
   * waitForConnection connects if needed and resolves once connected. It
   * rejects with AuthenticationError when the key is refused, and with
   * ConnectionError after 1 + maxRetries failed attempts or timeoutMs.
   */
  waitForConnection(timeoutMs: number): Promise<void> {
    this.closedByUser = false;
    return this.awaitConnected(timeoutMs);
  }

  /**
   * subscribe delivers every server-pushed event of this name to fn until
   * the returned function is called.
   */
  subscribe(event: string, fn: (ev: unknown) => void): () => void {
    this.socket.on(event, fn);
    return () => {
      this.socket.off(event, fn);
    };
  }

  /** whenConnected calls fn on every (re)connection until the returned function is called. */
  whenConnected(fn: () => void): () => void {
    this.socket.on('connect', fn);
    return () => {
      this.socket.off('connect', fn);
    };
  }

  /** disconnect closes the connection and fails every call in flight. */
  disconnect(): void {
    this.closedByUser = true;
    this.failAllWaiters(new ConnectionError('the SDK was disconnected'));
    this.socket.disconnect();
    // disconnect() emits 'disconnect' only when connected; fail calls in any case.
    this.failPending(() => new ConnectionError('the SDK was disconnected before the answer came'));
  }

  /**
   * request sends one event and resolves with the ack's data. Idempotent
   * requests are sent again (at most maxRetries times, with backoff) when
   * the connection is lost or the server is unavailable.
   */
  async request<T>(event: string, payload: Record<string, unknown>, ro: RequestOptions): Promise<T> {
    const started = Date.now();
    this.opts.metrics.started();
    let attempt = 0;
    for (;;) {
      try {
        const data = await this.requestOnce<T>(event, payload, ro);
        this.opts.metrics.finished(true, Date.now() - started, { execution: ro.execution });
        return data;
      } catch (e) {
        const err = asSDKError(e, event);
        if (attempt > 0 && ro.notFoundAfterRetryIsSuccess && err.code === 'not_found') {
          this.opts.metrics.finished(true, Date.now() - started, { execution: ro.execution });
          return {} as T;
        }
        if (ro.idempotent && err instanceof ConnectionError && attempt < this.opts.maxRetries && !this.closedByUser) {
          attempt++;
          const delay = this.backoff(attempt);
          this.opts.metrics.retried();
          this.log.warn(`${event}: ${err.message}; retry ${attempt}/${this.opts.maxRetries} in ${delay} ms`);
          await sleep(delay);
          continue;
        }
        this.opts.metrics.finished(false, Date.now() - started, {
          execution: ro.execution,
          rateLimited: err instanceof RateLimitError,
        });
        this.log.debug(`${event} failed: ${err.code}: ${err.message}`);
        throw err;
      }
    }
  }

  private backoff(attempt: number): number {
    return Math.min(MAX_BACKOFF_MS, this.opts.retryDelay * 2 ** (attempt - 1));
  }

  private async requestOnce<T>(event: string, payload: Record<string, unknown>, ro: RequestOptions): Promise<T> {
    if (this.closedByUser) {
      throw new ConnectionError(`${event}: the SDK is disconnected (call waitForConnection() to connect again)`, 'unavailable', {
        operation: event,
      });
    }
    if (!this.socket.connected) await this.awaitConnected(this.opts.timeout);
    return new Promise<T>((resolve, reject) => {
      const streamId = ro.stream ? `${this.clientId}-${++this.nextStream}` : undefined;
      const body = streamId === undefined ? payload : { ...payload, streamId };
      let done = false;
      const finish = (err: SandboxSDKError | null, data?: T): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.pending.delete(entry);
        if (streamId !== undefined) this.streams.delete(streamId);
        if (err) reject(err);
        else resolve(data as T);
      };
      const entry: Pending = { event, idempotent: !!ro.idempotent, fail: (err) => finish(err) };
      const timer = setTimeout(() => {
        finish(
          new TimeoutError(`${event}: no answer from the server within ${ro.timeoutMs} ms`, 'timeout', {
            operation: event,
          }),
        );
      }, ro.timeoutMs);
      this.pending.add(entry);
      if (streamId !== undefined) this.streams.set(streamId, ro.stream!);
      this.log.debug(`-> ${event}`, streamId === undefined ? undefined : { streamId });
      this.socket.emit(event, body, (ack: unknown) => {
        if (isAck(ack)) {
          if (ack.ok === true) finish(null, ack.data as T);
          else finish(errorFromWire(ack.error as Record<string, unknown> | undefined, event));
        } else {
          finish(new SandboxSDKError(`${event}: malformed answer from the server`, 'internal', { operation: event }));
        }
      });
    });
  }

  /** awaitConnected resolves when connected; it starts connecting if nothing else is trying. */
  private awaitConnected(timeoutMs: number): Promise<void> {
    if (this.socket.connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new ConnectionError(`could not connect to ${this.opts.serverUrl} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.add(waiter);
      if (!this.socket.active) {
        this.failures = 0;
        this.log.debug(`connecting to ${this.opts.serverUrl}`);
        this.socket.connect();
      }
    });
  }

  private onConnect(): void {
    this.everConnected = true;
    this.failures = 0;
    this.log.info(`connected to ${this.opts.serverUrl}`);
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w.resolve();
  }

  private onConnectError(err: Error & { data?: unknown }): void {
    const data = (err.data ?? undefined) as { code?: unknown; message?: unknown } | undefined;
    if (data && typeof data.code === 'string' && AUTH_CODES.has(data.code)) {
      const msg = typeof data.message === 'string' && data.message ? data.message : err.message;
      const authErr = new AuthenticationError(`authentication failed: ${msg}`, data.code, { cause: err });
      this.log.error(authErr.message);
      this.failAllWaiters(authErr);
      return;
    }
    if (data && typeof data.code === 'string') {
      // Another refusal of the handshake (rate_limited, unavailable, ...):
      // the client does not retry it by itself.
      const wireErr = errorFromWire(data);
      this.log.warn(`connection refused: ${wireErr.code}: ${wireErr.message}`);
      this.failAllWaiters(wireErr);
      return;
    }
    this.failures++;
    const limit = this.opts.maxRetries + 1;
    this.log.warn(`connection attempt ${this.failures} to ${this.opts.serverUrl} failed: ${err.message}`);
    if (!this.everConnected && this.failures >= limit) {
      // Never connected and out of attempts: stop, so an unreachable
      // server does not keep the process alive.
      this.socket.disconnect();
      this.failAllWaiters(
        new ConnectionError(
          `could not connect to ${this.opts.serverUrl} after ${this.failures} attempt(s): ${err.message}`,
          'unavailable',
          { cause: err },
        ),
      );
    } else if (!this.socket.active) {
      // The manager gave up (a refused connection it won't retry).
      this.failAllWaiters(
        new ConnectionError(`could not connect to ${this.opts.serverUrl}: ${err.message}`, 'unavailable', { cause: err }),
      );
    }
  }

  private onDisconnect(reason: string): void {
    if (this.closedByUser) {
      this.log.info('disconnected');
    } else {
      this.log.warn(`connection lost (${reason}); reconnecting`);
    }
    // The server cancels what was running for this connection: no call in
    // flight can get its answer any more.
    this.failPending((p) =>
      p.idempotent
        ? new ConnectionError(`${p.event}: connection lost before the answer came (${reason})`, 'unavailable', {
            operation: p.event,
          })
        : new ConnectionError(
            `${p.event}: connection lost while the call was in flight (${reason}); it was not retried, as it may have run`,
            'unavailable',
            { operation: p.event },
          ),
    );
    // The server ends a connection's watches with it.
    const ws = [...this.watches.values()];
    this.watches.clear();
    for (const h of ws) {
      this.callback(h.onEnd, new ConnectionError(`file:watch: connection lost (${reason}); the watch ended`), 'onEnd');
    }
    if (!this.closedByUser && reason === 'io server disconnect') {
      // The server closed the socket (e.g. it is restarting): the client
      // does not reconnect by itself after that.
      setTimeout(() => {
        if (!this.closedByUser && !this.socket.active) this.socket.connect();
      }, Math.max(this.opts.retryDelay, 1)).unref?.();
    }
  }

  private failAllWaiters(err: SandboxSDKError): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w.reject(err);
  }

  private failPending(errFor: (p: Pending) => SandboxSDKError): void {
    const ps = [...this.pending];
    for (const p of ps) p.fail(errFor(p));
  }

  private handlersFor(ev: unknown): [StreamHandlers, Record<string, unknown>] | undefined {
    if (typeof ev !== 'object' || ev === null) return undefined;
    const rec = ev as Record<string, unknown>;
    if (typeof rec.streamId !== 'string') return undefined;
    const h = this.streams.get(rec.streamId);
    return h ? [h, rec] : undefined;
  }

  private onStreamOutput(ev: unknown): void {
    const found = this.handlersFor(ev);
    if (!found) return;
    const [h, rec] = found;
    const msg: OutputMessage = {
      line: typeof rec.line === 'string' ? rec.line : String(rec.line ?? ''),
      timestamp: typeof rec.timestamp === 'number' ? rec.timestamp : Date.now(),
    };
    if (typeof rec.jobId === 'string') msg.jobId = rec.jobId;
    this.callback(rec.stream === 'stderr' ? h.onStderr : h.onStdout, msg, rec.stream === 'stderr' ? 'onStderr' : 'onStdout');
  }

  private onStreamResult(ev: unknown): void {
    const found = this.handlersFor(ev);
    if (!found) return;
    const [h, rec] = found;
    const result = { ...((rec.result as Result | undefined) ?? {}) };
    if (typeof rec.jobId === 'string') result.jobId = rec.jobId;
    this.callback(h.onResult, result, 'onResult');
  }

  private onStreamError(ev: unknown): void {
    const found = this.handlersFor(ev);
    if (!found) return;
    const [h, rec] = found;
    const e = (rec.error as Partial<ExecutionError> | undefined) ?? {};
    const error: ExecutionError = {
      name: String(e.name ?? 'Error'),
      value: String(e.value ?? ''),
      traceback: String(e.traceback ?? ''),
    };
    if (typeof rec.jobId === 'string') error.jobId = rec.jobId;
    this.callback(h.onError, error, 'onError');
  }

  /** callback calls a user callback; what it throws is logged, not raised. */
  private callback<A>(fn: ((arg: A) => void) | undefined, arg: A, name: string): void {
    if (!fn) return;
    try {
      fn(arg);
    } catch (e) {
      this.log.error(`${name} callback threw: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

function authOption(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function isAck(v: unknown): v is { ok: boolean; data?: unknown; error?: unknown } {
  return typeof v === 'object' && v !== null && typeof (v as { ok?: unknown }).ok === 'boolean';
}

function asSDKError(e: unknown, event: string): SandboxSDKError {
  if (e instanceof SandboxSDKError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new SandboxSDKError(`${event}: ${msg}`, 'internal', { cause: e, operation: event });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
