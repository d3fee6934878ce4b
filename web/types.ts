import { BUILD_STATUSES, HOST_PROFILES } from '../src/contract/build-vocabulary.js';
import { TARGET_IDS } from '../src/contract/targets.js';

/**
 * What the page reads of the API's documents (README, "The API in a few curl lines"): only
 * the fields it shows, all optional where the API may leave them out.
 */

// The server's own lists (src/contract/: plain constants, no imports the browser cannot load).
export const TARGETS = TARGET_IDS;
export const STATUSES = BUILD_STATUSES;
export const HOSTS = HOST_PROFILES;

/** A build that may still change: the page polls while it shows one. */
export function isActive(status: string): boolean {
  return status === 'preparing' || status === 'queued' || status === 'running';
}

export interface TargetDoc {
  status: string;
  /** Where its time went, in ms per phase (docs/architecture.md, "Where the time goes"). */
  phases?: Record<string, number>;
  attempt?: number;
  durationMs?: number;
  error?: { code: string; message: string };
  artifact?: { name: string; size: number; sha256: string; url: string };
  verify?: {
    status: string;
    method?: string;
    message?: string;
    probe?: { status?: string; how?: string; reason?: string };
  };
}

/** What a build document starts with, and each build of the list shows. */
interface BuildHead {
  id: string;
  status: string;
  go: string;
  goRequested?: string;
  name: string;
  mode: string;
  host: string;
  module?: string;
  createdAt: string;
  finishedAt?: string;
  canceledAt?: string;
  reusedFrom?: string;
}

/** A (host release, target) pair of a matrix build (docs/hosts.md, "A matrix"). */
export interface MatrixCell {
  host: string;
  target: string;
  /** The build that ran it: its logs are that build's. */
  build: string;
  status: string;
  /** The release of the same build whose description it ran with, when not its own. */
  reusedFrom?: string;
  artifact?: TargetDoc['artifact'];
  verify?: TargetDoc['verify'];
  error?: TargetDoc['error'];
  finishedAt?: string;
}

export interface MatrixDoc {
  hosts: string[];
  builds: { build: string; hosts: string[]; url?: string }[];
  cells: MatrixCell[];
}

export interface BuildDoc extends BuildHead {
  hostMatch?: { from: string; go?: string; trimpath?: boolean; tags?: string[]; modules?: number; notes?: string[] };
  /** Empty for a matrix build: its cells are in `matrix`. */
  targets: Record<string, TargetDoc | undefined>;
  matrix?: MatrixDoc;
  links: { self: string; logs?: string; artifacts?: string };
}

export interface BuildSummary extends BuildHead {
  targets: Record<string, { status: string; verify?: string } | undefined>;
  /** A matrix build's cells (its `targets` are empty). */
  cells?: { host: string; target: string; status: string; verify?: string }[];
}

export interface BuildList {
  builds: BuildSummary[];
  next?: string;
}

export interface Toolchains {
  defaultGo: string;
  toolchains: { go: string; targets: string[] }[];
}

/** A watch (GET /v1/watches; docs/hosts.md, "Watches"): `build` rebuilt for every new release of `host`. */
export interface Watch {
  id: string;
  build: string;
  host: string;
  callback?: string;
  createdAt: string;
  /** The latest rebuilds, newest last: the build started, or why none could start. */
  builds: { release: string; at: string; build?: string; error?: { code: string; message: string } }[];
}
