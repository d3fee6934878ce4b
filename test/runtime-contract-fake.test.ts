import { FakeImageEngine, FakeRuntime } from '../src/runtime/fake-runtime.js';
import { CONTRACT_COMMAND, runtimeContract, type ContractProgram } from './support/runtime-contract.js';

/** The engine contract on the fakes the orchestration tests use: they must keep it as Docker does. */
const IMAGE = 'plugforge/build:1.22.12-linux-amd64';
const LABELS = { 'org.plugforge.go.version': '1.22.12', 'org.plugforge.target': 'linux-amd64' };

runtimeContract('FakeRuntime and FakeImageEngine', async () => {
  // Each container does what its program says, looked up by its job.
  const programs = new Map<string, ContractProgram>();
  const runtime = new FakeRuntime((spec) => {
    const p = programs.get(spec.jobId) ?? {};
    return {
      stdout: p.stdout ?? '',
      exitCode: p.exitCode ?? 0,
      runMs: p.runMs ?? 0,
      artifact: p.artifact === undefined ? 'none' : Buffer.from(p.artifact),
    };
  });
  const images = new FakeImageEngine({
    run: (_image, cmd) =>
      cmd.join(' ') === CONTRACT_COMMAND.join(' ')
        ? { exitCode: 4, stdout: 'out\n', stderr: 'err\n' }
        : { exitCode: 0, stdout: '', stderr: '' },
    failBuild: (spec) => (spec.tag.includes('failing') ? "The command '/bin/sh -c exit 3' returned a non-zero code: 3" : undefined),
  });
  images.add(IMAGE, LABELS);
  return {
    runtime,
    images,
    command: (jobId, program) => {
      programs.set(jobId, program);
      return ['true'];
    },
    present: { image: IMAGE, repo: 'plugforge/build', labels: LABELS },
  };
});
