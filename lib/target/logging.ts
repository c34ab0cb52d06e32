// The daemon's logger: pino, made once by the process's entry point and handed down as the
// narrow Logger of lib/common/log.ts. Two formats:
//   human (the default): the lines an operator reads on a terminal, as the daemon has always
//     printed them: info on stdout as the bare message; warnings, errors and --debug detail on
//     stderr prefixed "warning: ", "error: ", "debug: "; structured fields, when a line has
//     any, follow as key=value.
//   json: one JSON object per line on stdout (pino's format, level names, ISO time), for
//     journald and log collectors.

import { pino, type DestinationStream, type Level } from 'pino';
import type { LogFields, Logger } from '../common/log.js';

export type LogFormat = 'human' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['human', 'json'];

/** Where the lines go; the CLI passes its stdout/stderr (tests pass arrays). */
export interface LogSink {
  out(line: string): void;
  err(line: string): void;
}

export interface LoggerOptions {
  format: LogFormat;
  debug: boolean;
  sink: LogSink;
}

const PREFIX: Partial<Record<Level, string>> = { warn: 'warning: ', error: 'error: ', fatal: 'error: ', debug: 'debug: ', trace: 'debug: ' };
// What pino puts on every line that the human format does not print.
const HIDDEN = new Set(['level', 'msg', 'time', 'pid', 'hostname']);

function humanLine(json: string): { level: Level; line: string } {
  const o = JSON.parse(json) as LogFields & { level: Level; msg?: string };
  let line = o.msg ?? '';
  for (const [k, v] of Object.entries(o)) {
    if (!HIDDEN.has(k)) line += ` ${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
  }
  return { level: o.level, line };
}

export function createLogger(o: LoggerOptions): Logger {
  // Lines are written synchronously (an object with write(), not a worker transport): what
  // the daemon logged is out before it exits, and in order with what the CLI prints itself.
  const stream: DestinationStream =
    o.format === 'json'
      ? { write: (s: string) => o.sink.out(s.replace(/\n$/, '')) }
      : {
          write: (s: string) => {
            const { level, line } = humanLine(s);
            if (level === 'info') o.sink.out(line);
            else o.sink.err(`${PREFIX[level] ?? ''}${line}`);
          },
        };
  return pino(
    {
      level: o.debug ? 'debug' : 'info',
      formatters: { level: (label) => ({ level: label }) },
      ...(o.format === 'json' ? { timestamp: pino.stdTimeFunctions.isoTime } : { timestamp: false, base: undefined }),
    },
    stream,
  );
}
