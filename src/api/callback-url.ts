import { isIP } from 'node:net';
import { PlugforgeError } from '../errors/plugforge-error.js';
import type { ApiConfig } from '../config.js';

/**
 * A callback URL as a tenant gives it (docs/hosts.md, "Callbacks"): http or https, no user
 * or password, a host on the operator's list (PLUGFORGE_CALLBACK_HOSTS: names, `*.domain`
 * for its subdomains), and, unless the operator allows private addresses, no loopback,
 * private or link-local address literal. Names are checked again when a delivery resolves
 * them (`isPrivateAddress`). Refused: 400 callback_refused with a sentence.
 */
export function checkCallbackUrl(text: string, policy: ApiConfig['callbacks']): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refused(`"${text.slice(0, 80)}" is not a URL; give the receiver's full address, such as https://ci.example.com/plugforge.`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refused(`a callback is sent over http or https, not ${url.protocol}`);
  if (url.username || url.password)
    throw refused('a callback URL may not carry a user or password: the body is signed instead (docs/hosts.md)');
  if (text.length > 2048) throw refused('a callback URL is at most 2048 characters');
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (!policy.hosts.length) throw refused('this installation sends callbacks to no host (its operator sets PLUGFORGE_CALLBACK_HOSTS)');
  if (!policy.hosts.some((h) => hostMatches(host, h.toLowerCase())))
    throw refused(`${host} is not among the hosts this installation sends callbacks to (${policy.hosts.join(', ')})`);
  if (!policy.privateAddresses && isIP(host) && isPrivateAddress(host))
    throw refused(`${host} is a loopback, private or link-local address, which callbacks never reach here`);
  return url;
}

function hostMatches(host: string, allowed: string): boolean {
  return allowed.startsWith('*.') ? host.endsWith(allowed.slice(1)) && host.length > allowed.length - 1 : host === allowed;
}

function refused(why: string): PlugforgeError {
  return new PlugforgeError('callback_refused', `Option "callback": ${why}.`);
}

/** Loopback, private (RFC 1918, unique-local), link-local, unspecified, CGNAT and IPv4-mapped forms of them. */
export function isPrivateAddress(address: string): boolean {
  const a = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return isPrivateAddress(mapped[1]!);
  if (isIP(a) === 4) {
    const [p, q] = a.split('.').map(Number) as [number, number];
    return (
      p === 0 ||
      p === 10 ||
      p === 127 ||
      (p === 100 && q >= 64 && q < 128) ||
      (p === 169 && q === 254) ||
      (p === 172 && q >= 16 && q < 32) ||
      (p === 192 && q === 168)
    );
  }
  return a === '::' || a === '::1' || /^f[cd]/.test(a) || /^fe[89ab]/.test(a);
}
