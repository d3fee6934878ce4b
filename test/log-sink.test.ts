import { describe, expect, it } from 'vitest';
import { LogSink } from '../src/worker/log-sink.js';

describe('LogSink', () => {
  it('keeps a multi-byte character whole when the output splits it across chunks', async () => {
    const appended: string[] = [];
    const sink = new LogSink(async (t) => void appended.push(t), 1024 * 1024);
    const bytes = Buffer.from('größe: 日本語 ✓\n', 'utf8');
    // Every split point, including inside each multi-byte character.
    for (let i = 1; i < bytes.length; i++) {
      await new Promise<void>((resolve) => sink.write(bytes.subarray(0, i), () => resolve()));
      await new Promise<void>((resolve) => sink.write(bytes.subarray(i), () => resolve()));
    }
    await sink.drain();
    const text = appended.join('');
    expect(text).not.toContain('\uFFFD');
    expect(text.split('\n').filter(Boolean)).toEqual(Array.from({ length: bytes.length - 1 }, () => 'größe: 日本語 ✓'));
    expect(sink.tail(1)).toBe('größe: 日本語 ✓');
  });
});
