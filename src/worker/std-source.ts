import { randomBytes } from 'node:crypto';
import { toolchainFetchOf } from '../config.js';
import { TARGETS, type TargetId } from '../contract/targets.js';
import { buildImages, IMAGES_DIR } from '../images/image-builder.js';
import { DEBIAN_GO_RELEASES, minorOf, requireGoVersion } from '../images/go-version.js';
import { goSourceOfLabels, IMAGE_REVISION, LABEL_REVISION, sourceImageTag } from '../images/image-tags.js';
import { stdDiffering, stdFingerprints, stdOnly, type StdSettings } from '../images/std-fingerprints.js';
import type { GoSource } from '../images/toolchain-module.js';
import { withScripts } from '../redis/redis-scripts.js';
import { LABELS } from '../runtime/build-spec.js';
import type { ImageEngine } from '../runtime/image-engine.js';
import type { PackageFingerprints } from '../verify/package-fingerprints.js';
import type { JobContext } from './job-context.js';
import type { StdSourceCheck, StdSourceChoice } from '../builds/build-document.js';

/** How long a target waits on another job's image build of the other source. */
const WAIT_MS = 45 * 60_000;
const LOCK_MS = 5 * 60_000;

/**
 * The image a plugin target builds with, for a host binary: the release's usual image when
 * its standard library has the host's fingerprints, else the release's image from the other
 * source (Debian's or the Go toolchain module's) when that one's has them, made on first
 * use like images on demand. With neither, the usual image, and each source's differing
 * packages said. Undefined when nothing can be compared (no engine, no std packages).
 */
export async function chooseStdSource(
  ctx: JobContext,
  a: { go: string; target: TargetId; image: string; settings: StdSettings; host: PackageFingerprints; jobId: string },
  appendLog: (text: string) => Promise<void>,
): Promise<StdSourceChoice | undefined> {
  const engine = ctx.deps.imageEngine;
  const usual = ctx.images().find((i) => i.image === a.image);
  if (!engine || !usual || !Object.keys(stdOnly(a.host)).length) return undefined;
  const labels = { [LABELS.worker]: ctx.workerId, [LABELS.instance]: ctx.instanceId, [LABELS.job]: a.jobId };
  const compare = async (source: GoSource | 'unknown', image: { tag: string; id: string }): Promise<StdSourceCheck> => {
    try {
      const table = await stdFingerprints(engine, ctx.deps.connection, image, a.settings, labels);
      return { source, image: image.tag, differing: stdDiffering(a.host, table) };
    } catch (err) {
      return { source, image: image.tag, differing: [], error: (err as Error).message };
    }
  };
  const first = await compare(usual.source ?? 'unknown', { tag: usual.image, id: usual.id });
  if (first.error) {
    await appendLog(`[plugforge] the standard library of ${usual.image} could not be compared with the host's: ${first.error}\n`);
    return undefined;
  }
  const checked = [first];
  if (!first.differing.length) return { used: first.source, image: usual.image, matched: true, checked };

  const other = otherSource(a.go, first.source);
  if (other) {
    await appendLog(
      `[plugforge] the host's standard library differs from ${first.source === 'unknown' ? 'this image' : first.source === 'debian' ? "Debian's" : "the Go release's"} in ${first.differing.join(', ')}: comparing Go ${a.go} from ${other === 'debian' ? 'Debian' : 'the Go toolchain module'}\n`,
    );
    const tag = sourceImageTag(ctx.deps.config.imageRepo, a.go, TARGETS[a.target].image, other);
    let check: StdSourceCheck;
    try {
      const id = await ensureSourceImage(ctx, engine, { go: a.go, target: a.target, source: other, tag }, labels, appendLog);
      check = await compare(other, { tag, id });
    } catch (err) {
      check = { source: other, image: tag, differing: [], error: (err as Error).message };
    }
    checked.push(check);
    if (!check.error && !check.differing.length) {
      await appendLog(
        `[plugforge] the host's standard library is ${other === 'debian' ? "Debian's" : "the Go release's"}: building with ${tag}\n`,
      );
      return { used: other, image: tag, matched: true, checked };
    }
  }
  const said = checked.map((c) => `${c.source}: ${c.error ?? `differs in ${c.differing.join(', ')}`}`).join('; ');
  await appendLog(`[plugforge] no image source of Go ${a.go} has the host's standard library (${said}); building with ${usual.image}\n`);
  return { used: first.source, image: usual.image, matched: false, checked };
}

/** The other source plugforge can make the exact release `go` from, if any. */
export function otherSource(go: string, usual: GoSource | 'unknown'): GoSource | undefined {
  const debian = (DEBIAN_GO_RELEASES as Record<string, string>)[minorOf(requireGoVersion(go))];
  if (usual === 'go-release') return debian === go ? 'debian' : undefined;
  // Debian's images (and unlabelled ones, which were Debian's) have the Go release beside them.
  return 'go-release';
}

/**
 * The id of the release's image from `source` for `target` (sourceImageTag), made first when
 * absent: one image build per Go minor across the fleet (the lock of images on demand).
 */
async function ensureSourceImage(
  ctx: JobContext,
  engine: ImageEngine,
  want: { go: string; target: TargetId; source: GoSource; tag: string },
  labels: Record<string, string>,
  appendLog: (text: string) => Promise<void>,
): Promise<string> {
  const { config, connection } = ctx.deps;
  const idOf = async () => {
    const [repo] = want.tag.split(':') as [string];
    const found = (await engine.listImages(repo)).find((i) => i.tags.includes(want.tag));
    return found && Number(found.labels[LABEL_REVISION] ?? 0) >= IMAGE_REVISION && goSourceOfLabels(found.labels) === want.source
      ? found.id
      : undefined;
  };
  const key = `pf:${config.queueName}:image-build:${minorOf(requireGoVersion(want.go))}`;
  const token = randomBytes(8).toString('hex');
  const until = Date.now() + WAIT_MS;
  for (;;) {
    const id = await idOf();
    if (id) return id;
    if ((await connection.set(key, token, 'PX', LOCK_MS, 'NX')) === 'OK') {
      const renew = setInterval(() => void connection.pexpire(key, LOCK_MS).catch(() => undefined), LOCK_MS / 3);
      try {
        await appendLog(`[plugforge] building ${want.tag} (images on demand, a few minutes)\n`);
        const request = {
          go: want.go,
          targets: [TARGETS[want.target].image],
          repo: config.imageRepo,
          imagesDir: IMAGES_DIR,
          source: want.source,
          alongside: true,
          toolchain: toolchainFetchOf(config),
          floor: config.images.floor,
          labels,
        };
        const line = (task: string, message: string) => void appendLog(`[images] ${task}: ${message}\n`).catch(() => undefined);
        await buildImages(engine, request, { update: () => undefined, log: line, done: line, fail: line });
      } finally {
        clearInterval(renew);
        await withScripts(connection)
          .pfReleaseLock(key, token)
          .catch(() => undefined);
      }
      const made = await idOf();
      if (!made) throw new Error(`${want.tag} was built but is not on the engine`);
      return made;
    }
    if (Date.now() > until) throw new Error(`waited ${WAIT_MS / 60_000} min for another image build of Go ${want.go}`);
    await new Promise((r) => setTimeout(r, 3_000));
  }
}
