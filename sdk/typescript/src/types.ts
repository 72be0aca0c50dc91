/**
 * Public types of sdb-x-sdk. Field names follow the sdbx wire protocol
 * (docs/protocol.md): camelCase, times in records as RFC 3339 strings,
 * timestamps of streamed lines as Unix milliseconds.
 */
import type { SandboxSDKError } from './errors.js';

/** Log levels, from the most to the least verbose. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Where log lines go when `enableLogging` is true (default: `console`). */
export interface SDKLogger {
  debug(message: string, ...meta: unknown[]): void;
  info(message: string, ...meta: unknown[]): void;
  warn(message: string, ...meta: unknown[]): void;
  error(message: string, ...meta: unknown[]): void;
}

export interface SandboxSDKConfig {
  /** Required: API key for authentication. */
  apiKey: string;
  /** Required: server URL (e.g. http://localhost:3000). */
  serverUrl: string;
  /**
   * Default timeout in ms (default: 60000): the execution timeout sent with
   * runCode/runTerminal when the call gives none, and how long any other
   * call waits for its answer.
   */
  timeout?: number;
  /** Retries of connection attempts and idempotent calls (default: 3). Code is never re-run. */
  maxRetries?: number;
  /** Delay before the first retry in ms, doubled on each further retry (default: 1000). */
  retryDelay?: number;
  /** Enable logging (default: false). */
  enableLogging?: boolean;
  /** Least severe level that is logged (default: 'info'). */
  logLevel?: LogLevel;
  /** Where log lines go (default: console). */
  logger?: SDKLogger;
  /** Take a metrics snapshot every `metricsInterval` ms (default: false). */
  enableMetrics?: boolean;
  /** Metrics collection interval in ms (default: 30000). */
  metricsInterval?: number;
  /** Called with each periodic metrics snapshot (needs `enableMetrics`). */
  onMetrics?: (metrics: MetricsData) => void;
  /** Custom Socket.IO client options, passed through to `io()` (they win over the SDK's). */
  socketOptions?: Record<string, unknown>;
}

// ---------------------------------------------------------------------------
// Sandboxes

/** The states of a sandbox. */
export type SandboxState = 'creating' | 'ready' | 'running' | 'stopped' | 'error' | 'terminated';

/** A sandbox record, as the server reports it. */
export interface SandboxConfig {
  id: string;
  name: string;
  templateId: string;
  status: SandboxState;
  envVars: Record<string, string>;
  /** RFC 3339. */
  createdAt: string;
  /** RFC 3339. */
  updatedAt: string;
  /** RFC 3339; absent when the sandbox never expires. */
  expiresAt?: string;
  /** Why the sandbox is in state `error` ('' otherwise). */
  error?: string;
  /** The sandbox's effective limits. */
  resources?: SandboxResources;
  /** The sandbox's egress policy. */
  network?: SandboxNetwork;
}

/**
 * What a sandbox may reach over the network: `none` (loopback only),
 * `internet` (public addresses; never private ranges, cloud metadata, the
 * host or other sandboxes) or `allowlist` (only `allow`).
 */
export type SandboxEgress = 'none' | 'internet' | 'allowlist';

/** A sandbox's egress policy; left out of createSandbox, the server's default applies (usually `internet`). */
export interface SandboxNetwork {
  egress: SandboxEgress;
  /**
   * With egress `allowlist`: IPv4 CIDRs ('203.0.113.0/24'), domains
   * ('registry.npmjs.org') and wildcards ('*.example.org'), at most 64.
   */
  allow?: string[];
}

/** A sandbox's hard limits; in createSandbox a field left out takes the server's default. */
export interface SandboxResources {
  /** CPUs, e.g. 0.5 or 2. */
  cpu?: number;
  /** Memory in MiB. */
  memoryMb?: number;
  /** Most processes at once. */
  pids?: number;
  /**
   * Disk quota in MiB of the sandbox's writable files (everything it writes
   * outside its size-capped tmpfs mounts /tmp, /var/tmp, /dev/shm, /run).
   * Absent in a sandbox record when the server does not enforce disk quotas;
   * asking for it then is an InvalidArgument error.
   */
  diskMb?: number;
}

/** What getSandboxStatus returns: the full sandbox record (see `status`). */
export type SandboxStatus = SandboxConfig;

export interface CreateSandboxOptions {
  /** Required: the template to start from, e.g. 'python-3-11'. */
  templateId: string;
  /** 1-128 characters. */
  name?: string;
  /** Lifetime in ms; 0 or absent: the server default. At most 7 days. */
  expiryTime?: number;
  /** Environment of every process in the sandbox. Entries whose value is undefined are left out. */
  initialEnvVars?: Record<string, string | undefined>;
  /** Limits beyond the server's defaults (up to its maxima). */
  resources?: SandboxResources;
  /** Egress policy; absent: the server's default. */
  network?: SandboxNetwork;
}

export interface SandboxCreationResponse {
  sandbox: SandboxConfig;
}

// ---------------------------------------------------------------------------
// Templates

export interface SandboxTemplate {
  id: string;
  name: string;
  language: string;
  /** The version that really runs in the sandbox. */
  version: string;
  description: string;
  dependencies: string[];
  defaultEnvVars: Record<string, string>;
  defaultCwd: string;
  /** 'ready', 'building', 'failed' or 'unavailable'. */
  status: string;
  builtIn: boolean;
  /** RFC 3339. */
  createdAt: string;
  /** Why a build failed. */
  error?: string;
}

export interface TemplateListResponse {
  templates: SandboxTemplate[];
  total: number;
  page: number;
  pageSize: number;
}

export interface TemplateConfig {
  /** Required. */
  name: string;
  /** Required: 'python' or 'javascript'. */
  language: string;
  version?: string;
  dockerImage?: string;
  dependencies?: string[];
  installCommand?: string;
  defaultEnvVars?: Record<string, string | undefined>;
}

// ---------------------------------------------------------------------------
// Code execution

/** One streamed output line. */
export interface OutputMessage {
  line: string;
  /** Unix milliseconds. */
  timestamp: number;
  /** The batch job the line belongs to (executeBatch only). */
  jobId?: string;
}

/**
 * A rich value: the trailing expression, display(...), a figure. `text` is
 * present when the value has a plain-text form; the other fields only when
 * the value offers that MIME type (binary ones base64-encoded).
 */
export interface Result {
  text?: string;
  html?: string;
  markdown?: string;
  svg?: string;
  png?: string;
  jpeg?: string;
  pdf?: string;
  latex?: string;
  json?: unknown;
  javascript?: string;
  data?: Record<string, unknown>;
  isMainResult?: boolean;
  extra?: Record<string, unknown>;
  /** The batch job the result belongs to (executeBatch only). */
  jobId?: string;
}

/** An exception raised by the executed code. */
export interface ExecutionError {
  name: string;
  value: string;
  traceback: string;
  /** The batch job the error belongs to (executeBatch only). */
  jobId?: string;
}

export interface Logs {
  stdout: string[];
  stderr: string[];
}

export interface Execution {
  logs: Logs;
  results: Result[];
  /** Present only when the code raised. */
  error?: ExecutionError;
  executionCount?: number;
  /** True when lines were left out of `logs` (every line is still streamed). */
  truncated?: boolean;
}

export interface ExecutionMetadata {
  durationMs: number;
  contextId: string;
  language: string;
  sandboxId: string;
  [key: string]: unknown;
}

export interface ExecutionResult {
  execution: Execution;
  metadata: ExecutionMetadata;
}

export interface RunCodeOptions {
  /** Execution timeout in ms (default: the SDK's `timeout`). */
  timeoutMs?: number;
  /** Environment for this run only. Entries whose value is undefined are left out. */
  envs?: Record<string, string | undefined>;
  /** 'python' or 'javascript' (default: the template's language). runCode/executeBatch only. */
  language?: string;
  /** The code context to run in, or its id (default: the language's default context). runCode only. */
  context?: CodeContext | string;
  /** Working directory (absolute). runTerminal only. */
  cwd?: string;
  onStdout?: (output: OutputMessage) => void;
  onStderr?: (output: OutputMessage) => void;
  onResult?: (result: Result) => void;
  onError?: (error: ExecutionError) => void;
}

/** executeBatch's options: RunCodeOptions plus how many jobs run at once. */
export interface BatchOptions extends RunCodeOptions {
  /** Jobs run at once (server default 4, max 16). */
  concurrency?: number;
}

/** What a shell command gave (runCommand). */
export interface CommandResult {
  exitCode: number;
  stdout: string[];
  stderr: string[];
  durationMs: number;
  truncated: boolean;
}

// ---------------------------------------------------------------------------
// Files

export interface FileOperationOptions {
  sandboxId: string;
  /** Absolute path inside the sandbox. */
  path: string;
  /** 'utf8' (default) or 'base64' (binary content, both ways). */
  encoding?: 'utf8' | 'base64';
  /** writeFile: create missing parent directories. */
  createParents?: boolean;
  /** deleteFile: delete a directory and everything in it. */
  recursive?: boolean;
}

export interface FileEntry {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** Octal permission bits, e.g. '0644'. */
  mode: string;
  /** RFC 3339. */
  modifiedAt: string;
}

export interface FileListResponse {
  path: string;
  /** Sorted by name. */
  entries: FileEntry[];
}

export interface TemplateLogsOptions {
  /** Wait while the template is building, until its build ends. */
  follow?: boolean;
  /** Called for each line of build output, in order. */
  onLine?: (line: string) => void;
}

export interface UploadFileOptions {
  /** Create missing parent directories. */
  createParents?: boolean;
}

/** A change below a watched directory (watchDirectory). */
export interface WatchEvent {
  /**
   * 'renamed' has the new path and oldPath; 'overflow' (no path) says
   * changes were lost because they came faster than they were read.
   */
  type: 'created' | 'modified' | 'deleted' | 'renamed' | 'overflow';
  path: string;
  oldPath?: string;
  isDir: boolean;
  /** Unix milliseconds. */
  timestamp: number;
}

export interface WatchDirectoryOptions {
  /** Also watch every directory below, including new ones. */
  recursive?: boolean;
  /**
   * Called once when the watch ends by itself: without an error when the
   * watched directory was deleted, with one when the sandbox was deleted
   * or the connection was lost.
   */
  onEnd?: (error?: SandboxSDKError) => void;
}

/** A watch in progress (watchDirectory). */
export interface DirectoryWatch {
  readonly watchId: string;
  /** Resolves when the watch ends (with the error, if any, onEnd got). */
  readonly ended: Promise<SandboxSDKError | undefined>;
  /** stop ends the watch; no event is delivered after it is called. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Contexts

export interface CreateContextOptions {
  sandboxId: string;
  /** 'python' or 'javascript' (default: the template's language). */
  language?: string;
  /** Working directory (absolute). */
  cwd?: string;
  envs?: Record<string, string | undefined>;
}

export interface CodeContext {
  id: string;
  sandboxId: string;
  language: string;
  cwd: string;
  envVars: Record<string, string>;
  /** RFC 3339. */
  createdAt: string;
  /** True for the sandbox's default context of its language. */
  default?: boolean;
}

// ---------------------------------------------------------------------------
// Batches

export interface BatchExecutionJob {
  id: string;
  code: string;
  /** Timeout of this job in ms. */
  timeout?: number;
  /** Higher starts first. */
  priority?: number;
  language?: string;
  /** Context to run in (default: a fresh one, deleted afterwards). */
  context?: CodeContext | string;
}

export interface BatchExecutionResult {
  jobId: string;
  success: boolean;
  /** e.g. 'ZeroDivisionError: division by zero'. */
  error?: string;
  /** ms. */
  duration: number;
  execution?: Execution;
}

// ---------------------------------------------------------------------------
// Metrics

export interface MetricsData {
  /** Calls made (each call counts once, whatever its retries). */
  totalRequests: number;
  successfulRequests: number;
  failedRequests: number;
  /** Mean time in ms of the finished calls. */
  averageResponseTime: number;
  /** Sum of the wall times in ms of runCode, runTerminal and executeBatch calls. */
  totalExecutionTime: number;
  /** Sandboxes this SDK knows to exist and not be terminated. */
  activeSandboxes: number;
  /** Calls that failed with RateLimitError. */
  rateLimitedRequests: number;
  /** Retries made (connection losses of idempotent calls). */
  retries: number;
  /** When the snapshot was taken (Unix ms). */
  timestamp: number;
}

// ---------------------------------------------------------------------------
// Background processes and terminals

/** A background process (or a terminal session) of a sandbox. */
export interface ProcessInfo {
  /** The process's id in sdbx (e.g. "proc_3f9a0c1b2d4e5f60"; "pty_..." for a terminal). */
  id: string;
  /** Its pid inside the sandbox. */
  pid: number;
  args: string[];
  cwd?: string;
  running: boolean;
  /** Set once it has exited: its exit status, or 128+signal. */
  exitCode?: number;
  startedAt: string;
  exitedAt?: string;
  /** Offsets of the output the sandbox still buffers: [outputStart, outputEnd). */
  outputStart: number;
  outputEnd: number;
  /** A terminal's size. */
  cols?: number;
  rows?: number;
}

/** Options of startProcess (and runTerminal with background: true). */
export interface StartProcessOptions {
  envs?: Record<string, string | undefined>;
  /** Working directory (absolute). */
  cwd?: string;
}

/** A piece of a background process's output. */
export interface ProcessOutputChunk {
  processId: string;
  stream: 'stdout' | 'stderr';
  data: string;
  /** Byte offset of data's first byte (stdout and stderr share one offset space). */
  offset: number;
  /** Byte offset after the chunk: where to resume. */
  end: number;
  /** Bytes before the chunk that the sandbox no longer buffered. */
  lost?: number;
}

/** What getProcessOutput gives: the output buffered from an offset. */
export interface ProcessOutput {
  /** stdout and stderr as written, interleaved. */
  output: string;
  stdout: string;
  stderr: string;
  chunks: ProcessOutputChunk[];
  /** Offset after the last byte: pass it as `offset` to read on. */
  end: number;
  lost: number;
  exited: boolean;
  exitCode?: number;
  process: ProcessInfo;
}

/** How a process (or terminal) ended. */
export interface ProcessExit {
  exitCode: number;
  /** Offset after the last byte of output. */
  end: number;
}

/** Options of onOutput. */
export interface OnOutputOptions {
  /** First byte wanted (default 0: everything still buffered). */
  offset?: number;
  onExit?: (exit: ProcessExit) => void;
}

/** A live subscription to a process's output (onOutput, createTerminal). */
export interface OutputSubscription {
  /** Offset after the last byte delivered: where a new subscription resumes. */
  readonly offset: number;
  /** Stops the delivery (the process keeps running). */
  stop(): Promise<void>;
}

/** Options of createTerminal and attachTerminal. */
export interface TerminalOptions {
  /** Terminal size, 1-1000 each (default 80x24). */
  cols?: number;
  rows?: number;
  /** What runs: a shell command (through bash -c) or an argv; default the sandbox's shell (bash -i). */
  command?: string | string[];
  envs?: Record<string, string | undefined>;
  cwd?: string;
  /** attachTerminal: first byte wanted (default 0). */
  offset?: number;
  /** What the terminal shows, as it comes. */
  onData?: (data: string) => void;
  /** Called once when the terminal's program has exited. */
  onExit?: (exit: ProcessExit) => void;
}

/** An open terminal session (createTerminal, attachTerminal). */
export interface Terminal {
  /** The session's id (attachTerminal re-attaches with it). */
  readonly id: string;
  readonly pid: number;
  /** Offset after the last byte delivered to onData. */
  readonly offset: number;
  /** Types data into the terminal ("\x03" is Ctrl-C). */
  write(data: string | Uint8Array): Promise<void>;
  /** Sets the terminal's size (1-1000 each). */
  resize(cols: number, rows: number): Promise<void>;
  /** Sends a signal ("SIGINT", "TERM", "9") to the terminal's foreground job. */
  signal(signal: string): Promise<void>;
  /** Kills the session and every process it started. */
  kill(): Promise<void>;
  /** Stops delivering output; the session keeps running (attachTerminal resumes). */
  detach(): Promise<void>;
}
