import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { redactUrls } from './redact-url.js';

export type Logger = PinoLogger;

/**
 * Structured JSON logs on stderr (pino): one line per event, fields a log system can index.
 * Every line is written with URLs' user info redacted (src/redact-url.ts): errors of Redis,
 * the engine and the go command quote the configuration URLs they failed on.
 */
export function createLogger(level: string, name = 'plugforge', destination: DestinationStream = pino.destination(2)): Logger {
  return pino({ name, level, base: { pid: process.pid }, hooks: { streamWrite: redactUrls } }, destination);
}
