import { Router, type Request } from 'express';
import type { DsseEnvelopeBody, KeysBody } from '../contract/api-schemas.js';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { endedArtifacts, type ArtifactEvidence, type EvidenceCache } from '../provenance/build-evidence.js';
import { SBOM_MEDIA_TYPE } from '../provenance/cyclonedx-sbom.js';
import type { SigningKeys } from '../provenance/signing-keys.js';
import { armoredPublicKey, openPgpFingerprint } from '../provenance/openpgp.js';
import { ALL_TARGET_IDS, type TargetId } from '../contract/targets.js';
import type { ApiDeps } from './api-deps.js';
import { loadBuild } from './build-routes.js';

/**
 * GET /v1/keys: the installation's public keys. Open like the web page: a public key is
 * no secret, and whoever was handed an artifact must be able to check it without a token.
 */
export function keyRoutes(keys: SigningKeys): Router {
  const router = Router();
  router.get('/v1/keys', (_req, res) => {
    res.json({ keys: keys.list() } satisfies KeysBody);
  });
  // The current key as an OpenPGP public key, for what takes only those (Mattermost's plugin
  // signatures: docs/provenance.md, "Signed Mattermost bundles").
  router.get('/v1/keys/openpgp', (_req, res) => {
    const key = keys.openPgp();
    res
      .status(200)
      .set({
        'Content-Type': 'application/pgp-keys',
        'Content-Disposition': `attachment; filename="plugforge-${keys.current.keyid.slice(0, 16)}.asc"`,
        'X-Plugforge-OpenPGP-Fingerprint': openPgpFingerprint(key),
      })
      .send(armoredPublicKey(key));
  });
  return router;
}

/**
 * A build's provenance (a DSSE envelope of its SLSA v1 statement) and each artifact's SBOM
 * and signature (docs/provenance.md, "Verify what you downloaded"); artifacts.tar.gz carries the same.
 */
export function provenanceRoutes(deps: ApiDeps, evidenceOf: EvidenceCache): Router {
  const { keys } = evidenceOf;
  const router = Router();

  router.get('/v1/builds/:id/provenance', async (req, res) => {
    const state = await loadBuild(deps, req);
    const { envelope } = await evidenceOf.of(state);
    res
      .set('Content-Disposition', `inline; filename="${state.record.name}-${state.record.id}.intoto.json"`)
      .json(envelope satisfies DsseEnvelopeBody);
  });

  router.get('/v1/builds/:id/artifacts/:target/sbom', async (req, res) => {
    const evidence = await oneArtifact(deps, evidenceOf, req);
    if (!evidence.sbom) {
      throw new PlugforgeError('no_build_info', `${evidence.artifact.name} carries no Go build info to make an SBOM from.`, {
        status: 409,
      });
    }
    res
      .status(200)
      .type(SBOM_MEDIA_TYPE)
      .set('Content-Disposition', `attachment; filename="${evidence.artifact.name}.cdx.json"`)
      .send(`${JSON.stringify(evidence.sbom, null, 2)}\n`);
  });

  router.get('/v1/builds/:id/artifacts/:target/signature', async (req, res) => {
    const evidence = await oneArtifact(deps, evidenceOf, req);
    res
      .status(200)
      .type('text/plain')
      .set({ 'Content-Disposition': `attachment; filename="${evidence.artifact.name}.sig"`, 'X-Plugforge-Key-Id': keys.current.keyid })
      .send(`${evidence.signature}\n`);
  });

  return router;
}

/** The evidence of the build's `:target`: 404 for a target the build has not, 409 for one that did not build. */
async function oneArtifact(deps: ApiDeps, evidenceOf: EvidenceCache, req: Request): Promise<ArtifactEvidence> {
  const state = await loadBuild(deps, req);
  const target = String(req.params.target);
  if (!(state.record.targetIds as string[]).includes(target)) {
    throw new PlugforgeError(
      'unknown_target',
      `Build ${state.record.id} has no target "${target}"; its targets: ${state.record.targetIds.join(', ')} (all targets: ${ALL_TARGET_IDS.join(', ')}).`,
      { status: 404 },
    );
  }
  const built = endedArtifacts(state).find((b) => b.target === target);
  if (!built) {
    const ts = state.targets[target as TargetId];
    throw new PlugforgeError(
      'artifact_not_ready',
      `Target ${target} of build ${state.record.id} did not build an artifact that passed (status ${ts?.status ?? 'unknown'}).`,
      { status: 409 },
    );
  }
  const all = await evidenceOf.of(state);
  return all.artifacts.find((a) => a.target === built.target)!;
}
