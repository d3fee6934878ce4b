import type { TargetId } from '../contract/targets.js';
import { parseProbeReport } from './load-probe.js';

/**
 * How the loading probe can run under a target's architecture, in that target's image:
 * amd64 natively; 386 through the i686 loader (only where the worker's kernel runs 32-bit
 * x86 programs: not on kernels without IA32 emulation, nor on arm64 workers) or under
 * qemu-i386 (Debian trixie's 10.x: bookworm's 7.2 crashes on Go programs); the arm
 * targets under qemu-user-static. Which one a worker uses is found out by running the
 * image's prebuilt probe (src/worker/load-capabilities.ts), never assumed.
 */
export interface ProbeLoader {
  /** How the report says it ran: "natively", "qemu-i386-static", … */
  how: string;
  /** What goes before the probe's path on its command line. */
  argv: readonly string[];
}

const NATIVE: ProbeLoader = { how: 'natively', argv: [] };
const I686_LOADER: ProbeLoader = {
  how: 'natively (i686 loader)',
  argv: ['/usr/i686-linux-gnu/lib/ld-linux.so.2', '--library-path', '/usr/i686-linux-gnu/lib'],
};
const QEMU_I386: ProbeLoader = { how: 'qemu-i386-static', argv: ['qemu-i386-static', '-L', '/usr/i686-linux-gnu'] };
const QEMU_ARM64: ProbeLoader = { how: 'qemu-aarch64-static', argv: ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'] };
const QEMU_ARM: ProbeLoader = { how: 'qemu-arm-static', argv: ['qemu-arm-static', '-L', '/usr/arm-linux-gnueabihf'] };

/** PLUGFORGE_PROBE_386: auto (natively where the kernel can, else qemu), or only one of the two. */
export type Probe386Mode = 'auto' | 'native' | 'qemu';

/** The loaders to try for a target, in order of preference. */
export function loaderCandidates(target: TargetId, mode386: Probe386Mode = 'auto'): ProbeLoader[] {
  switch (target) {
    case 'linux-amd64':
      return [NATIVE];
    case 'linux-386':
      return mode386 === 'native' ? [I686_LOADER] : mode386 === 'qemu' ? [QEMU_I386] : [I686_LOADER, QEMU_I386];
    case 'linux-arm64':
      return [QEMU_ARM64];
    case 'linux-arm-7':
      return [QEMU_ARM];
    default:
      // darwin and windows executables: nothing here runs them.
      return [];
  }
}

/**
 * The loader an image check runs the prebuilt probe with: one that works on any x86-64
 * kernel (qemu for 386), so an image's check never depends on the machine that builds it.
 */
export function imageCheckLoader(target: TargetId): ProbeLoader {
  return target === 'linux-386' ? QEMU_I386 : (loaderCandidates(target)[0] as ProbeLoader);
}

/** What a worker found it can do for one image: load with a loader, or not at all (and why). */
export type LoadCapability = { loader: ProbeLoader; checked: boolean } | { unavailable: string };

/** A path no plugin is at: the probe answers open_failed, which proves it ran. */
export const NO_PLUGIN = '/nonexistent/plugforge-capability-check.so';

/**
 * Whether a run of `[...loader, probe, NO_PLUGIN]` shows the probe ran: it reports
 * open_failed for the missing file. Anything else (exec format error, a crash of the
 * emulator, a missing loader) means this loader cannot run Go programs of the target here.
 */
export function probeRan(result: { exitCode: number; stdout: string }): boolean {
  return parseProbeReport(result.stdout).result === 'open_failed';
}

/** One line of why a loader failed, from its output. */
export function loaderFailure(loader: ProbeLoader, result: { exitCode: number; stdout: string; stderr: string }): string {
  const said = `${result.stderr}\n${result.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-2)
    .join(' | ');
  return `${loader.how}: exit status ${result.exitCode}${said ? ` (${said.slice(0, 300)})` : ''}`;
}
