import { beforeAll } from 'vitest';
import type Docker from 'dockerode';
import { DockerImageEngine } from '../src/runtime/docker-image-engine.js';
import { DockerRuntime } from '../src/runtime/docker-runtime.js';
import { requireDocker, requireImages } from './support/env.js';
import { runtimeContract } from './support/runtime-contract.js';

/** The engine contract on a real Docker engine, with the builder image of the test toolchain and a small shell command. */
let docker: Docker;
let image = '';

beforeAll(async () => {
  docker = await requireDocker();
  image = `plugforge/build:${await requireImages(docker)}-linux-amd64`;
});

/** Prints $1, writes $2 (when given) to /work/out/artifact, sleeps $3 seconds, exits $4. */
const PROGRAM = 'printf "%s" "$1"; if [ -n "$2" ]; then printf "%s" "$2" > /work/out/artifact; fi; sleep "$3"; exit "$4"';

runtimeContract('DockerRuntime and DockerImageEngine', async () => ({
  runtime: new DockerRuntime(docker),
  images: new DockerImageEngine(docker),
  command: (_jobId, p) => [
    'sh',
    '-c',
    PROGRAM,
    'program',
    p.stdout ?? '',
    p.artifact ?? '',
    String((p.runMs ?? 0) / 1000),
    String(p.exitCode ?? 0),
  ],
  present: {
    image,
    repo: 'plugforge/build',
    labels: { 'org.plugforge.target': 'linux-amd64', 'org.plugforge.go.version': image.split(':')[1]!.split('-')[0]! },
  },
}));
