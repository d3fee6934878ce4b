import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { PROBE_GO_MOD, PROBE_MAIN_GO } from '../verify/load-probe.js';
import { BUILD_UID } from './build-spec.js';

/**
 * The tar that is put into a build container's /work: the stored clean source under src/,
 * and the empty out/, tmp/ and home/ directories, all owned by the build user (the /work
 * volume itself is root's, so the build can write only where it should).
 */
export function workTar(source: Readable): Readable {
  const pack = tar.pack();
  const extract = tar.extract();
  const owner = { uid: BUILD_UID, gid: BUILD_UID, mtime: new Date(946684800000) };
  for (const dir of ['src', 'out', 'tmp', 'home', 'probe']) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, ...owner });
  pack.entry({ name: 'probe/go.mod', mode: 0o644, ...owner }, PROBE_GO_MOD);
  pack.entry({ name: 'probe/main.go', mode: 0o644, ...owner }, PROBE_MAIN_GO);
  extract.on('entry', (header, stream, next) => {
    const entry = pack.entry({ ...header, name: `src/${header.name}`, ...owner }, next);
    stream.pipe(entry);
  });
  extract.on('finish', () => pack.finalize());
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
