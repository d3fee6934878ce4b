import { readFileSync } from 'node:fs';
import type { HostProfile } from '../contract/build-vocabulary.js';

/**
 * The loading probe: a tiny Go host, built in the target's image with the same toolchain
 * as the plugin and the host's settings, as a package of the plugin's own module (with
 * blank imports of the packages it shares with a described host, see plan.ts). It does
 * what a host does at start-up — plugin.Open, then Lookup of the profile's symbols —
 * under the target's own architecture, and prints one JSON line saying what happened.
 * Its one source is images/linux-amd64/probe.go, which the images build too (their build
 * context is that folder); probe/main.go beside this module links to it, and `npm run
 * build` copies the file itself into dist/ (scripts/copy-programs.mjs).
 */
export const PROBE_MAIN_GO = readFileSync(new URL('./probe/main.go', import.meta.url), 'utf8');

/**
 * The probe that plugforge's images carry (images/<target>/Dockerfile): built from the same source
 * with the image's toolchain, no -trimpath, no tags and the GO386 that 386 plugins get.
 * It serves builds with no host to match; a build's own probe takes its place otherwise,
 * and wherever an image lacks it.
 */
export const PREBUILT_PROBE = '/usr/local/lib/plugforge/probe/probe';

/** The symbols a host of each profile looks up; missing ones make it refuse the plugin. */
export const PROFILE_SYMBOLS: Readonly<Record<HostProfile, readonly string[]>> = {
  gotify: ['GetGotifyPluginInfo', 'NewGotifyPluginInstance'],
  flow: ['GetFlowPluginInfo', 'NewFlowPluginInstance'],
  generic: [],
};

export interface ProbeReport {
  result: 'loaded' | 'open_failed' | 'symbol_missing' | 'unknown';
  symbol?: string;
  message?: string;
}

/** The probe's JSON line, from its stdout (the last line that parses). */
export function parseProbeReport(stdout: string): ProbeReport {
  for (const line of stdout.split('\n').reverse()) {
    try {
      const v = JSON.parse(line) as ProbeReport;
      if (v && typeof v.result === 'string') return v;
    } catch {
      // not the report line
    }
  }
  return { result: 'unknown' };
}
