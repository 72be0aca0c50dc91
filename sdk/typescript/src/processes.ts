/**
 * Background processes and terminal sessions over the process:* and pty:*
 * events (docs/protocol.md). SandboxSDK's methods delegate here.
 */
import { ValidationError } from './errors.js';
import type { Transport } from './transport.js';
import type {
  OnOutputOptions,
  OutputSubscription,
  ProcessExit,
  ProcessInfo,
  ProcessOutput,
  ProcessOutputChunk,
  StartProcessOptions,
  Terminal,
  TerminalOptions,
} from './types.js';
import * as v from './validate.js';

const START_KEYS = ['envs', 'cwd'] as const;
const ON_OUTPUT_KEYS = ['offset', 'onExit'] as const;
const TERMINAL_KEYS = ['cols', 'rows', 'command', 'envs', 'cwd', 'offset', 'onData', 'onExit'] as const;
const MAX_TERM = 1000;

/** command → {command} (a string, through bash -c) or {args} (an argv). */
export function commandFields(command: unknown, field: string, optional = false): { command?: string; args?: string[] } {
  if (command === undefined && optional) return {};
  if (Array.isArray(command)) {
    const args = v.optionalStringArray(command, field)!;
    if (args.length === 0) throw new ValidationError(field, `${field} must not be empty`);
    return { args };
  }
  return { command: v.requiredString(command, field) };
}

function inputFields(data: unknown, field: string): { data: string; encoding?: string } {
  if (typeof data === 'string') return { data };
  if (data instanceof Uint8Array) return { data: Buffer.from(data).toString('base64'), encoding: 'base64' };
  throw new ValidationError(field, `${field} must be a string or a Uint8Array (got ${v.describe(data)})`);
}

function termSize(cols: unknown, rows: unknown, prefix: string, required: boolean): { cols?: number; rows?: number } {
  if (!required && cols === undefined && rows === undefined) return {};
  if (cols === undefined || rows === undefined) {
    const missing = cols === undefined ? 'cols' : 'rows';
    throw new ValidationError(`${prefix}${missing}`, `${prefix}cols and ${prefix}rows go together: ${prefix}${missing} is missing`);
  }
  return {
    cols: v.requiredNumber(cols, `${prefix}cols`, { min: 1, max: MAX_TERM, integer: true }),
    rows: v.requiredNumber(rows, `${prefix}rows`, { min: 1, max: MAX_TERM, integer: true }),
  };
}

function record(ev: unknown): Record<string, unknown> {
  return typeof ev === 'object' && ev !== null ? (ev as Record<string, unknown>) : {};
}

/**
 * follow keeps one attachment alive: it subscribes to prefix:output,
 * prefix:exit and prefix:error for the id, sends the attach request, and
 * sends it again from the last offset after every reconnection.
 */
async function follow(
  t: Transport,
  timeoutMs: number,
  prefix: 'process' | 'pty',
  idField: 'processId' | 'ptyId',
  base: Record<string, unknown>,
  offset: number,
  onChunk: (ev: Record<string, unknown>) => void,
  onExit: ((exit: ProcessExit) => void) | undefined,
): Promise<{ sub: OutputSubscription; info: ProcessInfo }> {
  const id = base[idField] as string;
  let next = offset;
  let stopped = false;
  let exited = false;
  const mine = (ev: unknown) => record(ev)[idField] === id;
  const offs: Array<() => void> = [];
  const stopAll = () => {
    stopped = true;
    for (const off of offs.splice(0)) off();
  };
  offs.push(
    t.subscribe(`${prefix}:output`, (ev) => {
      if (stopped || !mine(ev)) return;
      const r = record(ev);
      if (typeof r.end === 'number' && r.end <= next) return; // already delivered (re-attach overlap)
      onChunk(r);
      if (typeof r.end === 'number') next = r.end;
    }),
    t.subscribe(`${prefix}:exit`, (ev) => {
      if (stopped || !mine(ev) || exited) return;
      const r = record(ev);
      exited = true;
      stopAll();
      onExit?.({ exitCode: typeof r.exitCode === 'number' ? r.exitCode : 0, end: typeof r.end === 'number' ? r.end : next });
    }),
  );
  const attach = () => t.request<ProcessInfo>(`${prefix}:attach`, { ...base, offset: next }, { timeoutMs, idempotent: true });
  let first = true;
  offs.push(
    t.whenConnected(() => {
      if (first || stopped) return;
      attach().catch(() => {
        /* the next reconnection tries again */
      });
    }),
  );
  let info: ProcessInfo;
  try {
    info = await attach();
  } catch (e) {
    stopAll();
    throw e;
  } finally {
    first = false;
  }
  const sub: OutputSubscription = {
    get offset() {
      return next;
    },
    async stop() {
      if (stopped) return;
      stopAll();
      await t.request(`${prefix}:detach`, base, { timeoutMs, idempotent: true }).catch(() => {});
    },
  };
  return { sub, info };
}

/** Processes implements the SDK's background process and terminal methods. */
export class Processes {
  constructor(
    private readonly t: Transport,
    private readonly timeout: number,
  ) {}

  private ro() {
    return { timeoutMs: this.timeout };
  }

  async start(sandboxId: unknown, command: unknown, opts: unknown): Promise<ProcessInfo> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const cmd = commandFields(command, 'command');
    const o = v.optionalObject(opts, 'options', START_KEYS) ?? {};
    const body = v.compact({
      sandboxId: id,
      ...cmd,
      envs: v.optionalStringMap(o.envs, 'options.envs'),
      cwd: v.optionalString(o.cwd, 'options.cwd', false),
    });
    return this.t.request<ProcessInfo>('process:start', body, this.ro());
  }

  async list(sandboxId: unknown): Promise<ProcessInfo[]> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const data = await this.t.request<{ processes?: ProcessInfo[] }>('process:list', { sandboxId: id }, { ...this.ro(), idempotent: true });
    return Array.isArray(data?.processes) ? data.processes : [];
  }

  private ref(sandboxId: unknown, processId: unknown) {
    return { sandboxId: v.requiredString(sandboxId, 'sandboxId'), processId: v.requiredString(processId, 'processId') };
  }

  async output(sandboxId: unknown, processId: unknown, opts: unknown): Promise<ProcessOutput> {
    const ref = this.ref(sandboxId, processId);
    const o = v.optionalObject(opts, 'options', ['offset'] as const) ?? {};
    const offset = v.optionalNumber(o.offset, 'options.offset', { min: 0, integer: true });
    const data = await this.t.request<Record<string, unknown>>('process:read', v.compact({ ...ref, offset }), { ...this.ro(), idempotent: true });
    const chunks = (Array.isArray(data.chunks) ? data.chunks : []).map((c: Record<string, unknown>) => ({
      processId: ref.processId,
      stream: c.stream,
      data: String(c.data ?? ''),
      offset: Number(c.offset ?? 0),
      end: Number(c.offset ?? 0) + Buffer.byteLength(String(c.data ?? '')),
      ...(c.lost ? { lost: Number(c.lost) } : {}),
    })) as ProcessOutputChunk[];
    return {
      output: chunks.map((c) => c.data).join(''),
      stdout: chunks.filter((c) => c.stream === 'stdout').map((c) => c.data).join(''),
      stderr: chunks.filter((c) => c.stream === 'stderr').map((c) => c.data).join(''),
      chunks,
      end: Number(data.end ?? 0),
      lost: Number(data.lost ?? 0),
      exited: Boolean(data.exited),
      ...(typeof data.exitCode === 'number' ? { exitCode: data.exitCode } : {}),
      process: data.process as ProcessInfo,
    };
  }

  async onOutput(sandboxId: unknown, processId: unknown, callback: unknown, opts: unknown): Promise<OutputSubscription> {
    const ref = this.ref(sandboxId, processId);
    const cb = v.optionalFunction<(c: ProcessOutputChunk) => void>(callback, 'callback');
    if (!cb) throw new ValidationError('callback', 'callback is required');
    const o = v.optionalObject(opts, 'options', ON_OUTPUT_KEYS) ?? {};
    const offset = v.optionalNumber(o.offset, 'options.offset', { min: 0, integer: true }) ?? 0;
    const onExit = v.optionalFunction<(e: ProcessExit) => void>(o.onExit, 'options.onExit');
    const { sub } = await follow(this.t, this.timeout, 'process', 'processId', ref, offset, (r) => {
      cb({
        processId: ref.processId,
        stream: r.stream as 'stdout' | 'stderr',
        data: String(r.data ?? ''),
        offset: Number(r.offset ?? 0),
        end: Number(r.end ?? 0),
        ...(r.lost ? { lost: Number(r.lost) } : {}),
      });
    }, onExit);
    return sub;
  }

  async input(sandboxId: unknown, processId: unknown, data: unknown, opts: unknown): Promise<ProcessInfo> {
    const ref = this.ref(sandboxId, processId);
    const o = v.optionalObject(opts, 'options', ['close'] as const) ?? {};
    const body = v.compact({ ...ref, ...inputFields(data, 'data'), close: v.optionalBoolean(o.close, 'options.close') });
    return this.t.request<ProcessInfo>('process:stdin', body, this.ro());
  }

  async kill(sandboxId: unknown, processId: unknown, signal: unknown): Promise<ProcessInfo> {
    const ref = this.ref(sandboxId, processId);
    const sig = v.optionalString(signal, 'signal', false);
    if (sig !== undefined) return this.t.request<ProcessInfo>('process:signal', { ...ref, signal: sig }, this.ro());
    return this.t.request<ProcessInfo>('process:kill', ref, { ...this.ro(), idempotent: true });
  }

  async createTerminal(sandboxId: unknown, opts: unknown): Promise<Terminal> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const o = v.optionalObject(opts, 'options', TERMINAL_KEYS) ?? {};
    if (o.offset !== undefined) throw new ValidationError('options.offset', 'options.offset is for attachTerminal');
    const body = v.compact({
      sandboxId: id,
      ...commandFields(o.command, 'options.command', true),
      ...termSize(o.cols, o.rows, 'options.', false),
      envs: v.optionalStringMap(o.envs, 'options.envs'),
      cwd: v.optionalString(o.cwd, 'options.cwd', false),
    });
    const onData = v.optionalFunction<(d: string) => void>(o.onData, 'options.onData');
    const onExit = v.optionalFunction<(e: ProcessExit) => void>(o.onExit, 'options.onExit');
    const info = await this.t.request<ProcessInfo>('pty:create', body, this.ro());
    return this.terminal(id, info.id, 0, onData, onExit);
  }

  async attachTerminal(sandboxId: unknown, ptyId: unknown, opts: unknown): Promise<Terminal> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const pty = v.requiredString(ptyId, 'ptyId');
    const o = v.optionalObject(opts, 'options', ['offset', 'onData', 'onExit'] as const) ?? {};
    const offset = v.optionalNumber(o.offset, 'options.offset', { min: 0, integer: true }) ?? 0;
    const onData = v.optionalFunction<(d: string) => void>(o.onData, 'options.onData');
    const onExit = v.optionalFunction<(e: ProcessExit) => void>(o.onExit, 'options.onExit');
    return this.terminal(id, pty, offset, onData, onExit);
  }

  private async terminal(
    sandboxId: string,
    ptyId: string,
    offset: number,
    onData: ((d: string) => void) | undefined,
    onExit: ((e: ProcessExit) => void) | undefined,
  ): Promise<Terminal> {
    const ref = { sandboxId, ptyId };
    const { sub, info } = await follow(this.t, this.timeout, 'pty', 'ptyId', ref, offset, (r) => onData?.(String(r.data ?? '')), onExit);
    const t = this.t;
    const ro = this.ro();
    return {
      id: ptyId,
      pid: info.pid,
      get offset() {
        return sub.offset;
      },
      async write(data: string | Uint8Array) {
        await t.request('pty:input', { ...ref, ...inputFields(data, 'data') }, ro);
      },
      async resize(cols: number, rows: number) {
        await t.request('pty:resize', { ...ref, ...termSize(cols, rows, '', true) }, ro);
      },
      async signal(signal: string) {
        await t.request('pty:signal', { ...ref, signal: v.requiredString(signal, 'signal') }, ro);
      },
      async kill() {
        await t.request('pty:kill', ref, { ...ro, idempotent: true });
      },
      async detach() {
        await sub.stop();
      },
    };
  }
}
