/** The SandboxSDK class: the public methods, their checks, and their wire events. */
import { dedent } from './code.js';
import { SandboxError, SandboxSDKError, ValidationError } from './errors.js';
import { LOG_LEVELS, Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { commandFields, Processes } from './processes.js';
import { download, readAll, upload } from './transfer.js';
import { Transport, type StreamHandlers } from './transport.js';
import { startWatch } from './watch.js';
import type {
  BatchExecutionJob,
  BatchExecutionResult,
  BatchOptions,
  CodeContext,
  CommandResult,
  CreateContextOptions,
  CreateSandboxOptions,
  DirectoryWatch,
  Execution,
  ExecutionResult,
  FileEntry,
  FileListResponse,
  FileOperationOptions,
  LogLevel,
  MetricsData,
  OnOutputOptions,
  OutputSubscription,
  ProcessInfo,
  ProcessOutput,
  ProcessOutputChunk,
  StartProcessOptions,
  Terminal,
  TerminalOptions,
  RunCodeOptions,
  SandboxConfig,
  SandboxCreationResponse,
  SandboxNetwork,
  SandboxSDKConfig,
  SandboxStatus,
  SandboxTemplate,
  SDKLogger,
  TemplateConfig,
  TemplateListResponse,
  TemplateLogsOptions,
  UploadFileOptions,
  WatchDirectoryOptions,
  WatchEvent,
} from './types.js';
import * as v from './validate.js';

const DEFAULTS = {
  timeout: 60_000,
  maxRetries: 3,
  retryDelay: 1000,
  enableLogging: false,
  logLevel: 'info' as LogLevel,
  enableMetrics: false,
  metricsInterval: 30_000,
};

/** The server's largest execution timeout (24 h). */
const MAX_TIMEOUT_MS = 86_400_000;

/**
 * How much longer than an execution's own timeout the SDK waits for the
 * server's answer (the server interrupts the code at its deadline and may
 * restart the interpreter before it answers).
 */
const EXEC_GRACE_MS = 10_000;

/**
 * Content larger than this (in bytes, before any base64) is written with
 * the chunked upload (file:upload:*) instead of one file:write message,
 * which the server bounds at 16 MiB.
 */
const CHUNKED_WRITE_BYTES = 8 * 1024 * 1024;

/** What file:read answers for a file larger than it returns. */
const TOO_LARGE_TO_READ = /larger than the \d+ bytes file:read returns/;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const CONFIG_KEYS = [
  'apiKey',
  'serverUrl',
  'timeout',
  'maxRetries',
  'retryDelay',
  'enableLogging',
  'logLevel',
  'logger',
  'enableMetrics',
  'metricsInterval',
  'onMetrics',
  'socketOptions',
] as const;
const CREATE_SANDBOX_KEYS = ['templateId', 'name', 'expiryTime', 'initialEnvVars', 'resources', 'network'] as const;
const NETWORK_KEYS = ['egress', 'allow'] as const;
const EGRESS = ['none', 'internet', 'allowlist'] as const;
/** Most entries of network.allow (the server's limit). */
const MAX_ALLOW = 64;
const RESOURCE_KEYS = ['cpu', 'memoryMb', 'pids', 'diskMb'] as const;
const TEMPLATE_KEYS = [
  'name',
  'language',
  'version',
  'dockerImage',
  'dependencies',
  'installCommand',
  'defaultEnvVars',
] as const;
const CALLBACK_KEYS = ['onStdout', 'onStderr', 'onResult', 'onError'] as const;
const RUN_OPTION_KEYS = ['timeoutMs', 'envs', 'language', 'context', 'cwd', ...CALLBACK_KEYS] as const;
const TERMINAL_RUN_KEYS = [...RUN_OPTION_KEYS, 'background'] as const;
const BATCH_OPTION_KEYS = [...RUN_OPTION_KEYS, 'concurrency'] as const;
const FILE_KEYS = ['sandboxId', 'path', 'encoding', 'createParents', 'recursive'] as const;
const CONTEXT_KEYS = ['sandboxId', 'language', 'cwd', 'envs'] as const;
const JOB_KEYS = ['id', 'code', 'timeout', 'priority', 'language', 'context'] as const;

/**
 * SandboxSDK is a client of an sdbx server over Socket.IO. It connects on
 * the first call (or waitForConnection()), reconnects by itself, and must
 * be disconnect()ed when done.
 */
export class SandboxSDK {
  private readonly timeout: number;
  private readonly logger: Logger;
  private readonly metrics = new Metrics();
  private readonly transport: Transport;
  private metricsTimer: ReturnType<typeof setInterval> | undefined;
  private readonly serverUrl: string;
  private readonly procs: Processes;

  constructor(config: SandboxSDKConfig) {
    const c = v.object(config, 'config', CONFIG_KEYS);
    const apiKey = v.requiredString(c.apiKey, 'config.apiKey');
    const serverUrl = checkServerUrl(c.serverUrl);
    this.serverUrl = serverUrl;
    this.timeout = v.optionalNumber(c.timeout, 'config.timeout', { min: 1, max: MAX_TIMEOUT_MS, integer: true }) ?? DEFAULTS.timeout;
    const maxRetries = v.optionalNumber(c.maxRetries, 'config.maxRetries', { min: 0, max: 100, integer: true }) ?? DEFAULTS.maxRetries;
    const retryDelay = v.optionalNumber(c.retryDelay, 'config.retryDelay', { min: 0, max: 600_000 }) ?? DEFAULTS.retryDelay;
    const enableLogging = v.optionalBoolean(c.enableLogging, 'config.enableLogging') ?? DEFAULTS.enableLogging;
    const logLevel = v.optionalEnum(c.logLevel, 'config.logLevel', LOG_LEVELS) ?? DEFAULTS.logLevel;
    const sink = checkLogger(c.logger);
    const enableMetrics = v.optionalBoolean(c.enableMetrics, 'config.enableMetrics') ?? DEFAULTS.enableMetrics;
    const metricsInterval =
      v.optionalNumber(c.metricsInterval, 'config.metricsInterval', { min: 1 }) ?? DEFAULTS.metricsInterval;
    const onMetrics = v.optionalFunction<(m: MetricsData) => void>(c.onMetrics, 'config.onMetrics');
    const socketOptions = v.optionalObject(c.socketOptions, 'config.socketOptions') ?? {};

    this.logger = new Logger(enableLogging, logLevel, sink);
    this.transport = new Transport({
      apiKey,
      serverUrl,
      timeout: this.timeout,
      maxRetries,
      retryDelay,
      socketOptions,
      logger: this.logger,
      metrics: this.metrics,
    });
    this.procs = new Processes(this.transport, this.timeout);
    if (enableMetrics) {
      this.metricsTimer = setInterval(() => {
        const m = this.metrics.snapshot();
        this.logger.debug('metrics', { ...m });
        if (onMetrics) {
          try {
            onMetrics(m);
          } catch (e) {
            this.logger.error(`onMetrics callback threw: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      }, metricsInterval);
      this.metricsTimer.unref?.();
    }
    this.logger.debug(`SDK created for ${serverUrl}`, { timeout: this.timeout, maxRetries, retryDelay });
  }

  // -------------------------------------------------------------------------
  // Connection management

  /**
   * waitForConnection connects (if not yet connected) and resolves once the
   * server has accepted the API key. It rejects with AuthenticationError
   * for a refused key, and with ConnectionError when the server can't be
   * reached (after 1 + maxRetries attempts) or timeoutMs passes
   * (default: the SDK's timeout).
   */
  async waitForConnection(timeoutMs?: number): Promise<void> {
    const t = v.optionalNumber(timeoutMs, 'timeoutMs', { min: 1, integer: true }) ?? this.timeout;
    await this.transport.waitForConnection(t);
  }

  /** isReady tells whether the SDK is connected now. */
  isReady(): boolean {
    return this.transport.connected;
  }

  /**
   * disconnect closes the connection and stops the metrics timer; calls in
   * flight fail with ConnectionError. waitForConnection() connects again.
   */
  disconnect(): void {
    if (this.metricsTimer !== undefined) {
      clearInterval(this.metricsTimer);
      this.metricsTimer = undefined;
    }
    this.transport.disconnect();
  }

  // -------------------------------------------------------------------------
  // Sandboxes

  async createSandbox(options: CreateSandboxOptions): Promise<SandboxCreationResponse> {
    const o = v.object(options, 'options', CREATE_SANDBOX_KEYS);
    const body = v.compact({
      templateId: v.requiredString(o.templateId, 'options.templateId'),
      name: v.optionalString(o.name, 'options.name'),
      expiryTime: v.optionalNumber(o.expiryTime, 'options.expiryTime', { min: 0, integer: true }),
      initialEnvVars: v.optionalStringMap(o.initialEnvVars, 'options.initialEnvVars'),
      resources: resourcesOption(o.resources),
      network: networkOption(o.network),
    });
    const data = await this.transport.request<SandboxCreationResponse>('sandbox:create', body, {
      timeoutMs: this.timeout,
    });
    if (data?.sandbox?.id) this.metrics.sandboxActive(data.sandbox.id);
    return data;
  }

  async deleteSandbox(sandboxId: string): Promise<void> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    try {
      await this.transport.request('sandbox:delete', { sandboxId: id }, {
        timeoutMs: this.timeout,
        idempotent: true,
        notFoundAfterRetryIsSuccess: true,
      });
    } catch (e) {
      if (e instanceof SandboxSDKError && e.code === 'not_found') this.metrics.sandboxGone(id);
      throw e;
    }
    this.metrics.sandboxGone(id);
  }

  async getSandboxStatus(sandboxId: string): Promise<SandboxStatus> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    try {
      const sb = await this.transport.request<SandboxStatus>('sandbox:get', { sandboxId: id }, {
        timeoutMs: this.timeout,
        idempotent: true,
      });
      if (sb?.status === 'terminated') this.metrics.sandboxGone(id);
      else this.metrics.sandboxActive(id);
      return sb;
    } catch (e) {
      if (e instanceof SandboxSDKError && e.code === 'not_found') this.metrics.sandboxGone(id);
      throw e;
    }
  }

  async listSandboxes(): Promise<SandboxConfig[]> {
    const data = await this.transport.request<{ sandboxes?: SandboxConfig[] }>('sandbox:list', {}, {
      timeoutMs: this.timeout,
      idempotent: true,
    });
    const list = Array.isArray(data?.sandboxes) ? data.sandboxes : [];
    this.metrics.sandboxesListed(list.filter((s) => s.status !== 'terminated').map((s) => s.id));
    return list;
  }

  // -------------------------------------------------------------------------
  // Templates

  async getTemplates(page?: number, pageSize?: number): Promise<TemplateListResponse> {
    const body = v.compact({
      page: v.optionalNumber(page, 'page', { min: 1, integer: true }),
      pageSize: v.optionalNumber(pageSize, 'pageSize', { min: 1, max: 100, integer: true }),
    });
    return this.transport.request<TemplateListResponse>('template:list', body, {
      timeoutMs: this.timeout,
      idempotent: true,
    });
  }

  async getTemplate(templateId: string): Promise<SandboxTemplate> {
    const id = v.requiredString(templateId, 'templateId');
    return this.transport.request<SandboxTemplate>('template:get', { templateId: id }, {
      timeoutMs: this.timeout,
      idempotent: true,
    });
  }

  /**
   * getTemplateLogs calls onLine for each line of the output of the
   * template's last build (the last 1 MiB is kept) and resolves with the
   * template's status; with follow, a build in progress is followed until
   * it ends.
   */
  async getTemplateLogs(
    templateId: string,
    options?: TemplateLogsOptions,
  ): Promise<{ status: SandboxTemplate['status']; error?: string; template: SandboxTemplate }> {
    const id = v.requiredString(templateId, 'templateId');
    const o = options === undefined ? {} : v.object(options, 'options', ['follow', 'onLine'] as const);
    const follow = v.optionalBoolean(o.follow, 'options.follow');
    if (o.onLine !== undefined && typeof o.onLine !== 'function') {
      throw new ValidationError('options.onLine', `options.onLine must be a function (got ${v.describe(o.onLine)})`);
    }
    const onLine = o.onLine as ((line: string) => void) | undefined;
    const data = await this.transport.request<{ status: SandboxTemplate['status']; error?: string; template: SandboxTemplate }>(
      'template:logs',
      v.compact({ templateId: id, follow }),
      // A followed build may take as long as the server lets builds run.
      // Not retried: a retry would deliver the lines again.
      { timeoutMs: follow ? Math.max(this.timeout, 15 * 60_000) : this.timeout, stream: { onLog: onLine ?? (() => {}) } },
    );
    return { status: data.status, ...(data.error ? { error: data.error } : {}), template: data.template };
  }

  /** createTemplate registers a template; it answers at once with status 'building'. */
  async createTemplate(template: TemplateConfig): Promise<SandboxTemplate> {
    const t = v.object(template, 'template', TEMPLATE_KEYS);
    const body = v.compact({
      name: v.requiredString(t.name, 'template.name'),
      language: v.requiredString(t.language, 'template.language'),
      version: v.optionalString(t.version, 'template.version'),
      dockerImage: v.optionalString(t.dockerImage, 'template.dockerImage'),
      dependencies: v.optionalStringArray(t.dependencies, 'template.dependencies'),
      installCommand: v.optionalString(t.installCommand, 'template.installCommand'),
      defaultEnvVars: v.optionalStringMap(t.defaultEnvVars, 'template.defaultEnvVars'),
    });
    return this.transport.request<SandboxTemplate>('template:create', body, { timeoutMs: this.timeout });
  }

  // -------------------------------------------------------------------------
  // Code execution

  /**
   * runCode runs code in a code context of the sandbox (the language's
   * default context unless opts.context says otherwise), streaming its
   * output to the callbacks. An exception raised by the code is not a
   * failure of the call: it is in result.execution.error (and onError).
   */
  async runCode(sandboxId: string, code: string, opts?: RunCodeOptions): Promise<ExecutionResult> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const src = v.requiredString(code, 'code');
    const o = v.optionalObject(opts, 'options', RUN_OPTION_KEYS) ?? {};
    if (o.cwd !== undefined) {
      throw new ValidationError('options.cwd', 'options.cwd is for runTerminal; runCode uses the context\'s cwd (createCodeContext({cwd}))');
    }
    const handlers = checkHandlers(o);
    const timeoutMs = v.optionalNumber(o.timeoutMs, 'options.timeoutMs', { min: 1, max: MAX_TIMEOUT_MS, integer: true }) ?? this.timeout;
    const language = v.optionalString(o.language, 'options.language', false);
    const context = v.optionalContextId(o.context, 'options.context');
    const lang = language ?? v.contextLanguage(o.context);
    const body = v.compact({
      sandboxId: id,
      code: lang === 'javascript' ? src : dedent(src),
      language,
      context,
      envs: v.optionalStringMap(o.envs, 'options.envs'),
      timeoutMs,
    });
    const data = await this.transport.request<ExecutionResult>('code:run', body, {
      timeoutMs: timeoutMs + EXEC_GRACE_MS,
      stream: handlers,
      execution: true,
    });
    return normalizeExecutionResult(data);
  }

  /**
   * runTerminal runs a shell command (through bash -c) and resolves with its
   * stdout, lines joined with "\n". A non-zero exit is not an error; use
   * runCommand for the exit code and stderr.
   *
   * With `background: true` it resolves at once with the started
   * process (id, pid): the command runs on in the sandbox after the call
   * and after the client disconnects; follow it with onOutput,
   * getProcessOutput, sendInput and killProcess.
   */
  runTerminal(sandboxId: string, command: string, opts: StartProcessOptions & { background: true }): Promise<ProcessInfo>;
  runTerminal(sandboxId: string, command: string, opts?: RunCodeOptions & { background?: false }): Promise<string>;
  async runTerminal(
    sandboxId: string,
    command: string,
    opts?: (RunCodeOptions | StartProcessOptions) & { background?: boolean },
  ): Promise<string | ProcessInfo> {
    const o = v.optionalObject(opts, 'options', TERMINAL_RUN_KEYS) ?? {};
    const background = v.optionalBoolean(o.background, 'options.background');
    const { background: _drop, ...rest } = o;
    if (background) {
      for (const k of ['timeoutMs', 'language', 'context', ...CALLBACK_KEYS] as const) {
        if (rest[k] !== undefined) {
          throw new ValidationError(`options.${k}`, `options.${k} does not apply to a background process (use onOutput for its output)`);
        }
      }
      return this.procs.start(sandboxId, v.requiredString(command, 'command'), rest);
    }
    const res = await this.runCommand(sandboxId, v.requiredString(command, 'command'), rest as RunCodeOptions);
    return res.stdout.join('\n');
  }

  /**
   * runCommand runs a shell command (a string, through bash -c) or an argv
   * (an array, run directly) and resolves with its exit code and output.
   */
  async runCommand(sandboxId: string, command: string | string[], opts?: RunCodeOptions): Promise<CommandResult> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const cmd = commandFields(command, 'command');
    const o = v.optionalObject(opts, 'options', RUN_OPTION_KEYS) ?? {};
    for (const k of ['language', 'context'] as const) {
      if (o[k] !== undefined) {
        throw new ValidationError(`options.${k}`, `options.${k} is for runCode; a terminal command runs in the shell`);
      }
    }
    const handlers = checkHandlers(o);
    const timeoutMs = v.optionalNumber(o.timeoutMs, 'options.timeoutMs', { min: 1, max: MAX_TIMEOUT_MS, integer: true }) ?? this.timeout;
    const body = v.compact({
      sandboxId: id,
      ...cmd,
      envs: v.optionalStringMap(o.envs, 'options.envs'),
      cwd: v.optionalString(o.cwd, 'options.cwd', false),
      timeoutMs,
    });
    const data = await this.transport.request<CommandResult>('terminal:run', body, {
      timeoutMs: timeoutMs + EXEC_GRACE_MS,
      stream: handlers,
      execution: true,
    });
    return {
      exitCode: data?.exitCode ?? 0,
      stdout: Array.isArray(data?.stdout) ? data.stdout : [],
      stderr: Array.isArray(data?.stderr) ? data.stderr : [],
      durationMs: data?.durationMs ?? 0,
      truncated: data?.truncated ?? false,
    };
  }

  // -------------------------------------------------------------------------
  // Background processes and terminals

  /**
   * startProcess starts a command (a string through bash -c, or an argv)
   * in the background and resolves at once with the process (id, pid). It
   * runs until it exits or is killed, whatever happens to this client.
   */
  async startProcess(sandboxId: string, command: string | string[], opts?: StartProcessOptions): Promise<ProcessInfo> {
    return this.procs.start(sandboxId, command, opts);
  }

  /** listProcesses lists the sandbox's background processes, oldest first (the last 100 exited ones too). */
  async listProcesses(sandboxId: string): Promise<ProcessInfo[]> {
    return this.procs.list(sandboxId);
  }

  /**
   * getProcessOutput resolves with the output the sandbox buffers for the
   * process (its last 1 MiB) from options.offset (default 0), and whether
   * it has exited. Pass the result's `end` as the next offset to read on.
   */
  async getProcessOutput(sandboxId: string, processId: string, opts?: { offset?: number }): Promise<ProcessOutput> {
    return this.procs.output(sandboxId, processId, opts);
  }

  /**
   * onOutput delivers the process's output from options.offset (default
   * 0) to callback as it is written, then calls options.onExit. After a
   * reconnection it re-attaches from the last offset delivered, so
   * nothing is repeated or skipped (unless the sandbox's buffer moved on:
   * the chunk then says how many bytes were `lost`). stop() ends the
   * delivery, never the process.
   */
  async onOutput(
    sandboxId: string,
    processId: string,
    callback: (chunk: ProcessOutputChunk) => void,
    opts?: OnOutputOptions,
  ): Promise<OutputSubscription> {
    return this.procs.onOutput(sandboxId, processId, callback, opts);
  }

  /** sendInput writes data to the process's stdin; options.close closes stdin after it (EOF). */
  async sendInput(sandboxId: string, processId: string, data: string | Uint8Array, opts?: { close?: boolean }): Promise<ProcessInfo> {
    return this.procs.input(sandboxId, processId, data, opts);
  }

  /**
   * killProcess kills the process's group (SIGKILL), or sends it signal
   * ("SIGTERM", "TERM", "15") when given. Killing an exited process is
   * not an error; signalling one is.
   */
  async killProcess(sandboxId: string, processId: string, signal?: string): Promise<ProcessInfo> {
    return this.procs.kill(sandboxId, processId, signal);
  }

  /**
   * createTerminal opens an interactive terminal (the sandbox's shell, or
   * options.command) on a pseudo-terminal in the sandbox: onData gets what
   * it shows, write() types into it. The session stays until its program
   * exits (onExit) or kill(); detach() only stops the output, and
   * attachTerminal(sandboxId, terminal.id, {offset}) resumes it.
   */
  async createTerminal(sandboxId: string, opts?: TerminalOptions): Promise<Terminal> {
    return this.procs.createTerminal(sandboxId, opts);
  }

  /** attachTerminal re-attaches to a running terminal session from options.offset (default 0). */
  async attachTerminal(sandboxId: string, terminalId: string, opts?: Pick<TerminalOptions, 'offset' | 'onData' | 'onExit'>): Promise<Terminal> {
    return this.procs.attachTerminal(sandboxId, terminalId, opts);
  }

  // -------------------------------------------------------------------------
  // Files

  /** readFile resolves with the file's content (utf8 text, or base64 with encoding 'base64'). */
  async readFile(options: FileOperationOptions): Promise<string> {
    const o = v.object(options, 'options', FILE_KEYS);
    const body = v.compact({
      sandboxId: v.requiredString(o.sandboxId, 'options.sandboxId'),
      path: v.requiredString(o.path, 'options.path'),
      encoding: v.optionalEnum(o.encoding, 'options.encoding', ['utf8', 'base64'] as const),
    });
    v.optionalBoolean(o.createParents, 'options.createParents');
    v.optionalBoolean(o.recursive, 'options.recursive');
    try {
      const data = await this.transport.request<{ content?: string }>('file:read', body, {
        timeoutMs: this.timeout,
        idempotent: true,
      });
      return typeof data?.content === 'string' ? data.content : '';
    } catch (e) {
      if (!(e instanceof SandboxSDKError) || e.code !== 'invalid_argument' || !TOO_LARGE_TO_READ.test(e.message)) throw e;
    }
    // Too large for one message: the chunked download.
    const { stream } = await download(this.transport, this.timeout, body.sandboxId as string, body.path as string);
    const bytes = await readAll(stream);
    if (body.encoding === 'base64') return bytes.toString('base64');
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new SandboxError(`file ${body.path}: not valid UTF-8 text; read it with encoding "base64"`, 'invalid_argument', {
        operation: 'file:read',
      });
    }
  }

  /**
   * writeFile writes content (a string in options.encoding, default utf8;
   * or bytes) atomically and resolves with the file's path.
   */
  async writeFile(options: FileOperationOptions, content: string | Uint8Array): Promise<string> {
    const o = v.object(options, 'options', FILE_KEYS);
    let encoding = v.optionalEnum(o.encoding, 'options.encoding', ['utf8', 'base64'] as const);
    let text: string;
    if (typeof content === 'string') {
      text = content;
    } else if (content instanceof Uint8Array) {
      text = Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('base64');
      encoding = 'base64';
    } else if (content === undefined || content === null) {
      throw new ValidationError('content', 'content is required');
    } else {
      throw new ValidationError('content', `content must be a string or a Uint8Array (got ${v.describe(content)})`);
    }
    v.optionalBoolean(o.recursive, 'options.recursive');
    const size = typeof content === 'string' ? (encoding === 'base64' ? (text.length * 3) / 4 : Buffer.byteLength(text, 'utf8')) : content.byteLength;
    if (size > CHUNKED_WRITE_BYTES) {
      // Too large for one message: the chunked upload.
      let bytes: Uint8Array;
      if (content instanceof Uint8Array) bytes = content;
      else if (encoding === 'base64') {
        if (!BASE64.test(text)) {
          throw new ValidationError('content', 'content is not valid base64 (standard alphabet)');
        }
        bytes = Buffer.from(text, 'base64');
      } else bytes = Buffer.from(text, 'utf8');
      const entry = await upload(
        this.transport,
        this.timeout,
        v.requiredString(o.sandboxId, 'options.sandboxId'),
        v.requiredString(o.path, 'options.path'),
        bytes,
        { createParents: v.optionalBoolean(o.createParents, 'options.createParents') },
      );
      return typeof entry?.path === 'string' && entry.path !== '' ? entry.path : (o.path as string);
    }
    const body = v.compact({
      sandboxId: v.requiredString(o.sandboxId, 'options.sandboxId'),
      path: v.requiredString(o.path, 'options.path'),
      content: text,
      encoding,
      createParents: v.optionalBoolean(o.createParents, 'options.createParents'),
    });
    const entry = await this.transport.request<Partial<FileEntry>>('file:write', body, {
      timeoutMs: this.timeout,
      idempotent: true,
    });
    return typeof entry?.path === 'string' && entry.path !== '' ? entry.path : (body.path as string);
  }

  /** deleteFile deletes a file (or, with recursive, a directory tree). */
  async deleteFile(options: Omit<FileOperationOptions, 'encoding'>): Promise<void> {
    const o = v.object(options, 'options', FILE_KEYS);
    v.optionalBoolean(o.createParents, 'options.createParents');
    const body = v.compact({
      sandboxId: v.requiredString(o.sandboxId, 'options.sandboxId'),
      path: v.requiredString(o.path, 'options.path'),
      recursive: v.optionalBoolean(o.recursive, 'options.recursive'),
    });
    await this.transport.request('file:delete', body, {
      timeoutMs: this.timeout,
      idempotent: true,
      notFoundAfterRetryIsSuccess: true,
    });
  }

  /**
   * uploadFile streams content (bytes, or a Readable / async iterable of
   * bytes) into path over the chunked Socket.IO upload, with bounded
   * memory whatever its size. The file is replaced atomically when all of
   * it has arrived; on any failure it is left as it was.
   */
  async uploadFile(
    sandboxId: string,
    path: string,
    content: Uint8Array | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
    options?: UploadFileOptions,
  ): Promise<FileEntry> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const p = v.requiredString(path, 'path');
    const o = options === undefined ? {} : v.object(options, 'options', ['createParents'] as const);
    const createParents = v.optionalBoolean(o.createParents, 'options.createParents');
    const iterable =
      content !== null && typeof content === 'object' && (Symbol.asyncIterator in content || Symbol.iterator in content);
    if (!(content instanceof Uint8Array) && !iterable) {
      throw new ValidationError('content', `content must be a Uint8Array or a stream of bytes (got ${v.describe(content)})`);
    }
    return upload(this.transport, this.timeout, id, p, content, { createParents });
  }

  /**
   * downloadFile opens a file for a chunked Socket.IO download and resolves
   * with its size and a Readable of its content, fetched as it is read.
   */
  async downloadFile(sandboxId: string, path: string): Promise<{ size: number; stream: import('node:stream').Readable }> {
    return download(this.transport, this.timeout, v.requiredString(sandboxId, 'sandboxId'), v.requiredString(path, 'path'));
  }

  /**
   * watchDirectory calls onEvent for every change below path (created,
   * modified, deleted, renamed; overflow when changes were lost) and
   * resolves once the watch is in place. stop() ends it; it also ends when
   * the directory or the sandbox is deleted, or the connection is lost
   * (options.onEnd, and the watch's ended promise, say which).
   */
  async watchDirectory(
    sandboxId: string,
    path: string,
    onEvent: (event: WatchEvent) => void,
    options?: WatchDirectoryOptions,
  ): Promise<DirectoryWatch> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const p = v.requiredString(path, 'path');
    if (typeof onEvent !== 'function') {
      throw new ValidationError('onEvent', `onEvent must be a function (got ${v.describe(onEvent)})`);
    }
    const o = options === undefined ? {} : v.object(options, 'options', ['recursive', 'onEnd'] as const);
    const recursive = v.optionalBoolean(o.recursive, 'options.recursive');
    if (o.onEnd !== undefined && typeof o.onEnd !== 'function') {
      throw new ValidationError('options.onEnd', `options.onEnd must be a function (got ${v.describe(o.onEnd)})`);
    }
    return startWatch(this.transport, this.timeout, id, p, onEvent, {
      recursive,
      onEnd: o.onEnd as WatchDirectoryOptions['onEnd'],
    });
  }

  /** listFiles lists a directory (default /workspace), sorted by name. */
  async listFiles(sandboxId: string, dirPath?: string): Promise<FileListResponse> {
    const body = v.compact({
      sandboxId: v.requiredString(sandboxId, 'sandboxId'),
      path: v.optionalString(dirPath, 'dirPath', false),
    });
    const data = await this.transport.request<FileListResponse>('file:list', body, {
      timeoutMs: this.timeout,
      idempotent: true,
    });
    return { ...data, entries: Array.isArray(data?.entries) ? data.entries : [] };
  }

  // -------------------------------------------------------------------------
  // Contexts

  async createCodeContext(options: CreateContextOptions): Promise<CodeContext> {
    const o = v.object(options, 'options', CONTEXT_KEYS);
    const body = v.compact({
      sandboxId: v.requiredString(o.sandboxId, 'options.sandboxId'),
      language: v.optionalString(o.language, 'options.language', false),
      cwd: v.optionalString(o.cwd, 'options.cwd', false),
      envs: v.optionalStringMap(o.envs, 'options.envs'),
    });
    return this.transport.request<CodeContext>('context:create', body, { timeoutMs: this.timeout });
  }

  /** deleteCodeContext deletes a context (by id, or the CodeContext itself). */
  async deleteCodeContext(contextId: string | CodeContext): Promise<void> {
    const id = v.optionalContextId(contextId, 'contextId');
    if (id === undefined) throw new ValidationError('contextId', 'contextId is required');
    await this.transport.request('context:delete', { contextId: id }, {
      timeoutMs: this.timeout,
      idempotent: true,
      notFoundAfterRetryIsSuccess: true,
    });
  }

  async listCodeContexts(sandboxId: string): Promise<CodeContext[]> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const data = await this.transport.request<{ contexts?: CodeContext[] }>('context:list', { sandboxId: id }, {
      timeoutMs: this.timeout,
      idempotent: true,
    });
    return Array.isArray(data?.contexts) ? data.contexts : [];
  }

  // -------------------------------------------------------------------------
  // Batches

  /**
   * executeBatch runs jobs (higher priority first, at most
   * opts.concurrency at once) and resolves with one result per job, in job
   * order. A failing job never stops the others. opts.timeoutMs and
   * opts.language are the defaults of jobs without their own; streamed
   * output, results and errors carry the jobId.
   */
  async executeBatch(sandboxId: string, jobs: BatchExecutionJob[], opts?: BatchOptions): Promise<BatchExecutionResult[]> {
    const id = v.requiredString(sandboxId, 'sandboxId');
    if (!Array.isArray(jobs)) throw new ValidationError('jobs', `jobs must be an array (got ${v.describe(jobs)})`);
    if (jobs.length === 0) throw new ValidationError('jobs', 'jobs must not be empty');
    const o = v.optionalObject(opts, 'options', BATCH_OPTION_KEYS) ?? {};
    for (const k of ['envs', 'context', 'cwd'] as const) {
      if (o[k] !== undefined) {
        throw new ValidationError(`options.${k}`, `options.${k} is not supported by executeBatch (set context per job)`);
      }
    }
    const handlers = checkHandlers(o);
    const defaultTimeout =
      v.optionalNumber(o.timeoutMs, 'options.timeoutMs', { min: 1, max: MAX_TIMEOUT_MS, integer: true }) ?? this.timeout;
    const defaultLanguage = v.optionalString(o.language, 'options.language', false);
    const concurrency = v.optionalNumber(o.concurrency, 'options.concurrency', { min: 1, max: 16, integer: true });
    const seen = new Set<string>();
    let total = 0;
    const wireJobs = jobs.map((job, i) => {
      const f = `jobs[${i}]`;
      const j = v.object(job, f, JOB_KEYS);
      const jobId = v.requiredString(j.id, `${f}.id`);
      if (seen.has(jobId)) throw new ValidationError(`${f}.id`, `${f}.id "${jobId}" is used by another job`);
      seen.add(jobId);
      const timeout = v.optionalNumber(j.timeout, `${f}.timeout`, { min: 1, max: MAX_TIMEOUT_MS, integer: true }) ?? defaultTimeout;
      total += timeout;
      const language = v.optionalString(j.language, `${f}.language`, false) ?? defaultLanguage;
      const code = v.requiredString(j.code, `${f}.code`);
      const lang = language ?? v.contextLanguage(j.context);
      return v.compact({
        id: jobId,
        code: lang === 'javascript' ? code : dedent(code),
        timeout,
        priority: v.optionalNumber(j.priority, `${f}.priority`, { integer: true }),
        language,
        context: v.optionalContextId(j.context, `${f}.context`),
      });
    });
    const data = await this.transport.request<{ results?: BatchExecutionResult[] }>(
      'batch:run',
      v.compact({ sandboxId: id, jobs: wireJobs, concurrency }),
      { timeoutMs: Math.min(total, MAX_TIMEOUT_MS) + EXEC_GRACE_MS, stream: handlers, execution: true },
    );
    const results = Array.isArray(data?.results) ? data.results : [];
    return results.map((r) => (r.execution ? { ...r, execution: normalizeExecution(r.execution) } : r));
  }

  // -------------------------------------------------------------------------
  // Ports

  /**
   * portUrl returns the URL through which the server proxies HTTP and
   * WebSocket requests to `port` on the sandbox's loopback interface (a
   * process inside it listening on 127.0.0.1 or 0.0.0.0), e.g.
   * `http://localhost:3000/v1/sandboxes/sb-x/ports/8000/`; append the path
   * the process serves. Requests to it need the API key in a header
   * (`Authorization: Bearer <key>` or `X-API-Key`), never in the URL; a
   * port nothing listens on answers 502 with the code "unavailable".
   */
  portUrl(sandboxId: string, port: number): string {
    const id = v.requiredString(sandboxId, 'sandboxId');
    const p = v.requiredNumber(port, 'port', { min: 1, max: 65535, integer: true });
    const u = new URL(this.serverUrl);
    if (u.protocol === 'ws:') u.protocol = 'http:';
    if (u.protocol === 'wss:') u.protocol = 'https:';
    const base = u.pathname.replace(/\/+$/, '');
    u.pathname = `${base}/v1/sandboxes/${encodeURIComponent(id)}/ports/${p}/`;
    u.search = '';
    u.hash = '';
    return u.toString();
  }

  /** getHost is portUrl under the name other sandbox SDKs use. */
  getHost(sandboxId: string, port: number): string {
    return this.portUrl(sandboxId, port);
  }

  // -------------------------------------------------------------------------
  // Monitoring

  /** getMetrics returns a snapshot of the SDK's counters. */
  getMetrics(): MetricsData {
    return this.metrics.snapshot();
  }
}

function checkServerUrl(value: unknown): string {
  const s = v.requiredString(value, 'config.serverUrl');
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new ValidationError('config.serverUrl', `config.serverUrl must be a URL like http://localhost:3000 (got "${s}")`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(u.protocol)) {
    throw new ValidationError('config.serverUrl', `config.serverUrl must be an http(s) or ws(s) URL (got "${s}")`);
  }
  return s;
}

function checkLogger(value: unknown): SDKLogger | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) {
    throw new ValidationError('config.logger', `config.logger must be an object with debug, info, warn and error methods (got ${v.describe(value)})`);
  }
  for (const level of LOG_LEVELS) {
    if (typeof (value as Record<string, unknown>)[level] !== 'function') {
      throw new ValidationError(`config.logger.${level}`, `config.logger.${level} must be a function`);
    }
  }
  return value as SDKLogger;
}

function checkHandlers(o: Record<string, unknown>): StreamHandlers {
  const h: StreamHandlers = {};
  for (const k of CALLBACK_KEYS) {
    const fn = v.optionalFunction(o[k], `options.${k}`);
    if (fn) (h as Record<string, unknown>)[k] = fn;
  }
  return h;
}


function normalizeExecution(e: Partial<Execution> | undefined): Execution {
  const logs = e?.logs;
  return {
    ...e,
    logs: {
      stdout: Array.isArray(logs?.stdout) ? logs.stdout : [],
      stderr: Array.isArray(logs?.stderr) ? logs.stderr : [],
    },
    results: Array.isArray(e?.results) ? e.results : [],
  };
}

function normalizeExecutionResult(r: ExecutionResult | undefined): ExecutionResult {
  if (!r || typeof r !== 'object' || typeof r.execution !== 'object') {
    throw new SandboxError('code:run: the server answered without an execution', 'internal', { operation: 'code:run' });
  }
  return { ...r, execution: normalizeExecution(r.execution) };
}

/**
 * Checks createSandbox's `network` option (undefined when absent). The
 * server checks each CIDR and domain of `allow`.
 */
function networkOption(value: unknown): SandboxNetwork | undefined {
  if (value === undefined) return undefined;
  const n = v.object(value, 'options.network', NETWORK_KEYS);
  const egress = v.optionalEnum(n.egress, 'options.network.egress', EGRESS);
  if (egress === undefined) {
    throw new ValidationError('options.network.egress', "options.network.egress must be one of 'none', 'internet', 'allowlist' (got undefined)");
  }
  const allow = v.optionalStringArray(n.allow, 'options.network.allow');
  if (allow !== undefined && allow.length > 0 && egress !== 'allowlist') {
    throw new ValidationError('options.network.allow', `options.network.allow is only allowed with egress 'allowlist' (egress is '${egress}')`);
  }
  if (allow !== undefined && allow.length > MAX_ALLOW) {
    throw new ValidationError('options.network.allow', `options.network.allow has ${allow.length} entries; at most ${MAX_ALLOW} are allowed`);
  }
  allow?.forEach((a, i) => v.requiredString(a, `options.network.allow[${i}]`));
  return allow === undefined ? { egress } : { egress, allow };
}

/** Checks createSandbox's `resources` option (undefined when absent). */
function resourcesOption(value: unknown): Record<string, number> | undefined {
  if (value === undefined) return undefined;
  const r = v.object(value, 'options.resources', RESOURCE_KEYS);
  return v.compact({
    cpu: v.optionalNumber(r.cpu, 'options.resources.cpu', { min: 0 }),
    memoryMb: v.optionalNumber(r.memoryMb, 'options.resources.memoryMb', { min: 0, integer: true }),
    pids: v.optionalNumber(r.pids, 'options.resources.pids', { min: 0, integer: true }),
    diskMb: v.optionalNumber(r.diskMb, 'options.resources.diskMb', { min: 0, integer: true }),
  }) as Record<string, number>;
}
