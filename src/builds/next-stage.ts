import { needsModules, type BuildRecord } from './build-document.js';

/** The parts of a build, in the order they run: its builder images, its dependency phase, its targets; then nothing more. */
export type Stage = 'images' | 'dependencies' | 'targets' | 'done';

/** What is known of a build, beyond its record, when its next stage is decided. */
export interface StageFacts {
  /** The builder images of its Go release exist (false: they are made first, images on demand). */
  imagesReady: boolean;
  /** Its dependency phase has succeeded. */
  dependenciesDone: boolean;
  /** Nothing more runs for it: canceled, or run by another build (reuse). */
  ended?: boolean;
}

/**
 * Which stage of a build runs next: images → dependencies (when it needs modules) →
 * targets → done. Pure: the one place that decides it, for the submission's first job
 * and for the worker after each phase (docs/architecture.md, "The path of one build").
 */
export function nextStage(record: BuildRecord, facts: StageFacts): Stage {
  if (facts.ended) return 'done';
  if (!facts.imagesReady) return 'images';
  if (needsModules(record) && !facts.dependenciesDone) return 'dependencies';
  return 'targets';
}
