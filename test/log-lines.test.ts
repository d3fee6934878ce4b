import { describe, expect, it } from 'vitest';
import { LineFormatter } from '../src/api/log-routes.js';

describe('LineFormatter (log chunks to lines)', () => {
  it('prefixes whole lines per target, keeping a split line until its end arrives', () => {
    const f = new LineFormatter(true, false);
    expect(f.push('linux-amd64', 'one\ntw')).toBe('[linux-amd64] one\n');
    expect(f.push('linux-386', 'x\n')).toBe('[linux-386] x\n');
    expect(f.push('linux-amd64', 'o\nthr')).toBe('[linux-amd64] two\n');
    expect(f.flush()).toBe('[linux-amd64] thr\n');
  });

  it("gives one target's events whole lines, never a half", () => {
    const f = new LineFormatter(false, true);
    expect(f.push('linux-arm64', 'go build: compil')).toBe('');
    expect(f.push('linux-arm64', 'ing\ndone\n')).toBe('go build: compiling\ndone\n');
  });

  it("passes one target's plain text through as it came", () => {
    const f = new LineFormatter(false, false);
    expect(f.push('linux-arm64', 'half a li')).toBe('half a li');
  });
});
