import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { PROBE_MAIN_GO } from '../verify/load-probe.js';
import { BUILD_UID } from './build-spec.js';
import { PROBE_DIR } from './plan.js';

/** What a build changes in the stored source when host matching asks for it. */
export interface WorkOverrides {
  /** The plugin's go.mod after alignment to the host's modules. */
  goMod?: string;
  /** go.sum lines for the versions alignment chose, appended to the source's go.sum. */
  goSumAdded?: readonly string[];
  /** Module paths the host links: the loading probe imports the plugin's packages of these. */
  hostModules?: readonly string[];
}

/**
 * The tar that is put into a build container's /work: the stored clean source under src/
 * (with the overrides of host matching, and the loading probe's package), and the empty
 * out/, tmp/ and home/ directories, all owned by the build user (the /work volume itself is
 * root's, so the build can write only where it should).
 */
export function workTar(source: Readable, overrides: WorkOverrides = {}): Readable {
  const pack = tar.pack();
  const extract = tar.extract();
  const owner = { uid: BUILD_UID, gid: BUILD_UID, mtime: new Date(946684800000) };
  const file = (name: string, text: string) => pack.entry({ name, mode: 0o644, ...owner }, text);
  for (const dir of ['src', 'out', 'tmp', 'home']) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, ...owner });
  const goSumExtra = overrides.goSumAdded?.length ? `${overrides.goSumAdded.join('\n')}\n` : '';
  let sawGoSum = false;
  extract.on('entry', (header, stream, next) => {
    const name = header.name.replace(/\/$/, '');
    // The probe's directory is plugforge's: whatever the upload had there is left out.
    if (name === PROBE_DIR || name.startsWith(`${PROBE_DIR}/`)) {
      stream.on('end', next).resume();
      return;
    }
    if (name === 'go.mod' && overrides.goMod !== undefined) {
      stream.on('end', () => file('src/go.mod', overrides.goMod ?? '') && next()).resume();
      return;
    }
    if (name === 'go.sum' && goSumExtra) {
      sawGoSum = true;
      const chunks: Buffer[] = [];
      stream.on('data', (c) => chunks.push(c as Buffer));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        file('src/go.sum', `${text}${text && !text.endsWith('\n') ? '\n' : ''}${goSumExtra}`);
        next();
      });
      return;
    }
    const entry = pack.entry({ ...header, name: `src/${header.name}`, ...owner }, next);
    stream.pipe(entry);
  });
  extract.on('finish', () => {
    if (goSumExtra && !sawGoSum) file('src/go.sum', goSumExtra);
    pack.entry({ name: `src/${PROBE_DIR}/`, type: 'directory', mode: 0o755, ...owner });
    file(`src/${PROBE_DIR}/main.go`, PROBE_MAIN_GO);
    file(`src/${PROBE_DIR}/imports.go`, 'package main\n');
    file(`src/${PROBE_DIR}/host-modules.txt`, (overrides.hostModules ?? []).map((m) => `${m}\n`).join(''));
    pack.finalize();
  });
  const out = new PassThrough();
  pipeline(source, extract).catch((err: Error) => pack.destroy(err));
  pack.pipe(out);
  pack.on('error', (err) => out.destroy(err));
  return out;
}

/**
 * The tar put into a loading probe's /work: the artifact under out/, the probe binary under
 * tmp/ (built in the plugin's build container), and home/, all owned by the build user.
 */
export function verifyTar(artifact: Readable, artifactName: string, size: number, probe: Buffer): Readable {
  const pack = tar.pack();
  const owner = { uid: BUILD_UID, gid: BUILD_UID, mtime: new Date(946684800000) };
  for (const dir of ['out', 'tmp', 'home']) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, ...owner });
  pack.entry({ name: 'tmp/probe', mode: 0o755, ...owner }, probe);
  const entry = pack.entry({ name: `out/${artifactName}`, size, mode: 0o644, ...owner }, (err) => (err ? pack.destroy(err) : pack.finalize()));
  artifact.on('error', (err) => pack.destroy(err));
  artifact.pipe(entry);
  const out = new PassThrough();
  pack.pipe(out);
  pack.on('error', (err) => out.destroy(err));
  return out;
}
