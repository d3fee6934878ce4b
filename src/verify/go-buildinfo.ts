import { PlugforgeError } from '../errors/plugforge-error.js';
import {
  ElfFormatError,
  PF_W,
  PF_X,
  PT_LOAD,
  readAtAddress,
  readElfFile,
  sectionBytes,
  segmentBytes,
  type ElfFile,
} from './elf-sections.js';

/**
 * The Go build info embedded in a host executable: what a plugin must match to load into it.
 * Read without running the binary, following Go's own debug/buildinfo and runtime/debug.
 */
export interface GoBuildInfo {
  /** The toolchain release without the "go" prefix, e.g. "1.22.12". */
  goVersion: string;
  /** The main package path. */
  path?: string;
  main?: GoModule;
  deps: GoModule[];
  /** Build settings in the order Go wrote them: -buildmode, -compiler, -tags, -trimpath, CGO_ENABLED, GOARCH, GOOS, GOARM, vcs.*, … */
  settings: Record<string, string>;
  /** settings["-trimpath"] === "true". */
  trimpath: boolean;
  /** settings["-tags"], split at commas. */
  tags: string[];
}

export interface GoModuleVersion {
  path: string;
  version: string;
  sum?: string;
}

export interface GoModule extends GoModuleVersion {
  /** Set when a `replace` directive substituted this module. */
  replace?: GoModuleVersion;
}

const WHAT_TO_DO_BINARY =
  "upload the host program's Linux executable exactly as `go build` produced it, or send the output of `go version -m <host>` instead";

/**
 * Reads the Go build info from an executable's bytes (ELF, 32/64-bit, little or big endian).
 * Throws PlugforgeError `host_binary_invalid` when the bytes are not a well-formed ELF file or
 * the build info in it is corrupt, and `host_binary_no_buildinfo` when it is ELF but not built
 * by Go (both status 400). Nothing else escapes, whatever the bytes.
 */
export function readGoBuildInfo(binary: Buffer): GoBuildInfo {
  try {
    const raw = readRawBuildInfo(binary);
    return parseModInfo(raw.version, raw.modinfo);
  } catch (err) {
    if (err instanceof PlugforgeError) throw err;
    if (err instanceof ElfFormatError) {
      throw new PlugforgeError(
        'host_binary_invalid',
        `The host binary is not a valid ELF executable: ${err.message}; ${WHAT_TO_DO_BINARY}.`,
        { status: 400 },
      );
    }
    if (err instanceof BuildInfoSyntaxError) {
      throw new PlugforgeError(
        'host_binary_invalid',
        `The Go build info in the host binary is corrupt (${err.message}); ${WHAT_TO_DO_BINARY}.`,
        { status: 400 },
      );
    }
    // Defensive: a bug here must still answer as a bad upload, not as a server error.
    throw new PlugforgeError('host_binary_invalid', `The host binary could not be read (${String(err)}); ${WHAT_TO_DO_BINARY}.`, {
      status: 400,
      cause: err,
    });
  }
}

/**
 * Reads the text `go version -m <host>` prints (the same fields as readGoBuildInfo). Also
 * accepts the text of runtime/debug.BuildInfo.String(), which starts with a `go\t<version>`
 * line. Throws PlugforgeError `host_buildinfo_invalid` (status 400) when the text is not one
 * binary's build info.
 */
export function parseGoVersionM(text: string): GoBuildInfo {
  const invalid = (why: string) =>
    new PlugforgeError(
      'host_buildinfo_invalid',
      `The host build info text is not the output of \`go version -m <host>\` for one binary (${why}); run that command on the host executable and send its whole output.`,
      { status: 400 },
    );
  if (text.length > MAX_BUILDINFO_BYTES) throw invalid(`it is longer than ${MAX_BUILDINFO_BYTES / 1024} KiB`);
  const lines = text.split('\n', MAX_BUILDINFO_LINES + 2).map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (lines.length > MAX_BUILDINFO_LINES + 1) throw invalid(`it has more than ${MAX_BUILDINFO_LINES} lines`);
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0) throw invalid('it is empty');

  let version: string | undefined;
  const body: string[] = [];
  const header = lines[first] ?? '';
  if (/^(go|path|mod|dep|build)\t/.test(header)) {
    // BuildInfo.String(): unindented lines, the version on its own `go` line.
    for (const line of lines.slice(first)) {
      if (line.startsWith('go\t')) version = line.slice(3);
      else body.push(line);
    }
  } else {
    // `go version -m`: "<file>: <version>", then the module info, each line indented by a tab.
    const m = /^.*: ((?:go\d|devel ).*)$/.exec(header);
    if (!m || header.startsWith('\t'))
      throw invalid(`the first line, ${JSON.stringify(header.slice(0, 120))}, is not "<file>: go<version>"`);
    version = m[1];
    for (const line of lines.slice(first + 1)) {
      if (line.startsWith('\t')) body.push(line.slice(1));
      else if (line.trim() !== '')
        throw invalid(`a second unindented line, ${JSON.stringify(line.slice(0, 120))}: the text describes more than one file`);
    }
  }
  if (!version) throw invalid('it names no Go version');
  try {
    return parseModInfo(version, body.map((l) => `${l}\n`).join(''));
  } catch (err) {
    if (err instanceof BuildInfoSyntaxError) throw invalid(err.message);
    throw invalid(String(err));
  }
}

// ---- the raw strings, as cmd/link writes them and debug/buildinfo reads them ----

/** "\xff Go buildinf:", 14 bytes; then pointer size and flags, 32 bytes of header in all. */
const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const BUILDINFO_ALIGN = 16;
const BUILDINFO_HEADER = 32;
/** Flag bit: version and modinfo follow the header inline (Go 1.18+), not behind pointers. */
const FLAG_INLINE = 2;
const MAX_VERSION_BYTES = 1024;
/**
 * The build info of one host, as text (`go version -m`) or in the binary: about 100 bytes a
 * module, so some 200 KiB for a host of 2000 modules (the most host matching takes, see
 * host-match.ts); four times that is refused before it is parsed. The lines are capped too
 * (a dep and a replacement line a module, a few dozen build lines), so the parse is bounded
 * in work, not only in bytes (docs/decisions.md, "Host matching").
 */
export const MAX_BUILDINFO_BYTES = 1024 * 1024;
const MAX_BUILDINFO_LINES = 5000;
/** Go's debug/buildinfo looks for the blob in the first 64 KiB of the data area, and so do we. */
const BUILDINFO_SEARCH_BYTES = 64 * 1024;
/** cmd/go frames the modinfo with 16-byte sentinels (modload.infoStart and infoEnd). */
const MODINFO_SENTINEL = 16;

function noBuildInfo(why: string): PlugforgeError {
  return new PlugforgeError(
    'host_binary_no_buildinfo',
    `The host binary is an ELF file but carries no Go build info (${why}); upload the host's executable as built by the Go toolchain (not a packed or rewritten copy), or name the host's Go version with the \`go\` option.`,
    { status: 400 },
  );
}

function readRawBuildInfo(bytes: Buffer): { version: string; modinfo: string } {
  const elf = readElfFile(bytes);
  const data = buildInfoArea(bytes, elf);
  if (data.length === 0) throw noBuildInfo('no .go.buildinfo section and no writable data segment');

  // The blob is 16-byte aligned relative to the start of the area it was looked up in.
  let at = 0;
  for (;;) {
    const i = data.indexOf(BUILDINFO_MAGIC, at);
    if (i < 0 || data.length - i < BUILDINFO_HEADER) throw noBuildInfo('the "\\xff Go buildinf:" marker is not there');
    if (i % BUILDINFO_ALIGN === 0) {
      at = i;
      break;
    }
    at = Math.ceil(i / BUILDINFO_ALIGN) * BUILDINFO_ALIGN;
  }
  const ptrSize = data[at + 14] ?? 0;
  const flags = data[at + 15] ?? 0;

  let version: Buffer;
  let modinfo: Buffer;
  if (flags & FLAG_INLINE) {
    const v = decodeString(data, at + BUILDINFO_HEADER);
    version = v?.value ?? Buffer.alloc(0);
    modinfo = (v && decodeString(data, v.next)?.value) ?? Buffer.alloc(0);
  } else {
    if (ptrSize !== 4 && ptrSize !== 8) throw noBuildInfo(`pointer size ${ptrSize}`);
    const bigEndian = flags !== 0;
    const readPtr = (b: Buffer, off: number) => readPointer(b, off, ptrSize, bigEndian);
    version = readGoString(bytes, elf, ptrSize, readPtr, readPtr(data, at + 16), MAX_VERSION_BYTES);
    modinfo = readGoString(bytes, elf, ptrSize, readPtr, readPtr(data, at + 16 + ptrSize), MAX_BUILDINFO_BYTES);
  }
  if (version.length === 0) throw noBuildInfo('the Go version string is missing');
  if (version.length > MAX_VERSION_BYTES) throw new ElfFormatError(`the Go version string is ${version.length} bytes long`);
  if (modinfo.length > MAX_BUILDINFO_BYTES) throw new ElfFormatError(`the module info is ${modinfo.length} bytes long`);

  // Strip the sentinels; a modinfo not framed by them is ignored, as Go does.
  const framed = modinfo.length >= 2 * MODINFO_SENTINEL + 1 && modinfo[modinfo.length - MODINFO_SENTINEL - 1] === 0x0a;
  const inner = framed ? modinfo.subarray(MODINFO_SENTINEL, modinfo.length - MODINFO_SENTINEL) : Buffer.alloc(0);
  return { version: version.toString('utf8'), modinfo: inner.toString('utf8') };
}

/** The section `.go.buildinfo`, or else the first writable, non-executable loadable segment. */
function buildInfoArea(bytes: Buffer, elf: ElfFile): Buffer {
  const section = elf.sections.find((s) => s.name === '.go.buildinfo');
  const segment = elf.segments.find((p) => p.type === PT_LOAD && (p.flags & (PF_X | PF_W)) === PF_W);
  const area = section ? sectionBytes(bytes, section) : segment ? segmentBytes(bytes, segment) : Buffer.alloc(0);
  return area.subarray(0, BUILDINFO_SEARCH_BYTES);
}

/** A uvarint-length-prefixed string at `offset`; undefined when it does not fit (as Go's decodeString). */
function decodeString(data: Buffer, offset: number): { value: Buffer; next: number } | undefined {
  let length = 0;
  let scale = 1;
  let at = offset;
  for (let i = 0; ; i++) {
    // Ten bytes hold any uint64; the lengths we accept need far fewer.
    if (i >= 10 || at >= data.length) return undefined;
    const b = data[at++] ?? 0;
    length += (b & 0x7f) * scale;
    if (b < 0x80) break;
    scale *= 128;
  }
  if (length > data.length - at) return undefined;
  return { value: data.subarray(at, at + length), next: at + length };
}

function readPointer(b: Buffer, offset: number, ptrSize: number, bigEndian: boolean): number {
  if (offset < 0 || offset + ptrSize > b.length) return -1;
  if (ptrSize === 4) return bigEndian ? b.readUInt32BE(offset) : b.readUInt32LE(offset);
  const v = bigEndian ? b.readBigUInt64BE(offset) : b.readBigUInt64LE(offset);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

/** A Go string header {data pointer, length} at address `addr` (pre-1.18 layout); empty when unreadable. */
function readGoString(
  bytes: Buffer,
  elf: ElfFile,
  ptrSize: number,
  readPtr: (b: Buffer, off: number) => number,
  addr: number,
  max: number,
): Buffer {
  const empty = Buffer.alloc(0);
  if (addr < 0) return empty;
  const header = readAtAddress(bytes, elf, addr, 2 * ptrSize);
  if (!header || header.length < 2 * ptrSize) return empty;
  const dataAddr = readPtr(header, 0);
  const length = readPtr(header, ptrSize);
  if (dataAddr < 0 || length < 0) return empty;
  if (length > max) throw new ElfFormatError(`a build info string claims ${length} bytes`);
  const data = readAtAddress(bytes, elf, dataAddr, length);
  return data && data.length >= length ? data : empty;
}

// ---- the modinfo text, as runtime/debug.ParseBuildInfo reads it ----

class BuildInfoSyntaxError extends Error {}

function parseModInfo(rawVersion: string, modinfo: string): GoBuildInfo {
  const info: GoBuildInfo = { goVersion: normalizeGoVersion(rawVersion), deps: [], settings: {}, trimpath: false, tags: [] };
  const settings = new Map<string, string>();
  // The module a following "=>" line replaces; reset after each replacement.
  let last: GoModule | undefined;
  let lineNum = 0;
  const fail = (why: string) => new BuildInfoSyntaxError(`line ${lineNum}: ${why}`);
  const moduleOf = (cols: string[]): GoModule => {
    if (cols.length !== 2 && cols.length !== 3) throw fail(`expected 2 or 3 columns, got ${cols.length}`);
    return withSum({ path: cols[0] ?? '', version: cols[1] ?? '' }, cols[2]);
  };

  // As Go: only newline-terminated lines count.
  for (let start = 0, nl = modinfo.indexOf('\n'); nl >= 0; start = nl + 1, nl = modinfo.indexOf('\n', start)) {
    const line = modinfo.slice(start, nl);
    if (++lineNum > MAX_BUILDINFO_LINES) throw fail(`more than ${MAX_BUILDINFO_LINES} lines, far more than a program of 2000 modules has`);
    if (line.startsWith('path\t')) {
      info.path = line.slice(5);
    } else if (line.startsWith('mod\t')) {
      info.main = moduleOf(line.slice(4).split('\t'));
      last = info.main;
    } else if (line.startsWith('dep\t')) {
      last = moduleOf(line.slice(4).split('\t'));
      info.deps.push(last);
    } else if (line.startsWith('=>\t')) {
      const cols = line.slice(3).split('\t');
      if (cols.length !== 3) throw fail(`expected 3 columns for a replacement, got ${cols.length}`);
      if (!last) throw fail('a replacement with no module on the line before');
      last.replace = withSum({ path: cols[0] ?? '', version: cols[1] ?? '' }, cols[2]);
      last = undefined;
    } else if (line.startsWith('build\t')) {
      const [key, value] = parseBuildSetting(line.slice(6), fail);
      settings.set(key, value);
    }
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays plain data.
  info.settings = Object.fromEntries(settings);
  info.trimpath = settings.get('-trimpath') === 'true';
  info.tags = (settings.get('-tags') ?? '').split(',').filter((t) => t !== '');
  return info;
}

function withSum<T extends GoModuleVersion>(m: T, sum: string | undefined): T {
  if (sum) m.sum = sum;
  return m;
}

/** "go1.22.12" → "1.22.12"; "go1.22.12 X:loopvar" → "1.22.12"; anything else is kept as it is. */
function normalizeGoVersion(raw: string): string {
  const m = /^go(\d[^\s]*)/.exec(raw.trim());
  return m?.[1] ?? raw.trim();
}

/** quoteKey and quoteValue of runtime/debug: what must have been written quoted. */
const KEY_NEEDS_QUOTES = /[= \t\r\n"`]/;
const VALUE_NEEDS_QUOTES = /[ \t\r\n"`]/;

function parseBuildSetting(kv: string, fail: (why: string) => Error): [string, string] {
  if (kv.length === 0) throw fail("a build line without '='");
  if (kv[0] === '=') throw fail('a build line with no key');
  let key: string;
  let rawValue: string;
  if (kv[0] === '"' || kv[0] === '`') {
    const q = quotedPrefix(kv);
    if (q === undefined) throw fail('an invalid quoted key in a build line');
    if (kv[q.length] !== '=') throw fail("a build line without '=' after its quoted key");
    key = q.value;
    rawValue = kv.slice(q.length + 1);
  } else {
    const eq = kv.indexOf('=');
    if (eq < 0) throw fail("a build line without '=' after its key");
    key = kv.slice(0, eq);
    if (KEY_NEEDS_QUOTES.test(key)) throw fail(`the key ${JSON.stringify(key)} should have been quoted`);
    rawValue = kv.slice(eq + 1);
  }
  let value = rawValue;
  if (rawValue[0] === '"' || rawValue[0] === '`') {
    const q = quotedPrefix(rawValue);
    if (q === undefined || q.length !== rawValue.length) throw fail('an invalid quoted value in a build line');
    value = q.value;
  } else if (VALUE_NEEDS_QUOTES.test(rawValue)) {
    throw fail(`the value ${JSON.stringify(rawValue)} should have been quoted`);
  }
  return [key, value];
}

const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, '"': 34 };

/**
 * The Go string literal (strconv.Quote's "…" or a `…` raw string) at the start of `s`: its
 * value and how many characters it spans; undefined when it is not a valid literal
 * (strconv.QuotedPrefix + Unquote).
 */
function quotedPrefix(s: string): { value: string; length: number } | undefined {
  if (s[0] === '`') {
    const end = s.indexOf('`', 1);
    return end < 0 ? undefined : { value: s.slice(1, end).replaceAll('\r', ''), length: end + 1 };
  }
  if (s[0] !== '"') return undefined;
  const out: number[] = [];
  const pushCodePoint = (cp: number) => out.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
  let i = 1;
  while (i < s.length) {
    const c = s[i] ?? '';
    if (c === '"') return { value: Buffer.from(out).toString('utf8'), length: i + 1 };
    if (c === '\n') return undefined;
    if (c !== '\\') {
      const cp = s.codePointAt(i) ?? 0;
      pushCodePoint(cp);
      i += cp > 0xffff ? 2 : 1;
      continue;
    }
    const e = s[i + 1];
    if (e === undefined) return undefined;
    i += 2;
    const simple = SIMPLE_ESCAPES[e];
    if (simple !== undefined) {
      out.push(simple);
    } else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = s.slice(i, i + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
      const v = Number.parseInt(hex, 16);
      i += n;
      if (e === 'x') out.push(v);
      else if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return undefined;
      else pushCodePoint(v);
    } else if (e >= '0' && e <= '7') {
      const oct = s.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(oct)) return undefined;
      const v = Number.parseInt(oct, 8);
      if (v > 255) return undefined;
      out.push(v);
      i += 2;
    } else {
      return undefined;
    }
  }
  return undefined;
}
