import { targetsOf, formatBytes, type DownloadResult } from './summary-table.js';
import type { BuildDocument } from './api-client.js';
import type { TargetId } from '../contract/targets.js';

/** A Go compiler error at a line of the plugin's own source. */
export interface CompilerError {
  /** Relative to the plugin's directory, with forward slashes. */
  file: string;
  line: number;
  col: number;
  message: string;
  target: TargetId;
}

/** Paths Go prints relative to the module (./x.go, sub/x.go); absolute ones are the module cache's or the toolchain's, not the plugin's. */
const ERROR_LINE = /^(?:\.\/)?([\w.+@-][\w./+@-]*\.go):(\d+):(\d+): (.+)$/;
const MAX_ERRORS = 50;

/**
 * The compiler errors of the build's failed targets, from each target's error message (a
 * compile failure carries the compiler's last lines), each file:line:col once across
 * targets, at most 50: what an annotation can point at (docs/ci.md).
 */
export function compilerErrors(doc: BuildDocument): CompilerError[] {
  const seen = new Map<string, CompilerError>();
  for (const target of targetsOf(doc)) {
    for (const m of ownErrorLines(doc.targets[target]?.error?.message ?? '')) {
      const key = `${m[1]}:${m[2]}:${m[3]}`;
      if (!seen.has(key) && seen.size < MAX_ERRORS)
        seen.set(key, { file: m[1]!, line: Number(m[2]), col: Number(m[3]), message: m[4]!, target });
    }
  }
  return [...seen.values()];
}

function hasCompilerError(message: string): boolean {
  return ownErrorLines(message).length > 0;
}

/** The file:line:col: message lines of a target's error that point into the plugin (first 400 lines looked at). */
function ownErrorLines(message: string): RegExpExecArray[] {
  return message
    .split('\n')
    .slice(0, 400)
    .map((line) => ERROR_LINE.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null && !m[1]!.split('/').includes('..'));
}

/** GitHub's escaping of a workflow command's data and of its properties. */
const escapeData = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
const escapeProperty = (s: string) => escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');

/**
 * `::error file=…,line=…,col=…::` lines for GitHub Actions, one per compiler error, `file`
 * relative to the repository (`pluginDir`: the plugin's directory relative to it), and one
 * per failed target without a compiler error, so a failing build shows in the pull request.
 */
export function githubAnnotations(doc: BuildDocument, pluginDir: string): string {
  const base = pluginDir
    .replace(/\\/g, '/')
    .replace(/^\.\/?/, '')
    .replace(/\/$/, '');
  const errors = compilerErrors(doc);
  const lines = errors.map((e) => {
    const file = base ? `${base}/${e.file}` : e.file;
    return `::error file=${escapeProperty(file)},line=${e.line},col=${e.col},title=${escapeProperty(`plugforge ${e.target}`)}::${escapeData(e.message)}`;
  });
  for (const target of targetsOf(doc)) {
    const t = doc.targets[target]!;
    // A target whose compiler errors are annotated already (under any target) needs no line of its own.
    if (t.status === 'succeeded' || hasCompilerError(t.error?.message ?? '')) continue;
    const what = t.error ? `${t.error.code}: ${t.error.message.split('\n')[0]}` : t.status;
    lines.push(`::error title=${escapeProperty(`plugforge ${target}`)}::${escapeData(`${target} ${t.status}: ${what}`)}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** A Markdown summary of the build: one row per target (for $GITHUB_STEP_SUMMARY). */
export function markdownSummary(doc: BuildDocument, server: string, downloads?: Partial<Record<TargetId, DownloadResult>>): string {
  const rows = targetsOf(doc).map((target) => {
    const t = doc.targets[target]!;
    const verify = t.verify ? `${t.verify.status}${t.verify.method ? ` (${t.verify.method})` : ''}` : '-';
    const artifact = t.artifact ? `\`${t.artifact.name}\` ${formatBytes(t.artifact.size)}` : '-';
    const sha = t.artifact ? `\`${t.artifact.sha256.slice(0, 12)}\`` : '-';
    const here = downloads?.[target]
      ? downloads[target]!.verified
        ? 'downloaded'
        : `not verified: ${downloads[target]!.problem ?? ''}`
      : '';
    const error = t.error ? `${t.error.code}: ${t.error.message.split('\n')[0]}` : here;
    return `| ${target} | ${t.status} | ${cell(verify)} | ${cell(artifact)} | ${sha} | ${cell(error)} |`;
  });
  return [
    `### plugforge build ${doc.id}: ${doc.status}`,
    '',
    `Go ${doc.go}, \`${doc.module}\` ([build document](${server}/v1/builds/${doc.id}))`,
    '',
    '| target | status | verify | artifact | sha256 | note |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

/** Text safe in XML: the five entities escaped, characters XML 1.0 forbids (terminal escapes) dropped. */
export function xmlText(s: string): string {
  return (
    s
      // eslint-disable-next-line no-control-regex -- these are what XML 1.0 cannot hold
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
      .replace(/'/g, '&apos;')
  );
}

/**
 * A JUnit XML report of the build (`--junit`, read by GitLab, Jenkins and others): one
 * testsuite, one testcase per target, a `<failure>` with the error's code and message for a
 * target that did not succeed or whose artifact did not verify, and the target's log (its
 * last lines, `logs`) in `<system-out>`. test/junit.xsd is the format it is checked against.
 */
export function junitReport(
  doc: BuildDocument,
  logs: Partial<Record<TargetId, string>>,
  downloads?: Partial<Record<TargetId, DownloadResult>>,
): string {
  return junitDocument([junitSuite(doc, logs, downloads)]);
}

/** The JUnit XML around testsuites (a matrix build has one per host release). */
export function junitDocument(suites: string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n${suites.join('\n')}\n</testsuites>\n`;
}

/** One testsuite of the build's targets (see junitReport). */
export function junitSuite(
  doc: BuildDocument,
  logs: Partial<Record<TargetId, string>>,
  downloads?: Partial<Record<TargetId, DownloadResult>>,
): string {
  const cases = targetsOf(doc).map((target) => {
    const t = doc.targets[target]!;
    const seconds = ((t.durationMs ?? 0) / 1000).toFixed(3);
    const download = downloads?.[target];
    const failure =
      t.status !== 'succeeded'
        ? { code: t.error?.code ?? t.status, message: t.error?.message ?? `the target ended ${t.status}` }
        : download && !download.verified
          ? { code: 'artifact_not_verified', message: download.problem ?? 'the downloaded artifact does not match the build document' }
          : undefined;
    const body = [
      failure
        ? `      <failure type="${xmlText(failure.code)}" message="${xmlText(`${failure.code}: ${failure.message.split('\n')[0]}`)}">${xmlText(failure.message)}</failure>`
        : '',
      logs[target] !== undefined ? `      <system-out>${xmlText(logs[target]!)}</system-out>` : '',
    ].filter(Boolean);
    const open = `    <testcase name="${target}" classname="plugforge.${xmlText(doc.name)}" time="${seconds}"`;
    return body.length ? `${open}>\n${body.join('\n')}\n    </testcase>` : `${open}/>`;
  });
  const failures = targetsOf(doc).filter(
    (target) => doc.targets[target]!.status !== 'succeeded' || (downloads?.[target] && !downloads[target]!.verified),
  ).length;
  const total = targetsOf(doc).reduce((sum, target) => sum + (doc.targets[target]!.durationMs ?? 0), 0) / 1000;
  const attrs = `name="plugforge ${xmlText(doc.name)}" tests="${cases.length}" failures="${failures}" errors="0" skipped="0" time="${total.toFixed(3)}" timestamp="${xmlText(doc.createdAt.slice(0, 19))}"`;
  return `  <testsuite ${attrs}>\n${cases.join('\n')}\n  </testsuite>`;
}

/** The last `lines` lines of a log. */
export function logTail(text: string, lines = 200): string {
  const all = text.split('\n');
  if (all.at(-1) === '') all.pop();
  return all.slice(-lines).join('\n');
}
