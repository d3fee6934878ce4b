import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateXML } from 'xmllint-wasm';
import { parse } from 'yaml';
import { writeTree } from './support/go-programs.js';
import { BROKEN_PLUGIN } from './support/fixtures.js';
import { GOTIFY_PLUGIN } from './support/source.js';
import { REPO_ROOT } from './support/env.js';
import { startServe, type ServeProcess } from './support/serve-process.js';

const run = promisify(execFile);

interface Step {
  id?: string;
  shell?: string;
  env?: Record<string, string>;
  run: string;
}

let serve: ServeProcess;
let work: string;
/** Node's folder and the shell's tools, nothing of this repository: the client comes on PATH as the action puts it there. */
const BASE_PATH = [path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'plugforge-ci-'));
  await run('npm', ['run', '--silent', 'build:cli'], { cwd: REPO_ROOT });
  serve = await startServe();
}, 180_000);

afterAll(async () => {
  await serve?.stop();
  await rm(work, { recursive: true, force: true });
});

function sh(script: string, env: Record<string, string>, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-e', '-c', script], { cwd, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** `key=value` lines of a GITHUB_OUTPUT file. */
async function outputsOf(file: string): Promise<Record<string, string>> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return Object.fromEntries(
    text
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/**
 * Runs action.yml's steps as a GitHub runner does: each `run:` in bash with the step's `env:`
 * (its `${{ inputs.* }}` filled from `inputs` and the inputs' defaults), GITHUB_OUTPUT,
 * GITHUB_STEP_SUMMARY, GITHUB_PATH and RUNNER_TEMP files, in a clean workspace; the outputs
 * mapped through `${{ steps.<id>.outputs.* }}` as action.yml declares them.
 */
async function runAction(workspace: string, inputs: Record<string, string>) {
  const action = parse(await readFile(path.join(REPO_ROOT, 'action.yml'), 'utf8')) as {
    inputs: Record<string, { default?: string; required?: boolean }>;
    outputs: Record<string, { value: string }>;
    runs: { using: string; steps: Step[] };
  };
  expect(action.runs.using).toBe('composite');
  const given = Object.fromEntries(Object.entries(action.inputs).map(([k, v]) => [k, inputs[k] ?? v.default ?? '']));
  for (const [k, v] of Object.entries(action.inputs)) if (v.required) expect(given[k], `input ${k}`).not.toBe('');
  const files = { GITHUB_OUTPUT: 'output', GITHUB_STEP_SUMMARY: 'summary.md', GITHUB_PATH: 'path', RUNNER_TEMP: 'tmp' };
  const runner = await mkdtemp(path.join(work, 'runner-'));
  await mkdir(path.join(runner, 'tmp'));
  const env: Record<string, string> = {
    PATH: BASE_PATH,
    HOME: runner,
    GITHUB_ACTION_PATH: REPO_ROOT,
    GITHUB_WORKSPACE: workspace,
    ...Object.fromEntries(Object.entries(files).map(([k, f]) => [k, path.join(runner, f)])),
  };
  const stepOutputs: Record<string, Record<string, string>> = {};
  const results = [];
  for (const step of action.runs.steps) {
    expect(step.shell).toBe('bash');
    await writeFile(env.GITHUB_OUTPUT!, '');
    const added = (await readFile(env.GITHUB_PATH!, 'utf8').catch(() => '')).split('\n').filter(Boolean).reverse();
    const stepEnv = Object.fromEntries(
      Object.entries(step.env ?? {}).map(([k, v]) => [
        k,
        v.replace(/\$\{\{ inputs\.([\w-]+) \}\}/g, (_, name: string) => given[name] ?? ''),
      ]),
    );
    const result = await sh(step.run, { ...env, PATH: [...added, BASE_PATH].join(':'), ...stepEnv }, workspace);
    results.push(result);
    if (step.id) stepOutputs[step.id] = await outputsOf(env.GITHUB_OUTPUT!);
    if (result.code !== 0) break;
  }
  const outputs = Object.fromEntries(
    Object.entries(action.outputs).map(([k, v]) => {
      const m = /^\$\{\{ steps\.([\w-]+)\.outputs\.([\w-]+) \}\}$/.exec(v.value);
      return [k, m ? stepOutputs[m[1]!]?.[m[2]!] : undefined];
    }),
  );
  const summary = await readFile(env.GITHUB_STEP_SUMMARY!, 'utf8').catch(() => '');
  return { results, last: results.at(-1)!, outputs, summary };
}

describe('the GitHub Action (action.yml)', () => {
  it('builds a plugin: outputs set, the artifact in the output directory, a summary of the targets', async () => {
    const workspace = await mkdtemp(path.join(work, 'ws-'));
    await writeTree(path.join(workspace, 'plugin'), GOTIFY_PLUGIN);
    const r = await runAction(workspace, { url: serve.url, path: 'plugin', targets: 'linux-amd64', out: 'dist' });
    expect(r.last.code, r.last.stderr).toBe(0);
    expect(r.outputs).toMatchObject({ status: 'succeeded', artifacts: 'dist', 'build-id': expect.stringMatching(/^[a-z0-9]+$/) });
    expect((await readdir(path.join(workspace, 'dist'))).some((f) => f.endsWith('.so'))).toBe(true);
    expect(r.summary).toContain(`### plugforge build ${r.outputs['build-id']}: succeeded`);
    expect(r.summary).toMatch(/^\| linux-amd64 \| succeeded \| passed /m);
    expect(r.last.stdout).not.toContain('::error');
  }, 120_000);

  it('a plugin with a type error fails the step with an annotation at its file and line', async () => {
    const workspace = await mkdtemp(path.join(work, 'ws-'));
    await writeTree(path.join(workspace, 'plugins', 'broken'), BROKEN_PLUGIN);
    const r = await runAction(workspace, { url: serve.url, path: 'plugins/broken', targets: 'linux-amd64,linux-arm64' });
    expect(r.last.code).toBe(1);
    expect(r.outputs.status).toBe('failed');
    expect(r.last.stdout).toMatch(
      /^::error file=plugins\/broken\/plugin\.go,line=3,col=\d+,title=plugforge linux-amd64::cannot use "not a number"/m,
    );
    expect(r.last.stdout.match(/^::error /gm)).toHaveLength(1);
    expect(r.summary).toMatch(/^\| linux-arm64 \| failed \| - \| - \| - \| compile_failed: /m);
  }, 120_000);
});

describe('the GitLab component (templates/plugforge.yml)', () => {
  it('its job script builds, writes a JUnit report GitLab reads and the artifacts it declares', async () => {
    const [specText, jobText] = (await readFile(path.join(REPO_ROOT, 'templates', 'plugforge.yml'), 'utf8')).split(/^---$/m);
    const spec = parse(specText!) as { spec: { inputs: Record<string, { default?: string }> } };
    const given: Record<string, string> = { url: serve.url, path: 'broken', targets: 'linux-amd64,linux-386' };
    // An input without a default is one GitLab requires.
    for (const [k, v] of Object.entries(spec.spec.inputs))
      if (v.default === undefined) expect(given[k], `input ${k} is required`).toBeDefined();
    const inputs = Object.fromEntries(Object.entries(spec.spec.inputs).map(([k, v]) => [k, given[k] ?? v.default ?? '']));
    const filled = jobText!.replace(/\$\[\[ inputs\.([\w-]+) \]\]/g, (_, name: string) => inputs[name] ?? '');
    const job = (
      parse(filled) as Record<
        string,
        { variables: Record<string, string>; script: string[]; artifacts: { paths: string[]; reports: { junit: string } } }
      >
    )['plugforge-build']!;
    const project = await mkdtemp(path.join(work, 'gitlab-'));
    await writeTree(path.join(project, 'broken'), BROKEN_PLUGIN);
    await writeTree(path.join(project, 'good'), GOTIFY_PLUGIN);
    // The job's image has the client on PATH (npm's link to bin/plugforge.js); here, such a link.
    const bin = path.join(project, '.bin');
    await mkdir(bin);
    await symlink(path.join(REPO_ROOT, 'packages', 'cli', 'bin', 'plugforge.js'), path.join(bin, 'plugforge'));
    const env = { PATH: [bin, BASE_PATH].join(':'), HOME: project, ...job.variables };
    const r = await sh(job.script.join('\n'), env, project);
    expect(r.code, r.stderr).toBe(1);
    const junit = await readFile(path.join(project, job.artifacts.reports.junit), 'utf8');
    const schema = await readFile(path.join(REPO_ROOT, 'test', 'junit.xsd'), 'utf8');
    const valid = await validateXML({
      xml: [{ fileName: 'junit.xml', contents: junit }],
      schema: [{ fileName: 'junit.xsd', contents: schema }],
    });
    expect(valid.errors).toEqual([]);
    expect(junit.match(/<testcase /g)).toHaveLength(2);
    expect(junit.match(/<failure type="compile_failed"/g)).toHaveLength(2);
    expect(junit).toMatch(
      /<testcase name="linux-386"[^>]*>\n\s+<failure type="compile_failed" message="compile_failed: [^"]*">[^<]*plugin\.go:3:\d+: cannot use/,
    );
    expect(junit).toContain('<system-out>');
    for (const p of job.artifacts.paths.filter((p) => !p.endsWith('/')))
      expect(await readFile(path.join(project, p), 'utf8')).toContain('"status": "failed"');

    // The same job for a plugin that builds: exit 0 and its artifacts in the declared directory.
    const good = await sh(job.script.join('\n'), { ...env, PLUGFORGE_PATH: 'good' }, project);
    expect(good.code, good.stderr).toBe(0);
    const dir = job.artifacts.paths.find((p) => p.endsWith('/'))!;
    expect((await readdir(path.join(project, dir))).filter((f) => f.endsWith('.so'))).toHaveLength(2);
    expect(await readFile(path.join(project, job.artifacts.reports.junit), 'utf8')).not.toContain('<failure');
  }, 180_000);
});
