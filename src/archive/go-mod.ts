/** What plugforge needs from a go.mod: the module path, the toolchain it asks for, and what it requires. */
export interface GoMod {
  /** `module` path, unquoted. */
  module: string;
  /** `go` directive, e.g. "1.22" or "1.22.1". */
  go?: string;
  /** `toolchain` directive, e.g. "go1.22.12". */
  toolchain?: string;
  /** `require` directives, single or in blocks, in file order. */
  requires: GoModRequire[];
  /** Module paths named on the left of a `replace` directive. */
  replaced: string[];
}

export interface GoModRequire {
  path: string;
  version: string;
}

/** A go.mod the parser refuses; `line` is 1-based (0 when the problem is the whole file). */
export class GoModSyntaxError extends Error {
  readonly line: number;

  constructor(message: string, line: number) {
    super(line > 0 ? `go.mod:${line}: ${message}` : `go.mod: ${message}`);
    this.name = 'GoModSyntaxError';
    this.line = line;
  }
}

// The formats cmd/go itself accepts (golang.org/x/mod/modfile GoVersionRE and ToolchainRE),
// the toolchain one narrowed to characters that can safely end up in an image tag.
const GO_VERSION = /^([1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?([a-z]+[0-9]+)?$/;
const TOOLCHAIN = /^(default|go1(\.(0|[1-9][0-9]*)){0,2}([a-z]+[0-9]+)?([-+][0-9A-Za-z.+_-]+)?)$/;

/** A module version as go.mod writes it: semantic version with a v, pseudo-versions and +incompatible included. */
export const MODULE_VERSION = /^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+incompatible)?$/;

interface Token {
  text: string;
  quoted: boolean;
}

/**
 * Reads the `module`, `go`, `toolchain`, `require` and `replace` directives of a go.mod, the way cmd/go's modfile
 * lexer sees them: `//` comments, quoted ("...") or raw (`...`) strings, and `verb ( ... )`
 * blocks. Other directives (exclude, retract, ...) are skipped unread. Pure; throws
 * `GoModSyntaxError` when there is no usable `module` line or a directive is malformed.
 */
export function parseGoMod(text: string): GoMod {
  const lines = text.replace(/^\ufeff/, '').split('\n');
  const found: Partial<GoMod> & Pick<GoMod, 'requires' | 'replaced'> = { requires: [], replaced: [] };
  let block: string | undefined;

  lines.forEach((rawLine, index) => {
    const lineNo = index + 1;
    const tokens = tokenize(rawLine.replace(/\r$/, ''), lineNo);
    if (tokens.length === 0) return;
    const first = tokens[0] as Token;
    const last = tokens[tokens.length - 1] as Token;
    if (block !== undefined) {
      if (tokens.length === 1 && first.text === ')' && !first.quoted) {
        block = undefined;
        return;
      }
      directive(block, tokens, lineNo, found);
      return;
    }
    if (tokens.length === 2 && last.text === '(' && !last.quoted && !first.quoted) {
      block = first.text;
      return;
    }
    if (first.quoted) throw new GoModSyntaxError(`unexpected string ${JSON.stringify(first.text)}`, lineNo);
    directive(first.text, tokens.slice(1), lineNo, found);
  });

  if (block !== undefined) throw new GoModSyntaxError(`"${block} (" block is never closed`, lines.length);
  if (found.module === undefined) throw new GoModSyntaxError('no module directive', 0);
  const result: GoMod = { module: found.module, requires: found.requires, replaced: found.replaced };
  if (found.go !== undefined) result.go = found.go;
  if (found.toolchain !== undefined) result.toolchain = found.toolchain;
  return result;
}

function directive(verb: string, args: Token[], lineNo: number, found: Partial<GoMod> & Pick<GoMod, 'requires' | 'replaced'>): void {
  if (verb === 'require') {
    const [path, version] = args;
    if (args.length !== 2 || !path || !version) throw new GoModSyntaxError('require takes a module path and a version', lineNo);
    const problem = modulePathProblem(path.text);
    if (problem) throw new GoModSyntaxError(`invalid module path ${JSON.stringify(path.text)}: ${problem}`, lineNo);
    if (!MODULE_VERSION.test(version.text))
      throw new GoModSyntaxError(`invalid version ${JSON.stringify(version.text)} for ${path.text}: must look like v1.2.3`, lineNo);
    found.requires.push({ path: path.text, version: version.text });
    return;
  }
  if (verb === 'replace') {
    const left = args[0];
    if (left && left.text !== '=>') found.replaced.push(left.text);
    return;
  }
  if (verb !== 'module' && verb !== 'go' && verb !== 'toolchain') return;
  if (args.length !== 1) throw new GoModSyntaxError(`${verb} directive takes exactly one argument`, lineNo);
  if (found[verb] !== undefined) throw new GoModSyntaxError(`repeated ${verb} directive`, lineNo);
  const value = (args[0] as Token).text;
  if (verb === 'module') {
    const problem = modulePathProblem(value);
    if (problem) throw new GoModSyntaxError(`invalid module path ${JSON.stringify(value)}: ${problem}`, lineNo);
  } else if (verb === 'go' && !GO_VERSION.test(value)) {
    throw new GoModSyntaxError(`invalid go version ${JSON.stringify(value)}: must look like 1.22 or 1.22.1`, lineNo);
  } else if (verb === 'toolchain' && !TOOLCHAIN.test(value)) {
    throw new GoModSyntaxError(`invalid toolchain ${JSON.stringify(value)}: must look like go1.22.12`, lineNo);
  }
  found[verb] = value;
}

function tokenize(line: string, lineNo: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i] as string;
    if (c === ' ' || c === '\t' || c === '\v' || c === '\f') {
      i++;
    } else if (line.startsWith('//', i)) {
      break;
    } else if (c === '(' || c === ')') {
      tokens.push({ text: c, quoted: false });
      i++;
    } else if (c === '"') {
      let end = i + 1;
      while (end < line.length && line[end] !== '"') end += line[end] === '\\' ? 2 : 1;
      if (end >= line.length) throw new GoModSyntaxError('unterminated quoted string', lineNo);
      let text: string;
      try {
        // JSON string escapes are the subset of Go's that can appear in a module path.
        text = JSON.parse(line.slice(i, end + 1)) as string;
      } catch {
        throw new GoModSyntaxError(`invalid quoted string ${line.slice(i, end + 1)}`, lineNo);
      }
      tokens.push({ text, quoted: true });
      i = end + 1;
    } else if (c === '`') {
      const end = line.indexOf('`', i + 1);
      if (end < 0) throw new GoModSyntaxError('unterminated raw string', lineNo);
      tokens.push({ text: line.slice(i + 1, end), quoted: true });
      i = end + 1;
    } else {
      let end = i;
      while (end < line.length && !/[\s()"`]/.test(line[end] as string) && !line.startsWith('//', end)) end++;
      tokens.push({ text: line.slice(i, end), quoted: false });
      i = end;
    }
  }
  return tokens;
}

/** Why `path` is not a module path cmd/go would accept (module.CheckImportPath), or undefined. */
export function modulePathProblem(path: string): string | undefined {
  if (path === '') return 'empty';
  if (path.startsWith('/') || path.endsWith('/')) return 'leading or trailing slash';
  if (path.startsWith('-')) return 'leading dash';
  for (const element of path.split('/')) {
    if (element === '') return 'double slash';
    if (!/^[A-Za-z0-9._~+-]+$/.test(element))
      return `element ${JSON.stringify(element)} has a character other than letters, digits and -._~+`;
    if (element.startsWith('.')) return `element ${JSON.stringify(element)} starts with a dot`;
    if (element.endsWith('.')) return `element ${JSON.stringify(element)} ends with a dot`;
  }
  return undefined;
}
