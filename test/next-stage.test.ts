import { describe, expect, it } from 'vitest';
import type { HostMatch } from '../src/host/host-match.js';
import { nextStage } from '../src/builds/next-stage.js';
import { sampleRecord } from './support/fixtures.js';

/** Which stage of a build runs next (src/builds/next-stage.ts), from plain records. */
const noModules = sampleRecord();
const withModules = sampleRecord({ source: { ...noModules.source, requirements: true } });
const vendored = sampleRecord({ source: { ...noModules.source, requirements: true, vendored: true } });
const hostMatch = (trimpath: boolean) => ({ from: 'goMod', trimpath, tags: [], modules: [], aligned: [] }) as unknown as HostMatch;

describe('nextStage', () => {
  it('is done for a build that has ended (canceled, or run by another), whatever else is known', () => {
    expect(nextStage(withModules, { imagesReady: false, dependenciesDone: false, ended: true })).toBe('done');
    expect(nextStage(noModules, { imagesReady: true, dependenciesDone: true, ended: true })).toBe('done');
  });

  it('makes the images first when they are missing, before any dependency phase', () => {
    expect(nextStage(noModules, { imagesReady: false, dependenciesDone: false })).toBe('images');
    expect(nextStage(withModules, { imagesReady: false, dependenciesDone: false })).toBe('images');
  });

  it('runs the dependency phase of a build that needs modules, once images exist', () => {
    expect(nextStage(withModules, { imagesReady: true, dependenciesDone: false })).toBe('dependencies');
    expect(nextStage(withModules, { imagesReady: true, dependenciesDone: false, ended: false })).toBe('dependencies');
  });

  it('goes to the targets once the dependency phase is done', () => {
    expect(nextStage(withModules, { imagesReady: true, dependenciesDone: true })).toBe('targets');
  });

  it('goes straight to the targets of a build that needs no modules', () => {
    expect(nextStage(noModules, { imagesReady: true, dependenciesDone: false })).toBe('targets');
    expect(nextStage(vendored, { imagesReady: true, dependenciesDone: false })).toBe('targets');
  });

  it('downloads the modules of a vendored build whose vendor/ is set aside for a host built without -trimpath', () => {
    expect(nextStage({ ...vendored, hostMatch: hostMatch(false) }, { imagesReady: true, dependenciesDone: false })).toBe('dependencies');
    expect(nextStage({ ...vendored, hostMatch: hostMatch(true) }, { imagesReady: true, dependenciesDone: false })).toBe('targets');
  });
});
