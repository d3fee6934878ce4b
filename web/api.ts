/**
 * How the page talks to the API: same origin only (the page's Content-Security-Policy says
 * connect-src 'self'), the token of this tab sent on every call, and the API's errors
 * ({"error": {"code", "message"}}) as ApiError. A 401 also tells the page to ask for a token.
 */

const TOKEN_KEY = 'plugforge.token';

/** Kept for this tab only: sessionStorage, never localStorage, never in a URL. */
export function currentToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function setToken(token: string | undefined): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function authHeaders(): Record<string, string> {
  const token = currentToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Fired on window when the API answers 401: the page shows the token form with the message. */
export const UNAUTHORIZED_EVENT = 'plugforge:unauthorized';

/**
 * A URL the API gave (build documents carry absolute ones, made from PLUGFORGE_PUBLIC_URL
 * or the request) as a path on this page's own origin.
 */
export function samePath(url: string): string {
  const u = new URL(url, location.href);
  return `${u.pathname}${u.search}`;
}

export async function apiFetch(
  method: string,
  path: string,
  init: { body?: BodyInit; headers?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<Response> {
  const res = await fetch(path, {
    method,
    headers: { Accept: 'application/json', ...authHeaders(), ...init.headers },
    body: init.body ?? null,
    signal: init.signal ?? null,
    cache: 'no-store',
  });
  if (res.ok) return res;
  const err = await errorOf(res);
  if (res.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: err }));
  throw err;
}

export async function apiJson<T>(method: string, path: string, init: Parameters<typeof apiFetch>[2] = {}): Promise<T> {
  return (await apiFetch(method, path, init)).json() as Promise<T>;
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.code) return new ApiError(res.status, body.error.code, body.error.message ?? '');
  } catch {
    // Not the API's JSON (a proxy's page, say): say what came back.
  }
  return new ApiError(res.status, `http_${res.status}`, text.slice(0, 200) || res.statusText);
}

/** Any error as the user reads it: the API's code and message, or what the browser said. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof ApiError) return { code: err.code, message: err.message };
  if (err instanceof DOMException && err.name === 'AbortError') return { code: 'aborted', message: 'The request was stopped.' };
  return { code: 'network_error', message: err instanceof Error ? err.message : String(err) };
}

/**
 * Saves what a download link points at. Without a token the link works by itself; with one
 * the bytes are fetched with the Authorization header and saved through a blob URL, since a
 * plain link cannot send a header (and the token must not go into its URL).
 */
export async function downloadWithToken(path: string, fallbackName: string): Promise<void> {
  const res = await apiFetch('GET', path, { headers: { Accept: '*/*' } });
  const name = /filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') ?? '')?.[1] ?? fallbackName;
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  // The click has handed the blob to the download by now; give it a moment before letting go.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
