import Docker from 'dockerode';

/**
 * The Docker client. With no host given, dockerode follows DOCKER_HOST or the local
 * socket (/var/run/docker.sock), as the docker CLI does.
 */
export function createDockerClient(dockerHost?: string): Docker {
  if (!dockerHost) return new Docker();
  if (dockerHost.startsWith('unix://')) return new Docker({ socketPath: dockerHost.slice('unix://'.length) });
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: url.protocol === 'https:' ? 'https' : 'http' });
}

/** True when the error says the engine itself is unreachable (socket missing, refused, reset). */
export function isDockerUnreachable(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return (
    code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'EACCES' || code === 'ETIMEDOUT'
  );
}

/** True for Docker's 404 ("no such container/image"). */
export function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number } | undefined)?.statusCode === 404;
}
