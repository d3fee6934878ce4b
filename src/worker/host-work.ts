import type { BuildRecord, BuildState } from '../builds/build-document.js';
import type { WorkOverrides } from './source-tar.js';
import { PROFILE_SYMBOLS } from '../verify/load-probe.js';
import type { PluginExports, TargetOutcome } from './target-build.js';

/** What host matching changes in a target's source: the aligned go.mod, the go.sum lines the dependency phase added, the host's modules for the probe. */
export function workOverridesOf(state: BuildState): WorkOverrides {
  const host = state.record.hostMatch;
  if (!host) return {};
  return {
    ...(host.goMod !== undefined ? { goMod: host.goMod } : {}),
    ...(state.dependencies?.goSumAdded?.length ? { goSumAdded: state.dependencies.goSumAdded } : {}),
    hostModules: host.modules.map((m) => m.path),
  };
}

/**
 * For a plugin of a host profile, the symbols its host looks up: plugforge builds the
 * module's root package, so the plugin path is the module path.
 */
export function exportsOf(record: BuildRecord): { exports?: PluginExports } {
  const symbols = PROFILE_SYMBOLS[record.host];
  return record.mode === 'plugin' && symbols.length ? { exports: { pluginPath: record.source.module, symbols } } : {};
}

/**
 * verify=warn: a target whose artifact built but failed verification succeeds, the
 * verification's result and message kept in `verify`. Any other failure stays a failure.
 */
export function verifyPolicy(record: BuildRecord, outcome: TargetOutcome): TargetOutcome {
  if (record.verifyMode !== 'warn' || outcome.status !== 'failed' || !outcome.artifact || outcome.verify?.status !== 'failed')
    return outcome;
  const { error, ...rest } = outcome;
  return {
    ...rest,
    status: 'succeeded',
    verify: {
      ...outcome.verify,
      message: `${outcome.verify.message} (verify=warn: the artifact is offered anyway; code ${error?.code ?? 'verify_failed'})`,
    },
  };
}
