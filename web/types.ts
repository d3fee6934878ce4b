/**
 * What the page reads of the API's documents (README, "The API in a few curl lines"): only
 * the fields it shows, all optional where the API may leave them out.
 */

export const TARGETS = ['linux-amd64', 'linux-arm-7', 'linux-arm64', 'linux-386'] as const;
export const STATUSES = ['preparing', 'queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export const HOSTS = ['generic', 'gotify', 'flow'] as const;

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

export interface BuildDoc extends BuildHead {
  hostMatch?: { from: string; go?: string; trimpath?: boolean; tags?: string[]; modules?: number; notes?: string[] };
  targets: Record<string, TargetDoc | undefined>;
  links: { self: string; logs?: string; artifacts?: string };
}

export interface BuildSummary extends BuildHead {
  targets: Record<string, { status: string; verify?: string } | undefined>;
}

export interface BuildList {
  builds: BuildSummary[];
  next?: string;
}

export interface Toolchains {
  defaultGo: string;
  toolchains: { go: string; targets: string[] }[];
}
