import type { DiskName } from '../runtime/build-runtime.js';
import { DISK_PATHS } from '../runtime/container-options.js';
import type { ContainerSpec } from '../runtime/build-spec.js';

/** A line of output that reports ENOSPC (Go, the C toolchain, coreutils all print strerror). */
const NO_SPACE_LINE = /^.*no space left on device.*$/gim;
/** Paths on the worker's own disk (the cache volumes): ENOSPC there is the worker's, not a cap. */
const WORKER_DISK_PATH = /(^|[\s'"=])\/(cache|go\/pkg\/mod)(\/|\b)/;
/** A path under /tmp (everything else a container writes is under /work: TMPDIR, $WORK, out/). */
const TMP_PATH = /(^|[\s'"=])\/tmp(\/|\b)/;

/**
 * Whether a container that failed (or was stopped) ran into the size of its /work or /tmp
 * (docs/decisions.md, "Every writable path has a size"): a disk the runtime found full when
 * it ended, or, since a failing tool often deletes what it wrote (the assembler, the
 * linker), ENOSPC in its output. Resolves to the words that name the cap, or undefined.
 */
export function diskLimitReached(spec: ContainerSpec, full: readonly DiskName[] | undefined, output: string): string | undefined {
  const disks = new Set<DiskName>(full ?? []);
  if (!disks.size) {
    for (const line of output.match(NO_SPACE_LINE) ?? []) {
      if (WORKER_DISK_PATH.test(line)) continue;
      disks.add(TMP_PATH.test(line) ? 'tmp' : 'work');
    }
  }
  if (!disks.size) return undefined;
  const named = (['work', 'tmp'] as const)
    .filter((d) => disks.has(d))
    .map((d) =>
      d === 'work'
        ? `${DISK_PATHS.work} (${mib(spec.limits.workBytes)} MiB, PLUGFORGE_WORK_DISK_MB)`
        : `${DISK_PATHS.tmp} (${mib(spec.limits.tmpfsBytes)} MiB, PLUGFORGE_TMP_DISK_MB)`,
    );
  return `filled its ${named.join(' and ')}`;
}

function mib(bytes: number): number {
  return Math.round(bytes / 1048576);
}
