import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Structured JSON logs on stderr (pino): one line per event, fields a log system can index. */
export function createLogger(level: string, name = 'plugforge'): Logger {
  return pino({ name, level, base: { pid: process.pid } }, pino.destination(2));
}
