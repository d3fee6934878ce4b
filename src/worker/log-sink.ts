import { Writable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * Collects a build container's output: forwards it in batches (every `flushMs` or 16 KiB)
 * to `append`, stops forwarding after `maxBytes` with one line saying so, and keeps the
 * last lines in memory for the error message of a failed build.
 */
export class LogSink extends Writable {
  private pending = '';
  private forwarded = 0;
  private truncated = false;
  private tailText = '';
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** Output arrives in chunks that may split a UTF-8 character: the decoder keeps the partial bytes for the next one. */
  private readonly decoder = new StringDecoder('utf8');

  constructor(
    private readonly append: (text: string) => Promise<void>,
    private readonly maxBytes: number,
    private readonly flushMs = 200,
  ) {
    super({ decodeStrings: true });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const text = this.decoder.write(chunk);
    this.tailText = (this.tailText + text).slice(-16 * 1024);
    if (!this.truncated) {
      const room = this.maxBytes - this.forwarded;
      if (Buffer.byteLength(text) > room) {
        this.pending += `${text.slice(0, Math.max(0, room))}\n[plugforge] output truncated after ${this.maxBytes} bytes\n`;
        this.truncated = true;
      } else {
        this.pending += text;
      }
      this.forwarded += Buffer.byteLength(text);
    }
    if (this.pending.length >= 16 * 1024) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.flushMs);
    done();
  }

  override _final(done: (err?: Error | null) => void): void {
    this.pending += this.decoder.end();
    this.flush();
    this.chain.then(() => done(), done);
  }

  /** Writes a line of plugforge's own (not the compiler's) into the same log. */
  note(line: string): void {
    this.pending += `[plugforge] ${line}\n`;
    this.flush();
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.pending) return;
    const text = this.pending;
    this.pending = '';
    this.chain = this.chain.then(() => this.append(text)).catch(() => undefined);
  }

  /** Resolves once everything written so far has been handed to `append`. */
  async drain(): Promise<void> {
    this.flush();
    await this.chain;
  }

  /** The last `lines` lines of output (for error messages). */
  tail(lines = 30): string {
    return this.tailText
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-lines)
      .join('\n');
  }
}
