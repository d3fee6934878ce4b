import type { Readable } from 'node:stream';
import { readBody, readTar, tarStream } from '../archive/tar-streams.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { PROBE_MAIN_GO } from '../verify/load-probe.js';
import { BUILD_UID } from '../runtime/build-spec.js';
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
  const owner = { uid: BUILD_UID, gid: BUILD_UID, mtime: new Date(946684800000) };
  const goSumExtra = overrides.goSumAdded?.length ? `${overrides.goSumAdded.join('\n')}\n` : '';
  return tarStream(async (tarball) => {
    const file = (name: string, text: string) => tarball.add({ name, mode: 0o644, ...owner }, text);
    for (const dir of ['src', 'out', 'tmp', 'home']) await tarball.add({ name: `${dir}/`, type: 'directory', mode: 0o755, ...owner });
    let sawGoSum = false;
    await readTar(source, async (header, body) => {
      const name = header.name.replace(/\/$/, '');
      // The probe's directory is plugforge's: whatever the upload had there is left out.
      if (name === PROBE_DIR || name.startsWith(`${PROBE_DIR}/`)) return;
      if (name === 'go.mod' && overrides.goMod !== undefined) return file('src/go.mod', overrides.goMod);
      if (name === 'go.sum' && goSumExtra) {
        sawGoSum = true;
        const text = (await readBody(body, MAX_GO_SUM_BYTES, goSumTooLarge)).toString('utf8');
        return file('src/go.sum', `${text}${text && !text.endsWith('\n') ? '\n' : ''}${goSumExtra}`);
      }
      if (header.type === 'directory') return tarball.add({ ...header, name: `src/${header.name}`, ...owner });
      return tarball.addStream({ ...header, name: `src/${header.name}`, ...owner }, body);
    });
    if (goSumExtra && !sawGoSum) await file('src/go.sum', goSumExtra);
    await tarball.add({ name: `src/${PROBE_DIR}/`, type: 'directory', mode: 0o755, ...owner });
    await file(`src/${PROBE_DIR}/main.go`, PROBE_MAIN_GO);
    await file(`src/${PROBE_DIR}/imports.go`, 'package main\n');
    await file(`src/${PROBE_DIR}/host-modules.txt`, (overrides.hostModules ?? []).map((m) => `${m}\n`).join(''));
  });
}

/** The source's go.sum is read into memory to append to it; the archive caps keep it far below this. */
const MAX_GO_SUM_BYTES = 64 * 1024 * 1024;
const goSumTooLarge = () => new PlugforgeError('archive_file_too_large', `go.sum is larger than ${MAX_GO_SUM_BYTES / 1048576} MiB.`);
