import { PassThrough, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Router, type Response } from 'express';
import { writeTar, type TarWriter } from '../archive/tar-streams.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ArtifactInfo, BuildState } from '../builds/build-document.js';
import {
  bundleFileName,
  bundleManifest,
  MANIFEST_PATH,
  packCarriedFiles,
  parseManifest,
  readManifest,
} from '../bundle/mattermost-bundle.js';
import { isTargetId, ALL_TARGET_IDS } from '../contract/targets.js';
import type { ApiDeps } from './api-deps.js';
import { baseUrlOf, loadBuild } from './build-routes.js';
import { buildDocument } from '../builds/build-view.js';
import { builtArtifacts, noArtifactsError, type BuildEvidence, type EvidenceCache } from '../provenance/build-evidence.js';
import { PROVENANCE_FILE } from '../provenance/slsa-provenance.js';

export const SHA256_HEADER = 'X-Plugforge-Sha256';

export function artifactRoutes(deps: ApiDeps, evidenceOf: EvidenceCache): Router {
  const router = Router();

  router.get('/v1/builds/:id/artifacts.tar.gz', async (req, res) => {
    const state = await loadBuild(deps, req);
    const built = builtArtifacts(state);
    if (!built.length) throw noArtifactsError(state);
    // Made before the first byte goes out, so that a failure is still an error response.
    const evidence = await evidenceOf.of(state);
    res.status(200).set({
      'Content-Type': 'application/gzip',
      'Content-Disposition': `attachment; filename="${state.record.name}-${state.record.id}.tar.gz"`,
    });
    const mtime = new Date(state.finishedAt ?? state.record.createdAt);
    await writeTar(
      res,
      async (tarball) => {
        for (const { artifact } of built) await packBlob(tarball, deps, artifact, artifact.name, mtime);
        await packEvidence(tarball, evidence, '', mtime, true);
        const sums = built.map(({ artifact }) => `${artifact.sha256}  ${artifact.name}\n`).join('');
        await tarball.add({ name: 'SHA256SUMS', mode: 0o644, mtime }, sums);
        await tarball.add(
          { name: 'build.json', mode: 0o644, mtime },
          `${JSON.stringify(buildDocument(state, baseUrlOf(req, deps.config.publicUrl)), null, 2)}\n`,
        );
      },
      { gzip: true },
    );
  });

  // A Mattermost-style bundle of an exe build: plugin.json from the source with
  // server.executables filled in, the executables, and assets/, public/, webapp/dist/.
  router.get('/v1/builds/:id/bundle.tar.gz', async (req, res) => {
    const bundle = await bundleOf(deps, evidenceOf, await loadBuild(deps, req));
    res.status(200).set({ 'Content-Type': 'application/gzip', 'Content-Disposition': `attachment; filename="${bundle.fileName}"` });
    await bundle.write(res);
  });

  // Its detached OpenPGP signature, made with the installation's key (docs/provenance.md,
  // "Signed Mattermost bundles"): the bundle's bytes are the same at every download.
  router.get('/v1/builds/:id/bundle.tar.gz.sig', async (req, res) => {
    const state = await loadBuild(deps, req);
    const bundle = await bundleOf(deps, evidenceOf, state);
    const bytes = new PassThrough();
    const signedAt = new Date(state.finishedAt ?? state.record.createdAt);
    const [signature] = await Promise.all([evidenceOf.keys.openPgpSignOnce(bytes, signedAt), bundle.write(bytes)]);
    res
      .status(200)
      .set({
        'Content-Type': 'application/pgp-signature',
        'Content-Disposition': `attachment; filename="${bundle.fileName}.sig"`,
        'X-Plugforge-Key-Id': evidenceOf.keys.current.keyid,
      })
      .send(signature);
  });

  router.get('/v1/builds/:id/artifacts/:target', async (req, res) => {
    const state = await loadBuild(deps, req);
    const target = String(req.params.target);
    if (state.cells) return sendCell(res, deps, state, target, req.query.host);
    if (!isTargetId(target) || !state.record.targetIds.includes(target)) {
      throw new PlugforgeError(
        'unknown_target',
        `Build ${state.record.id} has no target "${target}"; its targets: ${state.record.targetIds.join(', ')} (all targets: ${ALL_TARGET_IDS.join(', ')}).`,
        { status: 404 },
      );
    }
    const ts = state.targets[target];
    // An artifact that built but failed verification stays downloadable (its header says so):
    // the author may want to inspect it, or knows better than the probe.
    const failedVerification = ts?.status === 'failed' && ts.verify?.status === 'failed';
    if (!ts?.artifact || (ts.status !== 'succeeded' && !failedVerification)) {
      throw new PlugforgeError(
        'artifact_not_ready',
        `Target ${target} of build ${state.record.id} has no artifact (status ${ts?.status ?? 'unknown'}${ts?.error ? `: ${ts.error.code}` : ''}).`,
        { status: 409 },
      );
    }
    await sendArtifact(res, deps, ts.artifact, ts.verify?.status);
  });

  return router;
}

/**
 * A build's Mattermost-style bundle, checked before any byte goes out (exe mode, artifacts,
 * a manifest): its file name and a writer of its bytes, which are the same every time.
 */
async function bundleOf(
  deps: ApiDeps,
  evidenceOf: EvidenceCache,
  state: BuildState,
): Promise<{ fileName: string; write: (out: Writable) => Promise<void> }> {
  const id = state.record.id;
  if (state.record.mode !== 'exe') {
    throw new PlugforgeError(
      'bundle_needs_exe',
      `Build ${id} built Go plugins (mode=plugin); a bundle holds server executables. Submit the build again with mode=exe.`,
      { status: 409 },
    );
  }
  const built = builtArtifacts(state);
  if (!built.length) throw noArtifactsError(state);
  const text = await readManifest((await deps.store.open(state.record.source.sha256)).stream);
  if (text === undefined) {
    throw new PlugforgeError(
      'manifest_missing',
      `The source of build ${id} has no ${MANIFEST_PATH} at its root: add the plugin's manifest (Mattermost's plugin.json) and submit again.`,
      { status: 409 },
    );
  }
  const manifest = parseManifest(text);
  const evidence = await evidenceOf.of(state);
  const mtime = new Date(state.finishedAt ?? state.record.createdAt);
  const dir = manifest.id;
  const executables = built.map(({ target, artifact }) => ({ target, name: artifact.name }));
  const write = (out: Writable) =>
    writeTar(
      out,
      async (tarball) => {
        await tarball.add(
          { name: `${dir}/${MANIFEST_PATH}`, mode: 0o644, mtime },
          `${JSON.stringify(bundleManifest(manifest, executables), null, 2)}\n`,
        );
        for (const { artifact } of built) await packBlob(tarball, deps, artifact, `${dir}/server/dist/${artifact.name}`, mtime);
        // Beside the executables, so that `plugforge verify <id>/server/dist` finds them; the bundle's root stays Mattermost's.
        await packEvidence(tarball, evidence, `${dir}/server/dist/`, mtime, false);
        await packCarriedFiles(tarball, dir, (await deps.store.open(state.record.source.sha256)).stream, mtime);
      },
      { gzip: true },
    );
  return { fileName: bundleFileName(manifest), write };
}

/** An artifact's bytes under its name, with its sha256 and verify result in the headers. */
async function sendArtifact(res: Response, deps: ApiDeps, artifact: ArtifactInfo, verify: string | undefined): Promise<void> {
  const blob = await deps.store.open(artifact.sha256);
  res.status(200).set({
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(blob.size),
    'Content-Disposition': `attachment; filename="${artifact.name}"`,
    [SHA256_HEADER]: artifact.sha256,
    ETag: `"${artifact.sha256}"`,
    'Cache-Control': 'private, max-age=31536000, immutable',
    'X-Plugforge-Verify': verify ?? 'skipped',
  });
  await pipeline(blob.stream, res);
}

/** A matrix build's cell (`?host=<name>@<version>`): its build's artifact under the release's name (docs/hosts.md, "A matrix"). */
async function sendCell(res: Response, deps: ApiDeps, state: BuildState, target: string, host: unknown): Promise<void> {
  const cell = state.cells!.find((c) => c.target === target && c.host === host);
  if (!cell) {
    throw new PlugforgeError(
      'unknown_cell',
      `Matrix build ${state.record.id} has no cell ${typeof host === 'string' ? host.slice(0, 80) : '(no ?host=)'} ${target.slice(0, 40)}: name a release with ?host=<name>@<version> (its releases: ${state.record.matrix!.hosts.join(', ')}; its targets: ${state.record.targetIds.join(', ')}).`,
      { status: 404 },
    );
  }
  const failedVerification = cell.status === 'failed' && cell.verify?.status === 'failed';
  if (!cell.artifact || (cell.status !== 'succeeded' && !failedVerification)) {
    throw new PlugforgeError(
      'artifact_not_ready',
      `Cell ${cell.host} ${cell.target} of matrix build ${state.record.id} has no artifact (status ${cell.status}${cell.error ? `: ${cell.error.code}` : ''}).`,
      { status: 409 },
    );
  }
  await sendArtifact(res, deps, cell.artifact, cell.verify?.status);
}

/** Each artifact's `.sig` (and, with sboms, its `.cdx.json`) and the build's provenance, under `prefix`. */
async function packEvidence(tarball: TarWriter, evidence: BuildEvidence, prefix: string, mtime: Date, sboms: boolean): Promise<void> {
  for (const a of evidence.artifacts) {
    await tarball.add({ name: `${prefix}${a.artifact.name}.sig`, mode: 0o644, mtime }, `${a.signature}\n`);
    if (sboms && a.sbom)
      await tarball.add({ name: `${prefix}${a.artifact.name}.cdx.json`, mode: 0o644, mtime }, `${JSON.stringify(a.sbom, null, 2)}\n`);
  }
  await tarball.add({ name: `${prefix}${PROVENANCE_FILE}`, mode: 0o644, mtime }, `${JSON.stringify(evidence.envelope)}\n`);
}

/** Streams a stored artifact into the archive as an executable entry. */
async function packBlob(tarball: TarWriter, deps: ApiDeps, artifact: ArtifactInfo, name: string, mtime: Date): Promise<void> {
  const blob = await deps.store.open(artifact.sha256);
  await tarball.addStream({ name, size: blob.size, mode: 0o755, mtime }, blob.stream);
}
