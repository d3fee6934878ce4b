import type { IncomingMessage } from 'node:http';

/** Whether the client waits for 100 Continue before sending the body. */
export function expectsContinue(req: IncomingMessage): boolean {
  return (req.headers.expect ?? '').toLowerCase() === '100-continue';
}
