/**
 * A gzip'd ustar archive made in the browser: a 512-byte header per file, the file's bytes
 * padded to 512, two zero blocks at the end, through CompressionStream('gzip'). Files stay
 * Blobs until the stream reads them, so a folder is never held in memory twice. Like the
 * CLI (src/client/pack-directory.ts): regular files only, mode 0644 (a browser does not
 * say which files are executable), owner 0, one fixed mtime.
 */

export interface TarEntry {
  /** Relative, `/`-separated: the name in the archive. */
  name: string;
  data: Blob;
}

const BLOCK = 512;
/** 2000-01-01T00:00:00Z, as the CLI's archives. */
const MTIME = 946684800;
const encoder = new TextEncoder();

export async function tarGz(entries: readonly TarEntry[]): Promise<Blob> {
  const parts: BlobPart[] = [];
  for (const e of entries) {
    parts.push(header(e.name, e.data.size), e.data);
    const pad = (BLOCK - (e.data.size % BLOCK)) % BLOCK;
    if (pad) parts.push(new Uint8Array(pad));
  }
  parts.push(new Uint8Array(BLOCK * 2));
  const gz = new Blob(parts).stream().pipeThrough(new CompressionStream('gzip'));
  return new Response(gz).blob();
}

/** A ustar header; a name over 100 bytes is split at a `/` into prefix (155) and name (100). */
export function header(name: string, size: number): Uint8Array<ArrayBuffer> {
  const h = new Uint8Array(BLOCK);
  const [prefix, base] = splitName(name);
  put(h, 0, 100, base);
  put(h, 100, 8, octal(0o644, 7));
  put(h, 108, 8, octal(0, 7));
  put(h, 116, 8, octal(0, 7));
  put(h, 124, 12, octal(size, 11));
  put(h, 136, 12, octal(MTIME, 11));
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  put(h, 156, 1, '0');
  put(h, 257, 6, 'ustar');
  put(h, 263, 2, '00');
  put(h, 345, 155, prefix);
  const sum = h.reduce((a, b) => a + b, 0);
  put(h, 148, 8, `${octal(sum, 6)}\0 `);
  return h;
}

function splitName(name: string): [string, string] {
  const bytes = encoder.encode(name).length;
  if (bytes <= 100) return ['', name];
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(rest).length <= 100) return [prefix, rest];
  }
  throw new Error(`${name}: the path is too long for a tar archive (at most 100 bytes after the last directories, 255 in all).`);
}

function octal(n: number, digits: number): string {
  if (n >= 8 ** digits) throw new Error(`${n} does not fit a tar header field`);
  return n.toString(8).padStart(digits, '0');
}

function put(h: Uint8Array<ArrayBuffer>, offset: number, length: number, text: string): void {
  h.set(encoder.encode(text).subarray(0, length), offset);
}
