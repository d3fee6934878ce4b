import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { validateXML } from 'xmllint-wasm';
import { describe, expect, it } from 'vitest';
import type { BuildDocument } from '../src/client/api-client.js';
import { compilerErrors, githubAnnotations, junitDocument, junitReport, junitSuite, markdownSummary } from '../src/client/ci-reports.js';
import { releaseDocuments } from '../src/client/matrix-build.js';
import { REPO_ROOT } from './support/env.js';

const COMPILER_OUTPUT = [
  'go build exited with status 1:',
  '# example.com/broken',
  './plugin.go:3:22: cannot use "not a number" (untyped string constant) as int value in variable declaration',
  'sub/util.go:10:2: undefined: missing',
  '/go/pkg/mod/example.com/dep@v1.0.0/dep.go:4:1: syntax error: not the plugin’s own file',
  '../outside.go:1:1: not inside the plugin either',
].join('\n');

const artifact = (name: string) => ({ name, size: 2048, sha256: 'ab'.repeat(32), url: `http://x/v1/builds/b1/artifacts/${name}` });
const DOC = {
  id: 'b1',
  status: 'failed',
  go: '1.22.12',
  goRequested: '1.22',
  name: 'broken & <co>',
  mode: 'plugin',
  host: 'generic',
  module: 'example.com/broken',
  createdAt: '2026-12-07T21:00:00.123Z',
  targets: {
    'linux-amd64': { status: 'failed', image: 'i', durationMs: 2100, error: { code: 'compile_failed', message: COMPILER_OUTPUT } },
    'linux-arm64': { status: 'failed', image: 'i', durationMs: 2300, error: { code: 'compile_failed', message: COMPILER_OUTPUT } },
    'linux-386': {
      status: 'succeeded',
      image: 'i',
      durationMs: 1500,
      artifact: artifact('broken-linux-386.so'),
      verify: { status: 'passed', message: 'ok', method: 'probe' },
    },
  },
} as unknown as BuildDocument;

async function validate(xml: string) {
  const schema = await readFile(path.join(REPO_ROOT, 'test', 'junit.xsd'), 'utf8');
  return validateXML({ xml: [{ fileName: 'report.xml', contents: xml }], schema: [{ fileName: 'junit.xsd', contents: schema }] });
}

describe('reports for CI (src/client/ci-reports.ts)', () => {
  it('finds the compiler errors of the plugin’s own files, once across targets', () => {
    expect(compilerErrors(DOC)).toEqual([
      { file: 'plugin.go', line: 3, col: 22, message: expect.stringContaining('cannot use "not a number"'), target: 'linux-amd64' },
      { file: 'sub/util.go', line: 10, col: 2, message: 'undefined: missing', target: 'linux-amd64' },
    ]);
  });

  it('writes GitHub annotations at the line, the path relative to the repository, the data escaped', () => {
    const text = githubAnnotations(DOC, 'plugins/broken');
    expect(text.split('\n').filter(Boolean)).toEqual([
      expect.stringMatching(
        /^::error file=plugins\/broken\/plugin\.go,line=3,col=22,title=plugforge linux-amd64::cannot use "not a number"/,
      ),
      '::error file=plugins/broken/sub/util.go,line=10,col=2,title=plugforge linux-amd64::undefined: missing',
    ]);
    const other = {
      ...DOC,
      targets: { 'linux-arm-7': { status: 'failed', image: 'i', error: { code: 'artifact_too_large', message: '100% over,\nsee' } } },
    } as unknown as BuildDocument;
    expect(githubAnnotations(other, '.')).toBe(
      '::error title=plugforge linux-arm-7::linux-arm-7 failed: artifact_too_large: 100%25 over,\n',
    );
  });

  it('summarises the targets in Markdown', () => {
    const md = markdownSummary(DOC, 'https://plugforge.example.org');
    expect(md).toContain('### plugforge build b1: failed');
    expect(md).toContain('| linux-386 | succeeded | passed (probe) | `broken-linux-386.so` 2.0 KiB | `abababababab` |  |');
    expect(md).toMatch(/^\| linux-amd64 \| failed \| - \| - \| - \| compile_failed: go build exited with status 1: \|$/m);
  });

  it('writes a JUnit report that validates against the JUnit schema, one failure per failed target, the log in system-out', async () => {
    const xml = junitReport(DOC, { 'linux-amd64': 'line one\n\u001b[31mred\u001b[0m <b> & done', 'linux-386': 'ok' });
    const result = await validate(xml);
    expect(result.errors, xml).toEqual([]);
    expect(result.valid).toBe(true);
    expect(xml.match(/<testcase /g)).toHaveLength(3);
    expect(xml.match(/<failure /g)).toHaveLength(2);
    expect(xml).toContain(
      '<testsuite name="plugforge broken &amp; &lt;co&gt;" tests="3" failures="2" errors="0" skipped="0" time="5.900" timestamp="2026-12-07T21:00:00">',
    );
    expect(xml).toMatch(
      /<testcase name="linux-amd64" classname="plugforge\.broken &amp; &lt;co&gt;" time="2\.100">\n\s+<failure type="compile_failed" message="compile_failed: go build exited with status 1:">/,
    );
    expect(xml).toContain('<system-out>line one\n[31mred[0m &lt;b&gt; &amp; done</system-out>');
    expect(xml).toMatch(/<testcase name="linux-386" [^>]*>\n\s+<system-out>ok<\/system-out>/);
  });

  it('the schema refuses what the readers would not take (so the check above can fail)', async () => {
    const bad = junitReport(DOC, {}).replace('tests="3"', 'tests="three"');
    expect((await validate(bad)).valid).toBe(false);
    const unknown = junitReport(DOC, {}).replace('<testsuites>', '<testsuites><oops/>');
    expect((await validate(unknown)).valid).toBe(false);
  });

  it('writes a matrix build as one JUnit testsuite per host release, each valid, each cell a testcase', async () => {
    const cells = [
      { host: 'h@1.0.0', target: 'linux-amd64', build: 'g1', status: 'succeeded', artifact: artifact('p-linux-amd64-for-h-v1.0.0.so') },
      { host: 'h@1.1.0', target: 'linux-amd64', build: 'g2', status: 'succeeded', artifact: artifact('p-linux-amd64-for-h-v1.1.0.so') },
      {
        host: 'h@1.1.1',
        target: 'linux-amd64',
        build: 'g2',
        status: 'failed',
        reusedFrom: 'h@1.1.0',
        error: {
          code: 'package_mismatch',
          message: 'p-linux-amd64-for-h-v1.1.1.so: plugin was built with a different version of package example.com/shared',
        },
      },
    ];
    const matrix = {
      ...DOC,
      name: 'p',
      status: 'failed',
      targets: {},
      matrix: { hosts: ['h@1.0.0', 'h@1.1.0', 'h@1.1.1'], builds: [], cells },
    } as unknown as BuildDocument;
    const downloads = [
      {
        target: 'linux-amd64' as const,
        path: 'out/p-linux-amd64-for-h-v1.1.0.so',
        sha256: 'x',
        size: 1,
        verified: false,
        problem: 'sha256 MISMATCH',
      },
    ];
    const releases = releaseDocuments(matrix, downloads);
    expect(releases.map((r) => [r.host, r.doc.name, r.doc.status, Object.keys(r.downloads)])).toEqual([
      ['h@1.0.0', 'p for h@1.0.0', 'succeeded', []],
      ['h@1.1.0', 'p for h@1.1.0', 'succeeded', ['linux-amd64']],
      ['h@1.1.1', 'p for h@1.1.1', 'failed', []],
    ]);
    const xml = junitDocument(releases.map((r) => junitSuite(r.doc, {}, r.downloads)));
    const result = await validate(xml);
    expect(result.errors, xml).toEqual([]);
    expect(xml.match(/<testsuite /g)).toHaveLength(3);
    expect(xml).toContain('<testsuite name="plugforge p for h@1.1.1" tests="1" failures="1"');
    expect(xml).toContain('<failure type="package_mismatch"');
    // A cell whose download did not verify fails its testcase too.
    expect(xml).toMatch(/<testsuite name="plugforge p for h@1\.1\.0" tests="1" failures="1"[^]*artifact_not_verified/);
  });
});
