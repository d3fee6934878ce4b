import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PlugforgeError } from '../errors/plugforge-error.js';
import { LineSplitter } from '../lines.js';
import { ImageBuildFailure, type ImageEngine } from '../runtime/image-engine.js';
import { imageCheckLoader, loaderFailure, NO_PLUGIN, probeRan } from '../verify/probe-loaders.js';
import { PREBUILT_PROBE } from '../verify/load-probe.js';
import { TARGETS, TARGET_IDS, type ImageTargetId } from '../contract/targets.js';
import { formatGoVersion, goVersionMatches, parseGoVersion, requireGoVersion, type GoVersion } from './go-version.js';
import { completeVersions, listToolchainImages } from './image-catalog.js';
import { goSourceOfLabels, IMAGE_REVISION, imageTag, LABEL_GO_MODULE, LABEL_GO_SOURCE, LABEL_GO_VERSION, LABEL_REVISION, LABEL_TARGET, sourceImageTag } from './image-tags.js';
import { DEFAULT_GO_FLOOR, FLOOR_ABSENT_TOOLS, requireSafeGoRelease, type GoFloor } from './toolchain-floor.js';
import { chooseGoSource, FETCH_IMAGE, fetchToolchain, planToolchainFetch, type GoSource, type ToolchainFetchConfig } from './toolchain-module.js';
import { redactUrls } from '../redact-url.js';
import { readProgram } from '../program-file.js';

/** The base every builder Dockerfile starts FROM. */
export const BASE_IMAGE = 'debian:bookworm';

/** Prints the path of each command named in its arguments that an image has (scripts/find-tools.sh). */
const FIND_TOOLS_SCRIPT = readProgram(new URL('./scripts/find-tools.sh', import.meta.url));

/** The repository's images/ folder (the Dockerfiles), from src/images or dist/images alike. */
export const IMAGES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'images');

export interface BuildProgress {
  update(task: string, message: string): void;
  log(task: string, message: string): void;
  done(task: string, message: string): void;
  fail(task: string, message: string): void;
}

export interface ImageBuildRequest {
  /** "1.22" (the newest patch Debian has) or "1.22.12". */
  go: string;
  targets: readonly ImageTargetId[];
  repo: string;
  /** Rebuild images that exist. */
  force?: boolean;
  /** The repository's images/ folder (Dockerfiles and the base-image script). */
  imagesDir: string;
  /** Where Go comes from (docs/images.md, "Where Go comes from"); default auto. */
  source?: 'auto' | GoSource;
  /** The module proxy and checksum database of go-release builds; absent: no proxy. */
  toolchain?: ToolchainFetchConfig;
  /** Put on the containers an image build runs (a worker's, so its sweep finds what a crash left). */
  labels?: Record<string, string>;
  /** The toolchain floor (PLUGFORGE_GO_FLOOR); default: plugforge's own. */
  floor?: GoFloor;
  /**
   * Tag the images `<repo>:<go>-<source>-<target>` (sourceImageTag), beside the release's
   * usual images: an exact release and an explicit source only.
   */
  alongside?: boolean;
}

export interface BuiltImage {
  target: ImageTargetId;
  image: string;
  /** built now, or already present (a no-op unless forced). */
  outcome: 'built' | 'present';
  seconds: number;
}

export interface ImageBuildResult {
  go: string;
  /** Where the Go of these images came from (of the linux-amd64 image they all start from). */
  source: GoSource | 'unknown';
  images: BuiltImage[];
}

/**
 * Checks a request before any work: a Go release some source can give and not below the
 * toolchain floor, known targets; else a one-line error. Returns the source the
 * linux-amd64 image would take Go from.
 */
export function checkImageBuildRequest(
  go: string,
  targets: readonly string[],
  source: 'auto' | GoSource = 'auto',
  proxy = 'off',
  floor: GoFloor = DEFAULT_GO_FLOOR,
): GoSource {
  const v = parseGoVersion(go);
  if (!v) throw new PlugforgeError('unsupported_go_version', `Go "${go}" is not a Go release: name a minor (1.22) or an exact release (1.22.12).`);
  const chosen = chooseGoSource(v, source, proxy);
  requireSafeGoRelease(v, floor);
  const unknown = targets.filter((t) => !(TARGET_IDS as readonly string[]).includes(t));
  if (unknown.length || targets.length === 0) {
    throw new PlugforgeError('unknown_target', `Unknown target ${unknown.join(', ') || '(none given)'}; supported: ${TARGET_IDS.join(', ')}.`);
  }
  return chosen;
}

/**
 * Builds the builder images of one Go release for the given targets. linux-amd64 is built
 * first (the others start FROM it); the exact Go version is read from the built image,
 * never assumed, and only then does the image get its final tag and labels. Images that
 * exist are left alone unless `force`.
 */
export async function buildImages(engine: ImageEngine, request: ImageBuildRequest, progress: BuildProgress): Promise<ImageBuildResult> {
  const source = checkImageBuildRequest(request.go, request.targets, request.source, request.toolchain?.proxy, request.floor);
  const wanted = requireGoVersion(request.go);
  const targets = TARGET_IDS.filter((t) => request.targets.includes(t));
  const alongside = request.alongside === true;
  if (alongside && (wanted.patch === undefined || request.source === undefined || request.source === 'auto'))
    throw new PlugforgeError('invalid_option', 'Images beside a release\'s usual ones need an exact release (1.22.12) and a source (--source debian or go-release).');
  const tagOf = (version: string, target: ImageTargetId) =>
    alongside ? sourceImageTag(request.repo, version, target, source) : imageTag(request.repo, version, target);

  // Images of an older revision of our Dockerfiles count as absent: they are rebuilt.
  const listed = await listToolchainImages(engine, request.repo);
  const catalog = { ...listed, images: listed.images.filter((i) => (i.revision ?? 0) >= IMAGE_REVISION) };
  const current = async (tag: string) => Number((await engine.imageLabels(tag))?.[LABEL_REVISION] ?? 0) >= IMAGE_REVISION;
  const present = async (version: string, target: ImageTargetId) =>
    alongside ? current(tagOf(version, target)) : catalog.images.some((i) => i.go === version && i.target === target);
  const matching = alongside
    ? (await present(formatGoVersion(wanted), 'linux-amd64')) ? [formatGoVersion(wanted)] : []
    : completeVersions(catalog, ['linux-amd64']).filter((v) => goVersionMatches(wanted, requireGoVersion(v)));

  let exact = matching[0];
  const results: BuiltImage[] = [];

  if (!exact || request.force) {
    const started = Date.now();
    exact = await buildAmd64(engine, request, wanted, source, progress, tagOf);
    const seconds = (Date.now() - started) / 1000;
    progress.done('linux-amd64', `${tagOf(exact, 'linux-amd64')} built`);
    if (targets.includes('linux-amd64')) {
      results.push({ target: 'linux-amd64', image: tagOf(exact, 'linux-amd64'), outcome: 'built', seconds });
    }
  } else if (targets.includes('linux-amd64')) {
    progress.done('linux-amd64', `${tagOf(exact, 'linux-amd64')} is present (--force rebuilds it)`);
    results.push({ target: 'linux-amd64', image: tagOf(exact, 'linux-amd64'), outcome: 'present', seconds: 0 });
  }
  const version = exact;
  // The cross images start FROM linux-amd64: they say where its Go came from too.
  const amd64 = tagOf(version, 'linux-amd64');
  const amd64Labels = await engine.imageLabels(amd64);
  if (!amd64Labels) throw new PlugforgeError('image_missing', `${amd64} is not on the engine (removed while its Go release's images were being made).`);
  const inherited = Object.fromEntries([LABEL_GO_SOURCE, LABEL_GO_MODULE].flatMap((k) => (amd64Labels[k] ? [[k, amd64Labels[k]]] : [])));

  // The cross images only add a compiler each; they build side by side.
  const cross = targets.filter((t) => t !== 'linux-amd64');
  const built = await Promise.all(
    cross.map(async (target): Promise<BuiltImage> => {
      const tag = tagOf(version, target);
      if ((await present(version, target)) && !request.force) {
        progress.done(target, `${tag} is present (--force rebuilds it)`);
        return { target, image: tag, outcome: 'present', seconds: 0 };
      }
      const started = Date.now();
      await runImageBuild(engine, {
        contextDir: path.join(request.imagesDir, target),
        tag,
        buildargs: { GO_VERSION: alongside ? `${version}-${source}` : version, REPO: request.repo },
        labels: { [LABEL_GO_VERSION]: version, [LABEL_TARGET]: target, [LABEL_REVISION]: String(IMAGE_REVISION), ...inherited },
        task: target,
        progress,
      });
      await checkImage(engine, tag, target);
      progress.done(target, `${tag} built`);
      return { target, image: tag, outcome: 'built', seconds: (Date.now() - started) / 1000 };
    }),
  );
  results.push(...built);
  return { go: version, source: goSourceOfLabels(amd64Labels), images: results };
}

/** The Go toolchain module of `exact`, fetched and verified into an image of its own (src/images/toolchain-module.ts). */
async function fetchRelease(engine: ImageEngine, request: ImageBuildRequest, exact: string, progress: BuildProgress) {
  const config = request.toolchain;
  if (!config) throw new PlugforgeError('go_release_unavailable', `Go ${exact} comes from the Go toolchain module, and no module proxy is configured.`);
  const plan = await planToolchainFetch(config, exact);
  if (!(await engine.imageLabels(FETCH_IMAGE))) {
    progress.update('linux-amd64', `making ${FETCH_IMAGE}, the go command that fetches toolchains (once)`);
    await runImageBuild(engine, { contextDir: path.join(request.imagesDir, 'toolchain-fetch'), tag: FETCH_IMAGE, buildargs: {}, task: 'linux-amd64', progress });
  }
  progress.update('linux-amd64', `fetching Go ${exact} (golang.org/toolchain) from ${redactUrls(config.proxy)}, verified by the go command`);
  const fetched = await fetchToolchain(engine, plan, { config, baseImage: BASE_IMAGE, ...(request.labels ? { labels: request.labels } : {}) });
  progress.log('linux-amd64', `${fetched.module} ${fetched.sum} verified`);
  return fetched;
}

/**
 * The linux-amd64 image, which the others start FROM: built once under a staging tag to
 * read the exact Go release it holds, then tagged and labelled with it, and checked. With
 * Go from the toolchain module, its verified tree is the BASE. The staging images are
 * removed whatever happens.
 */
async function buildAmd64(
  engine: ImageEngine,
  request: ImageBuildRequest,
  wanted: GoVersion,
  source: GoSource,
  progress: BuildProgress,
  tagOf: (version: string, target: ImageTargetId) => string,
): Promise<string> {
  await ensureBaseImage(engine, request.imagesDir, progress);
  const staging = `${request.repo}:staging-${formatGoVersion(wanted)}-linux-amd64`;
  const from = source === 'go-release' ? await fetchRelease(engine, request, formatGoVersion(wanted), progress) : undefined;
  try {
    const buildargs = { GO_VERSION: formatGoVersion(wanted), GO_SOURCE: source, ...(from ? { BASE: from.image } : {}) };
    const sourceLabels = { [LABEL_GO_SOURCE]: source, ...(from ? { [LABEL_GO_MODULE]: `${from.module} ${from.sum}` } : {}) };
    const contextDir = path.join(request.imagesDir, 'linux-amd64');
    await runImageBuild(engine, { contextDir, tag: staging, buildargs, task: 'linux-amd64', progress });
    const exact = await readGoVersion(engine, staging);
    if (!goVersionMatches(wanted, requireGoVersion(exact))) {
      throw new PlugforgeError('go_version_mismatch', `Asked for Go ${formatGoVersion(wanted)}, the image installed ${exact}.`);
    }
    // A minor's source may install a release under the floor (a Debian package behind): never tagged.
    requireSafeGoRelease(exact, request.floor, `Go ${exact}, which the image installed for ${formatGoVersion(wanted)},`);
    // Same context and args: every step is cached; this only adds the labels of the exact version.
    const labels = { [LABEL_GO_VERSION]: exact, [LABEL_TARGET]: 'linux-amd64', [LABEL_REVISION]: String(IMAGE_REVISION), ...sourceLabels };
    await runImageBuild(engine, { contextDir, tag: tagOf(exact, 'linux-amd64'), buildargs, labels, task: 'linux-amd64', progress });
    await checkImage(engine, tagOf(exact, 'linux-amd64'), 'linux-amd64');
    return exact;
  } finally {
    await engine.removeImage(staging).catch(() => undefined);
    if (from) await engine.removeImage(from.image).catch(() => undefined);
  }
}

/** Makes sure the base image exists: pulled where a registry answers, else made with debootstrap. */
export async function ensureBaseImage(engine: ImageEngine, imagesDir: string, progress: BuildProgress): Promise<void> {
  if (await engine.imageLabels(BASE_IMAGE)) return;
  progress.update('base', `${BASE_IMAGE} is missing; trying docker pull`);
  if (await engine.pull(BASE_IMAGE, 20_000)) {
    progress.done('base', `${BASE_IMAGE} pulled`);
    return;
  }
  progress.update('base', `no registry reachable; making ${BASE_IMAGE} with debootstrap (about 30 s)`);
  const script = path.join(imagesDir, 'base', 'make-debian-base.sh');
  const [suite] = BASE_IMAGE.split(':').slice(1);
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sh', [script, suite ?? 'bookworm', BASE_IMAGE], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const lines = new LineSplitter<'out' | 'err'>();
    // setEncoding: a character split across two chunks is kept whole.
    const onLines = (source: 'out' | 'err') => (chunk: string) => {
      for (const line of lines.push(source, chunk).filter(Boolean)) {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        progress.update('base', line);
      }
    };
    child.stdout.setEncoding('utf8').on('data', onLines('out'));
    child.stderr.setEncoding('utf8').on('data', onLines('err'));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new PlugforgeError('base_image_failed', `Could not make ${BASE_IMAGE}: ${tail.slice(-3).join(' | ')}`));
    });
  });
  progress.done('base', `${BASE_IMAGE} made locally`);
}

interface ImageBuildOptions {
  contextDir: string;
  tag: string;
  buildargs: Record<string, string>;
  labels?: Record<string, string>;
  task: string;
  progress: BuildProgress;
}

/** `docker build`, reporting each step; a failure names the line our scripts marked with "plugforge:". */
async function runImageBuild(engine: ImageEngine, o: ImageBuildOptions): Promise<void> {
  const tail: string[] = [];
  const marked: string[] = [];
  const onLine = (raw: string) => {
    const line = raw.trim();
    if (!line) return;
    tail.push(line);
    if (tail.length > 40) tail.shift();
    if (line.startsWith('plugforge:')) marked.push(line.slice('plugforge:'.length).trim());
    if (/^Step \d+\/\d+ :/.test(line)) o.progress.update(o.task, line.slice(0, 160));
    else if (/^(Get:|Unpacking|Setting up) /.test(line)) o.progress.update(o.task, line.slice(0, 160));
  };
  try {
    await engine.buildImage({ contextDir: o.contextDir, tag: o.tag, buildArgs: o.buildargs, ...(o.labels ? { labels: o.labels } : {}) }, onLine);
  } catch (err) {
    if (!(err instanceof ImageBuildFailure)) throw err;
    const reason = marked.at(-1) ?? tail.slice(-3).join(' | ');
    throw new PlugforgeError('image_build_failed', `Building ${o.tag} failed: ${reason || err.message}`, { details: { docker: err.message } });
  }
}

async function readGoVersion(engine: ImageEngine, image: string): Promise<string> {
  const res = await engine.runCommand(image, ['go', 'env', 'GOVERSION']);
  const version = res.stdout.trim().replace(/^go/, '');
  if (res.exitCode !== 0 || parseGoVersion(version)?.patch === undefined) {
    throw new PlugforgeError('image_check_failed', `go env GOVERSION in ${image} gave "${res.stdout.trim()}" ${res.stderr.trim()}`);
  }
  return version;
}

/** Asks the built image what it will do: GOOS/GOARCH/GOARM, CC and GOROOT must be the target's. */
async function checkImage(engine: ImageEngine, image: string, target: ImageTargetId): Promise<void> {
  const t = TARGETS[target];
  const goEnv = ['GOOS', 'GOARCH', 'GOARM', 'CC', 'GOROOT', 'CGO_ENABLED', 'GOTOOLCHAIN', 'GO386', 'GOAMD64'];
  const res = await engine.runCommand(image, ['go', 'env', ...goEnv]);
  const [goos, goarch, goarm, cc, goroot, cgo, toolchain, go386, goamd64] = res.stdout.split('\n').map((l) => l.trim());
  // What enters the package hashes is the image's default as it is the builds' default
  // (plan.ts archEnvOf), so a host built here with a plain go build loads the plugins.
  const expected = {
    goos: t.goos,
    goarch: t.goarch,
    cc: t.cc,
    goroot: '/usr/local/go',
    cgo: '1',
    toolchain: 'local',
    ...(t.goarch === '386' ? { go386: 'sse2' } : {}),
    ...(t.goarch === 'amd64' ? { goamd64: 'v1' } : {}),
  };
  const actual = { goos, goarch, cc, goroot, cgo, toolchain, go386, goamd64 };
  const wrong = Object.entries(expected).filter(([k, v]) => actual[k as keyof typeof actual] !== v);
  if (t.goarm && goarm !== t.goarm) wrong.push(['goarm', t.goarm]);
  // The prebuilt probe must run under the target's emulator: a real Go program of the
  // target's architecture, so an emulator that crashes on Go is caught here. qemu for 386
  // too, whatever this kernel could run natively: the check must not depend on the machine.
  const loader = imageCheckLoader(target);
  const ran = await engine.runCommand(image, [...loader.argv, PREBUILT_PROBE, NO_PLUGIN]);
  if (!probeRan(ran)) wrong.push(['the loading probe', `runnable ${loader.how} (${loaderFailure(loader, ran)})`]);
  // The toolchain floor counts no advisory that needs one of these (docs/decisions.md, "The
  // toolchain floor"): an image that carries one would need a higher floor.
  const tools = await engine.runCommand(image, ['sh', '-c', FIND_TOOLS_SCRIPT, 'find-tools', ...FLOOR_ABSENT_TOOLS]);
  const found = tools.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (found.length) wrong.push([FLOOR_ABSENT_TOOLS.join(', '), `absent (found ${found.join(', ')})`]);
  if (res.exitCode !== 0 || wrong.length) {
    const said = `${res.stdout.trim().replace(/\n/g, ' ')} ${res.stderr.trim()}`;
    const should = wrong.map(([k, v]) => `${k} should be ${v}`).join(', ');
    throw new PlugforgeError('image_check_failed', `${image} is not set up for ${target}: ${should} (go env said: ${said})`);
  }
}
