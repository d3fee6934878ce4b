import { apiFetch } from './api.js';

/**
 * Follows a log: `GET …/logs?follow=1` with `Accept: text/event-stream` (src/api/log-routes.ts),
 * read with fetch and a stream reader rather than EventSource, which cannot send the
 * Authorization header. Each `log` event is one line; `end` carries the build's status.
 * Resolves when the server ends the stream; rejects when `signal` aborts it.
 */
export async function followLog(path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<{ ended: boolean }> {
  const res = await apiFetch('GET', path, { headers: { Accept: 'text/event-stream' }, signal });
  if (!res.body) return { ended: false };
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let ended = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      // Events end with a blank line; a chunk may hold several, or part of one.
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) !== -1) {
        const event = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event.type === 'log') onLine(event.data);
        else if (event.type === 'end') ended = true;
      }
    }
  } finally {
    reader.releaseLock();
  }
  return { ended };
}

/** One SSE event's fields; comments (`: keep-alive`) give no type. */
export function parseEvent(block: string): { type: string; data: string } {
  let type = '';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return { type: type || (data.length ? 'message' : ''), data: data.join('\n') };
}
