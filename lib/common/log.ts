// The one logger type of the daemon. Every layer logs through this narrow interface and
// imports nothing else for it; the process's entry point makes the implementation (pino, in
// lib/target/logging.ts) and passes it, or children of it, down. The call shapes are pino's,
// so a pino logger is a Logger as it is, without an adapter.

export type LogFields = Record<string, unknown>;

export interface LogFn {
  (msg: string): void;
  /** A line with structured fields (in JSON lines, fields of the object; on a terminal, key=value). */
  (fields: LogFields, msg: string): void;
}

export interface Logger {
  /** What only --debug shows: per-connection and per-session detail, never per I/O. */
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger whose every line also carries `bindings` (a session's initiator, a portal...). */
  child(bindings: LogFields): Logger;
  /**
   * Whether lines of `level` are written (pino's). A line that can come once per command (on
   * an error path of the data path) asks first, so that it does not even build its message
   * when the level is off.
   */
  isLevelEnabled(level: LogLevel): boolean;
}

const nothing: LogFn = () => {};

/** Discards everything: the default of every layer that is given no logger (tests, tools). */
export const silentLogger: Logger = {
  debug: nothing,
  info: nothing,
  warn: nothing,
  error: nothing,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** A Logger that hands each line's level and message to `write` (tests, tools); fields are dropped. */
export function lineLogger(write: (level: LogLevel, msg: string) => void): Logger {
  const at = (level: LogLevel): LogFn => ((a: string | LogFields, b?: string) => write(level, typeof a === 'string' ? a : (b ?? ''))) as LogFn;
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log, isLevelEnabled: () => true };
  return log;
}
