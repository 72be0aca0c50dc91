/** Level-filtered logging for the SDK. */
import type { LogLevel, SDKLogger } from './types.js';

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

const PREFIX = '[sdb-x-sdk]';

/**
 * Logger writes lines at or above its level to a sink (console by default)
 * when enabled. Meta objects are passed through as extra arguments.
 */
export class Logger {
  private readonly min: number;

  constructor(
    private readonly enabled: boolean,
    level: LogLevel,
    private readonly sink: SDKLogger = console,
  ) {
    this.min = LOG_LEVELS.indexOf(level);
  }

  /** enabledFor tells whether a line at level would be written. */
  enabledFor(level: LogLevel): boolean {
    return this.enabled && LOG_LEVELS.indexOf(level) >= this.min;
  }

  debug(message: string, meta?: Record<string, unknown>): void {
    this.write('debug', message, meta);
  }

  info(message: string, meta?: Record<string, unknown>): void {
    this.write('info', message, meta);
  }

  warn(message: string, meta?: Record<string, unknown>): void {
    this.write('warn', message, meta);
  }

  error(message: string, meta?: Record<string, unknown>): void {
    this.write('error', message, meta);
  }

  private write(level: LogLevel, message: string, meta?: Record<string, unknown>): void {
    if (!this.enabledFor(level)) return;
    const line = `${PREFIX} ${new Date().toISOString()} ${level.toUpperCase()} ${message}`;
    try {
      if (meta === undefined) this.sink[level](line);
      else this.sink[level](line, meta);
    } catch {
      // A broken sink must not break a call.
    }
  }
}
