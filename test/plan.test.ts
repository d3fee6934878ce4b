import { realpathSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { BuildRecord } from '../src/builds/build-document.js';
import { loadConfig } from '../src/config.js';
import { TARGET_IDS } from '../src/contract/targets.js';
import { PROBE_MAIN_GO } from '../src/verify/load-probe.js';
import {
  artifactNameOf,
  DEPS_MARK,
  plan,
  PLUGIN_SCRIPT,
  PROBE_BINARY,
  PROBE_DIR,
  PROBE_KEPT_DIR,
  PROBE_KEPT_MARK,
} from '../src/worker/plan.js';
import { readProgram } from '../src/program-file.js';
import { CONTAINER_PATHS } from '../src/runtime/build-spec.js';
import { PREBUILT_PROBE } from '../src/verify/load-probe.js';
import { sampleRecord } from './support/fixtures.js';

const base = sampleRecord();
const config = loadConfig({});
const who = { workerId: 'w', instanceId: 'i' };

describe('plan', () => {
  it('picks each target image by the exact Go version and names the artifact the gotify way', () => {
    for (const t of TARGET_IDS) {
      const step = plan(base, t, config, who);
      expect(step.container.image).toBe(`plugforge/build:1.22.12-${t}`);
      expect(step.artifact).toEqual({ name: `hello-${t}.so`, path: `/work/out/hello-${t}.so` });
    }
  });

  it('sets the target toolchain environment from the target table', () => {
    const env = (t: (typeof TARGET_IDS)[number]) => plan(base, t, config, who).container.env.filter((e) => /^(GOARCH|GOARM|CC)=/.test(e));
    expect(env('linux-amd64')).toEqual(['GOARCH=amd64', 'CC=gcc']);
    expect(env('linux-arm-7')).toEqual(['GOARCH=arm', 'GOARM=7', 'CC=arm-linux-gnueabihf-gcc']);
    expect(env('linux-arm64')).toEqual(['GOARCH=arm64', 'CC=aarch64-linux-gnu-gcc']);
    expect(env('linux-386')).toEqual(['GOARCH=386', 'CC=i686-linux-gnu-gcc']);
  });

  it('builds vendored sources with -mod=vendor', () => {
    const spec = plan({ ...base, source: { ...base.source, vendored: true } }, 'linux-amd64', config, who).container;
    const goBuild = ['go', 'build', '-buildvcs=false', '-buildmode=plugin', '-mod=vendor', '-o', '/work/out/hello-linux-amd64.so', '.'];
    expect(spec.cmd).toEqual(['sh', '-c', PLUGIN_SCRIPT, 'build', ...goBuild]);
  });

  it('links a stripped build with -ldflags=-s -w, and only that one', () => {
    const cmd = (record: BuildRecord) => plan(record, 'linux-arm64', config, who).container.cmd;
    const stripped = ['go', 'build', '-buildvcs=false', '-buildmode=plugin', '-ldflags=-s -w', '-o', '/work/out/hello-linux-arm64.so', '.'];
    expect(cmd({ ...base, build: { trimpath: false, tags: [], strip: true } })).toEqual(['sh', '-c', PLUGIN_SCRIPT, 'build', ...stripped]);
    expect(cmd(base)).not.toContain('-ldflags=-s -w');
  });

  it('builds executables without -buildmode=plugin and without .so', () => {
    const spec = plan({ ...base, mode: 'exe' }, 'linux-386', config, who).container;
    expect(spec.cmd).toEqual(['go', 'build', '-buildvcs=false', '-o', '/work/out/hello-linux-386', '.']);
    expect(artifactNameOf('hello', 'linux-386', 'exe')).toBe('hello-linux-386');
  });

  it('uses the probe prebuilt in the image only where a build of its own would be the same: no host, no -trimpath, no tags', () => {
    const prebuilt = (record: BuildRecord) =>
      plan(record, 'linux-386', config, who).container.env.includes(`PLUGFORGE_PROBE_PREBUILT=${PREBUILT_PROBE}`);
    expect(prebuilt(base)).toBe(true);
    expect(prebuilt({ ...base, source: { ...base.source, vendored: true } })).toBe(true);
    expect(prebuilt({ ...base, build: { trimpath: true, tags: [] } })).toBe(false);
    expect(prebuilt({ ...base, build: { trimpath: false, tags: ['pro'] } })).toBe(false);
    const hostMatch = { from: 'goMod', go: '1.22.12', trimpath: false, tags: [], modules: 0, aligned: [], notes: [] };
    expect(prebuilt({ ...base, hostMatch: hostMatch as never })).toBe(false);
    expect(prebuilt({ ...base, mode: 'exe' })).toBe(false);
    // The script copies it when the image has it, and builds the probe otherwise.
    expect(PLUGIN_SCRIPT).toContain('[ -x "$PLUGFORGE_PROBE_PREBUILT" ]');
    expect(PLUGIN_SCRIPT.indexOf('PLUGFORGE_PROBE_PREBUILT')).toBeLessThan(PLUGIN_SCRIPT.indexOf('go build $PLUGFORGE_PROBE_FLAGS'));
  });

  it("builds the images' probe from the very file a build writes for its own", () => {
    // src/verify/probe/main.go is a link to the images' file, not a copy that could drift.
    const file = (p: string) => realpathSync(new URL(p, import.meta.url));
    expect(file('../src/verify/probe/main.go')).toBe(file('../images/linux-amd64/probe.go'));
    expect(PROBE_MAIN_GO).toMatch(/^\/\/ The plugforge loading probe[^]*\npackage main\n[^]*plugin\.Open\(os\.Args\[1\]\)/);
  });

  it("writes in the containers' scripts the paths and marks plan.ts names", () => {
    const worker = (file: string) => readProgram(new URL(`../src/worker/scripts/${file}`, import.meta.url));
    for (const mark of Object.values(DEPS_MARK)) expect(worker('download-modules-host.sh')).toContain(`echo '${mark}'`);
    for (const mark of [DEPS_MARK.cached, DEPS_MARK.download]) expect(worker('download-modules.sh')).toContain(`echo '${mark}'`);
    expect(PLUGIN_SCRIPT).toContain(`\ncd ${CONTAINER_PATHS.src}\n`);
    expect(PLUGIN_SCRIPT).toContain(`[ -s ${PROBE_DIR}/host-modules.txt ]`);
    expect(PLUGIN_SCRIPT).toContain(`go build $PLUGFORGE_PROBE_FLAGS -buildvcs=false -o ${PROBE_BINARY} ./${PROBE_DIR} ||`);
    expect(PLUGIN_SCRIPT).toContain(`kept=${PROBE_KEPT_DIR}/$(`);
    expect(PLUGIN_SCRIPT).toContain(`echo '${PROBE_KEPT_MARK}'`);
    // The header comment stays in the file: the container is given the script alone.
    expect(PLUGIN_SCRIPT.startsWith('"$@" || exit $?\n')).toBe(true);
  });

  it('keeps one build cache per tenant, Go release and target', () => {
    const a = plan(base, 'linux-amd64', config, who).container.cacheVolume;
    const b = plan({ ...base, tenant: 'acme' }, 'linux-amd64', config, who).container.cacheVolume;
    const c = plan({ ...base, go: '1.24.4' }, 'linux-amd64', config, who).container.cacheVolume;
    expect(new Set([a, b, c]).size).toBe(3);
    expect(a).toBe('plugforge-gocache-public-1.22.12-linux-amd64');
  });

  it('refuses a record whose name could leave the output directory', () => {
    expect(() => plan({ ...base, name: '../evil' }, 'linux-amd64', config, who)).toThrow();
  });

  it('takes the limits from the configuration', () => {
    const spec = plan(
      base,
      'linux-amd64',
      loadConfig({ PLUGFORGE_BUILD_TIMEOUT_SECONDS: '42', PLUGFORGE_MAX_ARTIFACT_MB: '3' }),
      who,
    ).container;
    expect(spec.limits.timeoutMs).toBe(42_000);
    expect(spec.limits.maxArtifactBytes).toBe(3 * 1024 * 1024);
  });
});
