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
}

/** A sandbox's hard limits; in createSandbox a field left out takes the server's default. */
export interface SandboxResources {
  /** CPUs, e.g. 0.5 or 2. */
  cpu?: number;
  /** Memory in MiB. */
  memoryMb?: number;
  /** Most processes at once. */
  pids?: number;
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
