import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { UploadBody } from './api-client.js';

export type FormPart = { name: string; value: string } | { name: string; filename: string; contentType: string; open: () => Readable };

function quoted(text: string): string {
  return `"${text.replace(/["\r\n\\]/g, (c) => encodeURIComponent(c))}"`;
}

/**
 * A multipart/form-data body (RFC 7578) that streams: each file part is opened when its
 * turn comes and piped through, so no part is ever held in memory whole.
 */
export function multipartBody(parts: FormPart[]): UploadBody {
  const boundary = `----plugforge${randomBytes(12).toString('hex')}`;
  async function* generate(): AsyncGenerator<Buffer> {
    for (const part of parts) {
      if ('value' in part) {
        yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name=${quoted(part.name)}\r\n\r\n`);
        yield Buffer.from(part.value);
      } else {
        yield Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name=${quoted(part.name)}; filename=${quoted(part.filename)}\r\n` +
            `Content-Type: ${part.contentType}\r\n\r\n`,
        );
        for await (const chunk of part.open()) yield chunk as Buffer;
      }
      yield Buffer.from('\r\n');
    }
    yield Buffer.from(`--${boundary}--\r\n`);
  }
  return { stream: Readable.from(generate(), { objectMode: false }), contentType: `multipart/form-data; boundary=${boundary}` };
}
