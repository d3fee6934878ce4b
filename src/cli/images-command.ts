import { toolchainFetchOf, type Config } from '../config.js';
import { IMAGES_USAGE } from './images-usage.js';
import { buildImages, checkImageBuildRequest, IMAGES_DIR } from '../images/image-builder.js';
import { listToolchainImages } from '../images/image-catalog.js';
import { GO_SOURCES, type GoSource } from '../images/toolchain-module.js';
import { openEngine } from '../runtime/engine.js';
import { TARGET_IDS, type ImageTargetId } from '../contract/targets.js';
import { createProgress } from './progress.js';
import { parseArgsOr, UsageError } from '../usage-error.js';

export { IMAGES_USAGE };

export async function imagesCommand(args: string[], config: Config): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'build') return imagesBuild(rest, config);
  if (sub === 'list') return imagesList(rest, config);
  throw new UsageError(`unknown images command "${sub ?? ''}"`, IMAGES_USAGE);
}

async function imagesBuild(args: string[], config: Config): Promise<number> {
  const { values } = parseArgsOr(
    {
      args,
      options: {
        go: { type: 'string', default: config.defaultGo },
        targets: { type: 'string', default: TARGET_IDS.join(',') },
        repo: { type: 'string', default: config.imageRepo },
        source: { type: 'string', default: 'auto' },
        force: { type: 'boolean', default: false },
        alongside: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
      },
    },
    IMAGES_USAGE,
  );
  const targets = String(values.targets)
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const source = String(values.source);
  if (source !== 'auto' && !(GO_SOURCES as readonly string[]).includes(source))
    throw new UsageError(`--source must be auto, ${GO_SOURCES.join(' or ')}, not "${source}"`, IMAGES_USAGE);
  const toolchain = toolchainFetchOf(config);
  const { floor } = config.images;
  const from = checkImageBuildRequest(String(values.go), targets, source as GoSource | 'auto', toolchain.proxy, floor);
  const { images: engine } = openEngine(config.dockerHost);
  const progress = createProgress(process.stderr, { quiet: Boolean(values.quiet) });
  const started = Date.now();
  try {
    const result = await buildImages(
      engine,
      {
        go: String(values.go),
        targets: targets as ImageTargetId[],
        repo: String(values.repo),
        force: Boolean(values.force),
        alongside: Boolean(values.alongside),
        imagesDir: IMAGES_DIR,
        source: from,
        toolchain,
        floor,
      },
      progress,
    );
    progress.close();
    for (const img of result.images) {
      process.stdout.write(`${img.image}\t${img.outcome}${img.outcome === 'built' ? ` in ${img.seconds.toFixed(0)} s` : ''}\n`);
    }
    process.stderr.write(
      `Go ${result.go} (from ${result.source}): ${result.images.length} image(s) ready in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
    );
    return 0;
  } catch (err) {
    progress.close();
    throw err;
  }
}

async function imagesList(args: string[], config: Config): Promise<number> {
  const { values } = parseArgsOr(
    {
      args,
      options: {
        repo: { type: 'string', default: config.imageRepo },
        json: { type: 'boolean', default: false },
      },
    },
    IMAGES_USAGE,
  );
  const { images: engine } = openEngine(config.dockerHost);
  const catalog = await listToolchainImages(engine, String(values.repo));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(catalog, null, 2)}\n`);
    return 0;
  }
  if (!catalog.images.length) {
    process.stderr.write(`No builder images of ${catalog.repo}. Build some with: plugforge images build --go 1.22\n`);
    return 0;
  }
  const rows = catalog.images.map((i) => [
    i.image,
    i.go,
    i.target,
    i.source ?? 'unknown',
    `${Math.round(i.size / 1e6)} MB`,
    i.id.replace(/^sha256:/, '').slice(0, 12),
  ]);
  printTable(['IMAGE', 'GO', 'TARGET', 'SOURCE', 'SIZE', 'ID'], rows);
  return 0;
}

export function printTable(header: string[], rows: string[][], out: NodeJS.WritableStream = process.stdout): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows])
    out.write(
      `${row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
}
