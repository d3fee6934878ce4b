import type { CommandResult } from '../runtime/image-engine.js';
import type { TargetId } from '../contract/targets.js';
import { PREBUILT_PROBE } from '../verify/load-probe.js';
import { loaderCandidates, loaderFailure, NO_PLUGIN, probeRan, type LoadCapability, type Probe386Mode } from '../verify/probe-loaders.js';

/** Runs a short trusted command in an image (ImageEngine.runCommand on the worker's engine). */
export type ImageCommandRunner = (image: string, cmd: string[]) => Promise<CommandResult>;

/** One builder image as the worker sees it. */
export interface ImageRef {
  image: string;
  target: TargetId;
  /** The image id: a rebuilt image under the same tag is checked again. */
  id?: string;
}

/**
 * What this worker can execute per builder image: which loader runs a Go program of the
 * image's target here, found out by running the image's prebuilt probe under each
 * candidate (probe-loaders.ts) until one reports back. Learnt once per image id, at start
 * and as images appear; reported with the heartbeat (docs/architecture.md "Three levels
 * of proof"). Safe to call concurrently: one check per image runs at a time.
 */
export class LoadCapabilities {
  private readonly known = new Map<string, LoadCapability>();
  private readonly pending = new Map<string, Promise<LoadCapability>>();
  private readonly listeners: Array<() => void> = [];

  constructor(
    /** Undefined with a fake runtime: the first candidate is taken, unchecked. */
    private readonly run: ImageCommandRunner | undefined,
    private readonly mode386: Probe386Mode = 'auto',
  ) {}

  /** The capability for an image, checking it first if it is new. */
  async of(ref: ImageRef): Promise<LoadCapability> {
    const key = keyOf(ref);
    const known = this.known.get(key);
    if (known) return known;
    let running = this.pending.get(key);
    if (!running) {
      running = this.detect(ref)
        .then((c) => {
          this.known.set(key, c);
          for (const listener of this.listeners) listener();
          return c;
        })
        .finally(() => this.pending.delete(key));
      this.pending.set(key, running);
    }
    return running;
  }

  /** Calls `listener` each time a check ends with something new to report. */
  onLearnt(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Whether a check is running now (its containers are not leftovers). */
  get checking(): boolean {
    return this.pending.size > 0;
  }

  /** What is known so far, by image tag (for the heartbeat). */
  summary(refs: readonly ImageRef[]): Record<string, { how?: string; unavailable?: string }> {
    const out: Record<string, { how?: string; unavailable?: string }> = {};
    for (const ref of refs) {
      const c = this.known.get(keyOf(ref));
      if (c) out[ref.image] = 'loader' in c ? { how: c.loader.how } : { unavailable: c.unavailable };
    }
    return out;
  }

  private async detect(ref: ImageRef): Promise<LoadCapability> {
    const candidates = loaderCandidates(ref.target, this.mode386);
    const first = candidates[0]!;
    if (!this.run) return { loader: first, checked: false };
    const has = await this.run(ref.image, ['test', '-x', PREBUILT_PROBE]).catch(() => undefined);
    // Images without a prebuilt probe (gotify/build, older revisions) cannot be checked
    // this way: the first candidate is used, and a probe that cannot start says so then.
    if (!has || has.exitCode !== 0) return { loader: first, checked: false };
    const failures: string[] = [];
    for (const loader of candidates) {
      try {
        const result = await this.run(ref.image, [...loader.argv, PREBUILT_PROBE, NO_PLUGIN]);
        if (probeRan(result)) return { loader, checked: true };
        failures.push(loaderFailure(loader, result));
      } catch (err) {
        failures.push(`${loader.how}: ${(err as Error).message}`);
      }
    }
    return { unavailable: `this worker cannot run ${ref.target} programs: ${failures.join('; ')}` };
  }
}

function keyOf(ref: ImageRef): string {
  return `${ref.image}@${ref.id ?? ''}`;
}
