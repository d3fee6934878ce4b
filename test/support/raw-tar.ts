/**
 * Writes tar bytes by hand, for entries tar-stream's packer will not produce the way a
 * hostile client could: raw `..` names, device and unknown type flags, PAX records with NUL
 * bytes, wrong checksums, missing end-of-archive blocks.
 */

export interface RawEntry {
  /** Written into the 100-byte name field as given (bytes may be invalid UTF-8). */
  name: string | Buffer;
  /** One character: '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' directory, '6' FIFO, '7' contiguous, 'S' GNU sparse, 'x' PAX. */
  typeflag: string;
  /** Data stored after the header (padded to 512). Defaults to none. */
  data?: Buffer;
  /** Size written into the header; defaults to data length. */
  size?: number;
  mode?: number;
  linkname?: string;
  prefix?: string;
  /** Break the checksum on purpose. */
  badChecksum?: boolean;
}

const BLOCK = 512;

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  const text = value.toString(8).padStart(length - 1, '0');
  block.write(`${text}\0`, offset, length, 'ascii');
}

export function rawHeader(entry: RawEntry): Buffer {
  const block = Buffer.alloc(BLOCK);
  const name = typeof entry.name === 'string' ? Buffer.from(entry.name) : entry.name;
  if (name.length > 100) throw new Error('raw tar name longer than 100 bytes');
  name.copy(block, 0);
  writeOctal(block, 100, 8, entry.mode ?? 0o644);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, entry.size ?? entry.data?.length ?? 0);
  writeOctal(block, 136, 12, 946684800);
  block.write(entry.typeflag, 156, 1, 'latin1');
  if (entry.linkname !== undefined) block.write(entry.linkname, 157, 100);
  block.write('ustar\u000000', 257, 8, 'latin1');
  if (entry.prefix !== undefined) block.write(entry.prefix, 345, 155);
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (entry.badChecksum) sum += 1;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return block;
}

function padded(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}

/** A PAX extended header ('x') entry carrying `records`, to precede the entry it applies to. */
export function paxEntry(records: Record<string, string | Buffer>): RawEntry {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
    let length = body.length + 1;
    while (String(length).length + body.length !== length) length = String(length).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(length)), body]));
  }
  return { name: 'PaxHeader', typeflag: 'x', data: Buffer.concat(parts) };
}

/** Headers and padded data of `entries`, then (unless `end` is false) two zero blocks. */
export function rawTar(entries: RawEntry[], options: { end?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(rawHeader(entry));
    if (entry.data !== undefined && entry.data.length > 0) parts.push(padded(entry.data));
  }
  if (options.end !== false) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
