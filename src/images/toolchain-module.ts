import type { GoSource } from '../contract/toolchain-image.js';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ExitedContainer, ImageEngine } from '../runtime/image-engine.js';
import { compareGoVersions, DEBIAN_GO_RELEASES, formatGoVersion, minorOf, type GoVersion } from './go-version.js';
import { redactUrls } from '../redact-url.js';
import type { GoProxySettings } from '../go-proxy.js';

/**
 * Exact Go releases from the Go toolchain module (docs/images.md, "Where Go comes from"). Go
 * publishes every release since 1.21.0 as the module golang.org/toolchain, version
 * v0.0.1-go<release>.<goos>-<goarch>: the bits of the official release, served by any module
 * proxy and covered by the checksum database (the mechanism behind GOTOOLCHAIN). A
 * container of the fetch image (images/toolchain-fetch) lets the go command download and
 * verify it; the verified tree becomes /usr/local/go of the linux-amd64 builder image.
 */
export const TOOLCHAIN_MODULE = 'golang.org/toolchain';
/** The image whose go command fetches toolchain modules (images/toolchain-fetch). */
export const FETCH_IMAGE = 'plugforge/toolchain-fetch:1';
/** Where a builder image's Go came from (src/contract/toolchain-image.ts). */
export type { GoSource };
export const GO_SOURCES = ['debian', 'go-release'] as const;

const FIRST_TOOLCHAIN_MODULE: GoVersion = { major: 1, minor: 21, patch: 0 };

/** What an image build needs to take Go from a module proxy; configuration only (PLUGFORGE_GOPROXY …). */
/** The module proxy settings (one section of the configuration) and the toolchain's own pins. */
export interface ToolchainFetchConfig extends GoProxySettings {
  /** A go.sum-format file of pinned toolchain hashes (PLUGFORGE_TOOLCHAIN_SUMS). */
  sumsFile?: string;
}

export interface FetchedToolchain {
  /** An image holding only the verified tree at /usr/local/go, the BASE of the linux-amd64 build. */
  image: string;
  /** "golang.org/toolchain@v0.0.1-go1.22.5.linux-amd64". */
  module: string;
  /** Its h1: hash, as go.sum and the checksum database state it. */
  sum: string;
}

export function toolchainModuleVersion(exact: string): string {
  return `v0.0.1-go${exact}.linux-amd64`;
}

/**
 * Which source an image build of `wanted` takes Go from. "auto": a minor, or the exact
 * release Debian packages, from Debian (no proxy needed); any other exact release from the
 * toolchain module. Asking for what no source can give fails here, before any work, with
 * the ways to get it.
 */
export function chooseGoSource(wanted: GoVersion, asked: 'auto' | GoSource, proxy: string): GoSource {
  const minor = minorOf(wanted) as keyof typeof DEBIAN_GO_RELEASES;
  const debian: string | undefined = DEBIAN_GO_RELEASES[minor];
  const exact = formatGoVersion(wanted);
  const debianList = `Debian packages Go ${Object.keys(DEBIAN_GO_RELEASES).join(', ')} for these images`;
  if (!debian && compareGoVersions({ ...wanted, patch: wanted.patch ?? 0 }, FIRST_TOOLCHAIN_MODULE) < 0) {
    throw new PlugforgeError('unsupported_go_version', `Go ${exact} is not supported: ${debianList}, and the Go toolchain module starts at 1.21.0.`);
  }
  if (asked === 'debian' || (asked === 'auto' && debian && (wanted.patch === undefined || debian === exact))) {
    if (!debian) throw new PlugforgeError('unsupported_go_version', `Go ${minor} is not in Debian: ${debianList}; name an exact release such as ${minor}.0 to take it from the Go toolchain module (--source go-release).`);
    return 'debian';
  }
  if (wanted.patch === undefined) {
    throw new PlugforgeError('exact_release_required', `Go ${exact} is not in Debian (${debianList}); from the Go toolchain module, name an exact release such as ${exact}.0.`);
  }
  if (proxy === 'off') {
    const debianHas = debian ? `Debian packages Go ${minor} only as ${debian}` : `Debian packages no Go ${minor} for these images`;
    throw new PlugforgeError(
      'go_release_unavailable',
      `Go ${exact} cannot be had here: ${debianHas}, and no module proxy is configured (PLUGFORGE_GOPROXY=off). Either set PLUGFORGE_GOPROXY to a Go module proxy that serves ${TOOLCHAIN_MODULE} (https://proxy.golang.org, your own, or a file:/// mirror), ` +
        `or build the linux-amd64 image from the official tarball: docker build --build-arg GO_SOURCE=official --build-arg GO_VERSION=${exact} --build-arg GO_SHA256=<from go.dev/dl> images/linux-amd64 (docs/images.md, "Where Go comes from").`,
    );
  }
  return 'go-release';
}

/** The go.sum lines of `module` (both its zip and /go.mod lines) pinned in the operator's file. */
export async function pinnedSums(sumsFile: string | undefined, version: string): Promise<string[]> {
  if (!sumsFile) return [];
  let text: string;
  try {
    text = await readFile(sumsFile, 'utf8');
  } catch (err) {
    throw new PlugforgeError('toolchain_sums_unreadable', `PLUGFORGE_TOOLCHAIN_SUMS names ${sumsFile}, which cannot be read: ${(err as Error).message}`);
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const bad = lines.find((l) => !/^\S+ \S+ h1:[A-Za-z0-9+/]{43}=$/.test(l));
  if (bad) throw new PlugforgeError('toolchain_sums_invalid', `${sumsFile}: "${bad}" is not a go.sum line (module version h1:hash).`);
  return lines.filter((l) => l.startsWith(`${TOOLCHAIN_MODULE} ${version} `) || l.startsWith(`${TOOLCHAIN_MODULE} ${version}/go.mod `));
}

interface DownloadAnswer {
  Error?: string;
  Sum?: string;
}

/** What a fetch of one release will check it against: the pinned go.sum lines, and the checksum database unless off. */
export interface ToolchainFetchPlan {
  exact: string;
  module: string;
  pinned: string[];
}

/**
 * Plans the fetch of release `exact`, refusing before any work to install what nothing
 * would verify: with the checksum database off, the zip's go.sum line must be pinned
 * (`toolchain_unverified`).
 */
export async function planToolchainFetch(config: ToolchainFetchConfig, exact: string): Promise<ToolchainFetchPlan> {
  const version = toolchainModuleVersion(exact);
  const module = `${TOOLCHAIN_MODULE}@${version}`;
  const pinned = await pinnedSums(config.sumsFile, version);
  if (config.sumdb === 'off' && !pinned.some((l) => !l.includes('/go.mod '))) {
    throw new PlugforgeError(
      'toolchain_unverified',
      `${module} would be installed unverified: the checksum database is off (PLUGFORGE_GOSUMDB=off) and PLUGFORGE_TOOLCHAIN_SUMS pins no hash for it. Turn the checksum database on, or pin its go.sum line ("${TOOLCHAIN_MODULE} ${version} h1:…").`,
    );
  }
  return { exact, module, pinned };
}

/**
 * Downloads the planned release of the toolchain module in a container of the fetch image
 * and commits its verified tree, at /usr/local/go of `baseImage`, as an image of its own.
 * The go command checks the zip against the pinned go.sum lines and, unless GOSUMDB=off,
 * the checksum database.
 */
export async function fetchToolchain(
  engine: ImageEngine,
  plan: ToolchainFetchPlan,
  options: { config: ToolchainFetchConfig; baseImage: string; labels?: Record<string, string> },
): Promise<FetchedToolchain> {
  const { config } = options;
  const { exact, module, pinned } = plan;
  const fileProxy = config.proxy.startsWith('file://') ? config.proxy.slice('file://'.length) : undefined;
  let image = '';
  const res = await engine.runCommand(FETCH_IMAGE, ['sh', '/usr/local/lib/plugforge/fetch-toolchain.sh', module], {
    env: [
      `GOPROXY=${fileProxy ? 'file:///proxy' : config.proxy}`,
      `GOSUMDB=${config.sumdb}`,
      `GONOSUMDB=${config.noSumDb}`,
      `GOPRIVATE=${config.private}`,
      `GOINSECURE=${config.insecure}`,
      `PLUGFORGE_GO_SUM=${pinned.join('\n')}`,
      'TMPDIR=/out',
    ],
    network: fileProxy ? 'none' : 'bridge',
    ...(fileProxy ? { binds: [`${fileProxy}:/proxy:ro`] } : {}),
    writableRoot: true,
    memoryBytes: 1024 * 1024 * 1024,
    timeoutMs: 15 * 60_000,
    ...(options.labels ? { labels: options.labels } : {}),
    afterExit: async (fetcher, result) => {
      if (result.exitCode === 0) image = await commitTree(engine, fetcher, options.baseImage, exact, options.labels);
    },
  });
  const answer = parseAnswer(res.stdout);
  if (res.exitCode !== 0 || !answer.Sum) throw fetchError(module, config, `${answer.Error ?? ''}\n${res.stderr}`);
  return { image, module, sum: answer.Sum };
}

/** Copies the fetched tree to /usr/local/go of a new container of `baseImage` and commits it (the tree is in one layer, once). */
async function commitTree(engine: ImageEngine, fetcher: ExitedContainer, baseImage: string, exact: string, labels?: Record<string, string>): Promise<string> {
  // One staging tag per fetch: image builds of one release for two repositories may run at once.
  const as = { repo: 'plugforge/toolchain-staging', tag: `${exact}-${randomBytes(4).toString('hex')}`, comment: `plugforge: ${TOOLCHAIN_MODULE}@${toolchainModuleVersion(exact)} at /usr/local/go` };
  return engine.commitCopy({ container: fetcher, path: '/out/go' }, { image: baseImage, dir: '/usr/local', ...(labels ? { labels } : {}) }, as);
}

function parseAnswer(stdout: string): DownloadAnswer {
  const start = stdout.indexOf('{');
  const end = stdout.lastIndexOf('}');
  if (start < 0 || end < start) return {};
  try {
    return JSON.parse(stdout.slice(start, end + 1)) as DownloadAnswer;
  } catch {
    return {};
  }
}

/** The go command's refusal as one of our codes, naming the module (and both hashes on a mismatch). */
function fetchError(module: string, config: ToolchainFetchConfig, output: string): PlugforgeError {
  // The proxy's user info stays out of the error: it reaches the build's log and document.
  const text = redactUrls(output);
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const where = `the module proxy ${redactUrls(config.proxy)}`;
  if (/checksum mismatch/.test(text)) {
    const downloaded = /downloaded:\s*(h1:\S+)/.exec(text)?.[1] ?? '?';
    const stated = /^\s*([^\s:]+):\s*(h1:\S+)/m.exec(text.replace(/downloaded:\s*h1:\S+/, ''));
    const by = stated?.[1] === 'go.sum' ? 'the pinned go.sum line (PLUGFORGE_TOOLCHAIN_SUMS)' : `the checksum database ${stated?.[1] ?? config.sumdb}`;
    return new PlugforgeError(
      'toolchain_checksum_mismatch',
      `${module} from ${where} hashes to ${downloaded}, but ${by} says ${stated?.[2] ?? '?'}: refused, nothing installed. The proxy serves other bits than Go published; do not use it for toolchains.`,
      { details: { module, downloaded, expected: stated?.[2] ?? null } },
    );
  }
  if (/404|410|not found|unknown revision|no matching versions|invalid version/i.test(text)) {
    return new PlugforgeError('go_release_not_found', `${where} has no ${module}: is it a Go release? (${lines.at(-1) ?? ''})`);
  }
  if (/dial tcp|no such host|connection refused|i\/o timeout|TLS handshake|network is unreachable|server misbehaving/i.test(text)) {
    return new PlugforgeError(
      'toolchain_proxy_unreachable',
      `Could not reach ${where} or the checksum database ${config.sumdb} for ${module} (${lines.at(-1) ?? ''}). Point PLUGFORGE_GOPROXY at a proxy this engine's containers reach (or a file:/// mirror with the checksum database's data, or pin the go.sum line with PLUGFORGE_GOSUMDB=off), or build from Debian's release of that minor.`,
    );
  }
  return new PlugforgeError('toolchain_fetch_failed', `Fetching ${module} from ${where} failed: ${lines.slice(-3).join(' | ')}`);
}
