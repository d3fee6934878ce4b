/**
 * Which paths `plugforge build` leaves out of the upload: built-in rules, then the lines
 * of DIR/.plugforgeignore, in gitignore's syntax (the subset docs/cli.md lists). As in
 * gitignore the last matching rule wins, and a path inside a left-out directory stays out
 * whatever later rules say, because the walk never enters that directory.
 */

export interface IgnoreRule {
  /** The pattern as written, for messages. */
  pattern: string;
  /** `!pattern`: brings back what an earlier rule left out. */
  negate: boolean;
  /** `pattern/`: matches directories only. */
  dirOnly: boolean;
  /** Matched against the whole path relative to DIR, with `/` separators. */
  regex: RegExp;
  /** Where the rule comes from, e.g. ".plugforgeignore:3" or "built-in". */
  source: string;
}

export const IGNORE_FILE = '.plugforgeignore';

/**
 * Left out unless .plugforgeignore brings them back with `!`: version control, Node
 * dependencies, and previous outputs (`dist/`, the default --out, and `*.so` at the root).
 */
export const BUILT_IN_PATTERNS = ['.git', 'node_modules/', '/dist/', '/*.so'] as const;

/** One line of an ignore file as a rule, or undefined for blank lines and comments. */
export function parseIgnoreLine(line: string, source: string): IgnoreRule | undefined {
  // Trailing spaces are dropped unless escaped with a backslash, as in gitignore.
  let text = line.replace(/\r$/, '').replace(/(?<!\\)\s+$/, '');
  if (text === '' || text.startsWith('#')) return undefined;
  let negate = false;
  if (text.startsWith('!')) {
    negate = true;
    text = text.slice(1);
  } else if (text.startsWith('\\!') || text.startsWith('\\#')) {
    text = text.slice(1);
  }
  let dirOnly = false;
  if (text.endsWith('/')) {
    dirOnly = true;
    text = text.replace(/\/+$/, '');
  }
  if (text === '') return undefined;
  // A slash at the start or in the middle anchors the pattern at DIR; otherwise it matches
  // a name at any depth.
  const anchored = text.includes('/');
  text = text.replace(/^\/+/, '');
  const body = globToRegex(text);
  const regex = new RegExp(`^${anchored ? '' : '(?:.*/)?'}${body}$`, 'u');
  return { pattern: line.trim(), negate, dirOnly, regex, source };
}

export function parseIgnoreFile(text: string, source = IGNORE_FILE): IgnoreRule[] {
  return text.split('\n').flatMap((line, i) => parseIgnoreLine(line, `${source}:${i + 1}`) ?? []);
}

/**
 * A gitignore glob as a regular expression body: `*` and `?` within one path element,
 * `[...]` classes (`[!...]` negated), `**` across elements when it stands alone between
 * slashes, `\x` a literal x.
 */
function globToRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        let j = i;
        while (glob[j] === '*') j++;
        const atEnd = j === glob.length || glob[j] === '/';
        if (atStart && atEnd) {
          if (j === glob.length)
            out += '.*'; // "dir/**": everything inside
          else {
            out += '(?:.*/)?'; // "**/x" and "a/**/b": zero or more directories
            j++;
          }
          i = j - 1;
          continue;
        }
        i = j - 1;
      }
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = glob.indexOf(']', i + 2);
      if (close === -1) {
        out += '\\[';
        continue;
      }
      let cls = glob.slice(i + 1, close);
      const negated = cls.startsWith('!') || cls.startsWith('^');
      if (negated) cls = cls.slice(1);
      out += `[${negated ? '^' : ''}${cls.replace(/[\\\]]/g, '\\$&')}]`;
      i = close;
    } else if (c === '\\' && i + 1 < glob.length) {
      out += escapeRegex(glob[++i]!);
    } else {
      out += escapeRegex(c);
    }
  }
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export class IgnoreRules {
  constructor(readonly rules: readonly IgnoreRule[]) {}

  /** The built-in rules followed by those of an ignore file's text (if any). */
  static from(ignoreFileText?: string): IgnoreRules {
    const builtIn = BUILT_IN_PATTERNS.map((p) => parseIgnoreLine(p, 'built-in')!);
    return new IgnoreRules([...builtIn, ...(ignoreFileText === undefined ? [] : parseIgnoreFile(ignoreFileText))]);
  }

  /** Whether `relPath` (relative to DIR, `/`-separated) is left out; the last matching rule decides. */
  ignores(relPath: string, isDirectory: boolean): boolean {
    let ignored = false;
    for (const rule of this.rules) {
      if (rule.dirOnly && !isDirectory) continue;
      if (rule.regex.test(relPath)) ignored = !rule.negate;
    }
    return ignored;
  }
}
