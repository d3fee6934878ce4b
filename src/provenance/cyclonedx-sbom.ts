import { createHash } from 'node:crypto';
import type { ArtifactInfo, BuildMode } from '../builds/build-document.js';
import { PACKAGE_VERSION } from '../revision.js';
import type { TargetId } from '../contract/targets.js';
import type { GoBuildInfo, GoModule } from '../verify/go-buildinfo.js';

/**
 * An artifact's SBOM as CycloneDX 1.5 JSON (https://cyclonedx.org/docs/1.5/json/), from the
 * Go build info the linker wrote into the artifact itself: what `go version -m` prints.
 * The artifact is metadata.component (its sha256 as a SHA-256 hash); the main module, the
 * standard library of the exact Go release and every module linked are components. A
 * module's go.sum hash (h1:, a hash of its file tree, not of a single file) is the property
 * plugforge:go:h1; build settings (-trimpath, -tags, GOARCH, …) are properties
 * plugforge:go:build:<key> of the artifact. Build info records which modules are linked,
 * not who requires whom: the main module is given as depending on all of them.
 */
export interface CycloneDxComponent {
  type: 'application' | 'library' | 'framework';
  'bom-ref': string;
  name: string;
  version?: string;
  purl?: string;
  hashes?: { alg: 'SHA-256'; content: string }[];
  properties?: { name: string; value: string }[];
}

export interface CycloneDxBom {
  bomFormat: 'CycloneDX';
  specVersion: '1.5';
  serialNumber: string;
  version: 1;
  metadata: { timestamp?: string; tools: { components: CycloneDxComponent[] }; component: CycloneDxComponent };
  components: CycloneDxComponent[];
  dependencies: { ref: string; dependsOn: string[] }[];
}

export interface SbomInput {
  buildId: string;
  target: TargetId;
  mode: BuildMode;
  artifact: ArtifactInfo;
  buildInfo: GoBuildInfo;
  /** When the build ended: the SBOM's timestamp, so that the same build gives the same document. */
  finishedAt?: string;
}

export const SBOM_MEDIA_TYPE = 'application/vnd.cyclonedx+json';

export function cyclonedxSbom(input: SbomInput): CycloneDxBom {
  const info = input.buildInfo;
  const main = info.main ? moduleComponent(info.main) : undefined;
  const stdlib: CycloneDxComponent = {
    type: 'library',
    'bom-ref': `pkg:golang/stdlib@${info.goVersion}`,
    name: 'stdlib',
    version: info.goVersion,
    purl: `pkg:golang/stdlib@${info.goVersion}`,
  };
  const deps = info.deps.map(moduleComponent);
  const artifactRef = `artifact:${input.artifact.name}`;
  const settings = Object.entries(info.settings).map(([key, value]) => ({ name: `plugforge:go:build:${key}`, value }));
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.5',
    serialNumber: `urn:uuid:${uuidOf(`${input.buildId}/${input.target}/${input.artifact.sha256}`)}`,
    version: 1,
    metadata: {
      ...(input.finishedAt ? { timestamp: input.finishedAt } : {}),
      tools: { components: [{ type: 'application', 'bom-ref': 'plugforge', name: 'plugforge', version: PACKAGE_VERSION }] },
      component: {
        type: input.mode === 'exe' ? 'application' : 'library',
        'bom-ref': artifactRef,
        name: input.artifact.name,
        ...(info.main ? { version: info.main.version } : {}),
        hashes: [{ alg: 'SHA-256', content: input.artifact.sha256 }],
        properties: [
          { name: 'plugforge:target', value: input.target },
          { name: 'plugforge:build', value: input.buildId },
          { name: 'plugforge:go:version', value: info.goVersion },
          ...(info.path ? [{ name: 'plugforge:go:path', value: info.path }] : []),
          ...settings,
        ],
      },
    },
    components: [...(main ? [main] : []), stdlib, ...deps],
    dependencies: [
      { ref: artifactRef, dependsOn: [...(main ? [main['bom-ref']] : []), stdlib['bom-ref']] },
      ...(main ? [{ ref: main['bom-ref'], dependsOn: deps.map((d) => d['bom-ref']) }] : []),
      ...deps.map((d) => ({ ref: d['bom-ref'], dependsOn: [] })),
    ],
  };
}

/** A module as linked: the replacement's path and version when a `replace` applied, the original named in a property. */
function moduleComponent(m: GoModule): CycloneDxComponent {
  const used = m.replace ?? m;
  const purl = `pkg:golang/${used.path}@${used.version.replaceAll('(', '%28').replaceAll(')', '%29')}`;
  const properties = [
    ...(used.sum ? [{ name: 'plugforge:go:h1', value: used.sum }] : []),
    ...(m.replace ? [{ name: 'plugforge:go:replaces', value: `${m.path}@${m.version}` }] : []),
  ];
  return { type: 'library', 'bom-ref': purl, name: used.path, version: used.version, purl, ...(properties.length ? { properties } : {}) };
}

/** A stable UUID (RFC 9562 version 8, from sha256) so that an SBOM fetched twice is the same document. */
function uuidOf(text: string): string {
  const b = createHash('sha256').update(text).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
