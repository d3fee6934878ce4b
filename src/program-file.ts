import { readFileSync } from 'node:fs';

/**
 * A program plugforge runs in a container (a shell script in a `scripts/` folder beside the
 * module that runs it), read once when that module loads. The file's header comment (its
 * leading `#` lines and the blank line after them) says its arguments and what it prints;
 * the container is given the rest, without the file's last newline.
 */
export function readProgram(url: URL): string {
  const text = readFileSync(url, 'utf8');
  const lines = text.split('\n');
  let start = 0;
  while (lines[start]?.startsWith('#')) start++;
  if (start > 0 && lines[start] === '') start++;
  return lines.slice(start).join('\n').replace(/\n$/, '');
}
