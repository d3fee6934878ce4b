import { describe, expect, it } from 'vitest';
import { classifyDependencyFailure, parseDownloadOutput } from '../src/worker/dependency-phase.js';
import { DEPS_MARK } from '../src/worker/plan.js';

describe('dependency phase: what Go says, turned into codes that name the module', () => {
  it('checksum mismatch, with both hashes', () => {
    const e = classifyDependencyFailure(
      'verifying github.com/go-logfmt/logfmt@v0.5.0: checksum mismatch\n\tdownloaded: h1:RIX=\n\tgo.sum:     h1:AAA=\n\nSECURITY ERROR\n',
      [],
    );
    expect(e.code).toBe('module_checksum_mismatch');
    expect(e.message).toBe(
      'Checksum mismatch for github.com/go-logfmt/logfmt@v0.5.0: the proxy served h1:RIX=, go.sum says h1:AAA=. Fix go.sum (go mod tidy) or find out who changed the module.',
    );
    expect(e.retryable).toBe(false);
  });

  it('a module the proxy does not have (file:// and http proxies)', () => {
    expect(
      classifyDependencyFailure(
        'go: github.com/nope/missing@v1.0.0: reading file:///proxy/github.com/nope/missing/@v/v1.0.0.mod: no such file or directory',
        [],
      ).message,
    ).toContain('github.com/nope/missing@v1.0.0 is not on the module proxy');
    expect(
      classifyDependencyFailure('go: example.com/x@v2.0.0: reading https://proxy.golang.org/example.com/x/@v/v2.0.0.mod: 410 Gone', [])
        .code,
    ).toBe('module_not_found');
  });

  it('a go.mod asking for a newer Go, with the toolchains that would do', () => {
    const e = classifyDependencyFailure('go: go.mod requires go >= 1.23 (running go 1.22.12; GOTOOLCHAIN=local)', ['1.22.12', '1.24.4']);
    expect(e.code).toBe('toolchain_too_old');
    expect(e.message).toBe('go: go.mod requires go >= 1.23 (running go 1.22.12; GOTOOLCHAIN=local). Toolchains that would do: 1.24.4.');
  });

  it('an unreachable proxy is retryable', () => {
    const e = classifyDependencyFailure(
      'go: example.com/x@v1.0.0: Get "https://proxy.example/x/@v/v1.0.0.mod": dial tcp: lookup proxy.example: no such host',
      [],
    );
    expect(e.code).toBe('proxy_unreachable');
    expect(e.retryable).toBe(true);
  });

  it('reads the two JSON passes of the script', () => {
    const out = `${DEPS_MARK.cached}\n{\n\t"Path": "a.example/m",\n\t"Version": "v1.0.0",\n\t"Error": "module lookup disabled by GOPROXY=off"\n}\n${DEPS_MARK.download}\n{\n\t"Path": "a.example/m",\n\t"Version": "v1.0.0",\n\t"Sum": "h1:x="\n}\n`;
    const parsed = parseDownloadOutput(out);
    expect(parsed.cached).toEqual([{ Path: 'a.example/m', Version: 'v1.0.0', Error: 'module lookup disabled by GOPROXY=off' }]);
    expect(parsed.download).toEqual([{ Path: 'a.example/m', Version: 'v1.0.0', Sum: 'h1:x=' }]);
  });
});
