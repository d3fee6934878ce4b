import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
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
  for (const dir of ['src', 'out', 'tmp', 'home']) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, ...owner });
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
 * The tar put into a verify container's /work: the probe's source under probe/, the artifact
 * under out/, and tmp/ and home/, all owned by the build user.
 */
export function verifyTar(artifact: Readable, artifactName: string, size: number, probeFiles: Record<string, string>): Readable {
  const pack = tar.pack();
  const owner = { uid: BUILD_UID, gid: BUILD_UID, mtime: new Date(946684800000) };
  for (const dir of ['probe', 'out', 'tmp', 'home']) pack.entry({ name: `${dir}/`, type: 'directory', mode: 0o755, ...owner });
  for (const [name, text] of Object.entries(probeFiles)) pack.entry({ name: `probe/${name}`, mode: 0o644, ...owner }, text);
  const entry = pack.entry({ name: `out/${artifactName}`, size, mode: 0o755, ...owner }, (err) => (err ? pack.destroy(err) : pack.finalize()));
  artifact.on('error', (err) => pack.destroy(err));
  artifact.pipe(entry);
  const out = new PassThrough();
  pack.pipe(out);
  pack.on('error', (err) => out.destroy(err));
  return out;
}
