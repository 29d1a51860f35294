import pino, { Logger } from 'pino';

/** JSON logs to stderr (stdout stays free for command output). */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'likeness' } }, pino.destination(2));
}
