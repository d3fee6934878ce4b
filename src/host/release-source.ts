import http from 'node:http';
import https from 'node:https';
import { PlugforgeError } from '../errors/plugforge-error.js';

/** Where the operator says a host's releases are described (PLUGFORGE_HOST_SOURCES): URL templates with `{version}`. */
export interface HostSource {
  /** The release's go.mod, e.g. https://raw.githubusercontent.com/gotify/server/v{version}/go.mod */
  goMod: string;
  /** A file holding the Go release it is built with (gotify's GO_VERSION), e.g. …/v{version}/GO_VERSION */
  goVersion: string;
}

export interface SourceLimits {
  /** Hosts (`name` or `name:port`) a description may be fetched from. */
  allow: readonly string[];
  timeoutMs: number;
  maxGoModBytes: number;
}

export const DEFAULT_SOURCE_LIMITS = { timeoutMs: 10_000, maxGoModBytes: 1024 * 1024 } as const;
const MAX_GO_VERSION_BYTES = 64;
const GO_RELEASE = /^(?:go)?(\d+\.\d+(?:\.\d+)?)$/;

/**
 * A release's description from where the operator said (docs/hosts.md, "Resolved on first
 * use"): its go.mod and its Go release, each fetched once, from an allowed host only, with no
 * redirect followed, within a time and a size. A version the source does not have is
 * `404 host_release_unknown`; anything else that goes wrong is the source's, said with its URL.
 */
export async function fetchReleaseDescription(
  name: string,
  version: string,
  source: HostSource,
  limits: SourceLimits,
): Promise<{ goMod: string; go: string }> {
  const at = (template: string) => template.replaceAll('{version}', encodeURIComponent(version));
  const [goMod, goVersion] = await Promise.all([
    fetchText(at(source.goMod), limits, limits.maxGoModBytes, `${name}@${version}`),
    fetchText(at(source.goVersion), limits, MAX_GO_VERSION_BYTES, `${name}@${version}`),
  ]);
  const go = GO_RELEASE.exec(goVersion.trim())?.[1];
  if (!go) {
    throw new PlugforgeError(
      'host_source_invalid',
      `${at(source.goVersion)} holds ${JSON.stringify(goVersion.trim().slice(0, 40))}, not a Go release such as 1.22.4: host release ${name}@${version} cannot be described from it. Register it by hand (plugforge hosts add).`,
      { status: 502 },
    );
  }
  return { goMod, go };
}

/** One GET, its body as text: refused unless the host is allowed, the answer is 200 and not larger than `max`. */
async function fetchText(url: string, limits: SourceLimits, max: number, ref: string): Promise<string> {
  const target = new URL(url);
  if (!limits.allow.includes(target.host)) {
    throw new PlugforgeError(
      'host_source_refused',
      `Host release ${ref} would be fetched from ${target.host}, which is not among the hosts plugforge may fetch from (PLUGFORGE_HOST_FETCH_ALLOW).`,
      { status: 502 },
    );
  }
  const transport = target.protocol === 'https:' ? https : http;
  return new Promise((resolveText, rejectText) => {
    // One deadline for the whole answer: a source that drips a byte at a time cannot hold the request longer.
    const deadline = setTimeout(
      () =>
        req.destroy(
          new PlugforgeError(
            'host_source_timeout',
            `${url} did not answer within ${limits.timeoutMs / 1000} s; try the build again shortly.`,
            {
              status: 504,
              retryable: true,
            },
          ),
        ),
      limits.timeoutMs,
    );
    const resolve = (text: string) => {
      clearTimeout(deadline);
      resolveText(text);
    };
    const reject = (err: unknown) => {
      clearTimeout(deadline);
      rejectText(err);
    };
    const req = transport.get(target, { headers: { 'User-Agent': 'plugforge' } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status === 404) {
        res.resume();
        return reject(
          new PlugforgeError(
            'host_release_unknown',
            `Host release ${ref} is not registered, and its source has no such version (${url} answered 404). Check the version, or register it by hand (plugforge hosts add).`,
            { status: 404 },
          ),
        );
      }
      if (status !== 200) {
        res.resume();
        const where = status >= 300 && status < 400 ? `, a redirect to ${res.headers.location ?? '?'}: plugforge follows none` : '';
        return reject(
          new PlugforgeError(
            'host_source_failed',
            `${url} answered ${status}${where}; host release ${ref} could not be described from it.`,
            {
              status: 502,
              retryable: status >= 500,
            },
          ),
        );
      }
      let size = 0;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          req.destroy();
          return reject(
            new PlugforgeError(
              'host_source_too_large',
              `${url} is larger than the ${max} bytes plugforge reads for it; host release ${ref} was not described from it.`,
              { status: 502 },
            ),
          );
        }
        chunks.push(chunk);
      });
      res.on('end', () => (res.complete ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(brokenOff(url))));
      res.on('error', () => reject(brokenOff(url)));
    });
    req.on('error', (err) =>
      reject(
        err instanceof PlugforgeError
          ? err
          : new PlugforgeError(
              'host_source_failed',
              `${url} could not be reached (${(err as Error).message}); try the build again shortly.`,
              {
                status: 502,
                retryable: true,
              },
            ),
      ),
    );
  });
}

/** A source that went away in the middle of its answer. */
function brokenOff(url: string): PlugforgeError {
  return new PlugforgeError(
    'host_source_failed',
    `${url} broke off its answer part-way; nothing was registered. Try the build again shortly.`,
    {
      status: 502,
      retryable: true,
    },
  );
}
