import { eventually } from './eventually.js';

/** A small client for the REST API in tests (fetch, no dependencies). */
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export class ApiClient {
  constructor(readonly base: string) {}

  async request<T = any>(
    method: string,
    path: string,
    body?: Buffer | string,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const res = await fetch(`${this.base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }

  submit(targz: Buffer, query = ''): Promise<ApiResponse> {
    return this.request('POST', `/v1/builds${query ? `?${query}` : ''}`, targz, { 'Content-Type': 'application/gzip' });
  }

  get(path: string): Promise<ApiResponse> {
    return this.request('GET', path);
  }

  async bytes(path: string): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
    const res = await fetch(`${this.base}${path}`);
    return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
  }

  /** Polls the build until its status is one of `statuses` (default: any final one). */
  async waitFor(id: string, statuses: string[] = ['succeeded', 'failed', 'canceled'], timeoutMs = 180_000): Promise<any> {
    let last: any;
    return eventually(
      async () => {
        last = (await this.get(`/v1/builds/${id}`)).body;
        return statuses.includes(last.status) ? last : undefined;
      },
      { timeoutMs, intervalMs: 250, message: () => `build ${id} still ${last?.status}: ${JSON.stringify(last)}` },
    );
  }

  /** Polls until `predicate` holds for the build document. */
  async waitUntil(id: string, predicate: (doc: any) => boolean, timeoutMs = 60_000): Promise<any> {
    let last: any;
    return eventually(
      async () => {
        last = (await this.get(`/v1/builds/${id}`)).body;
        return predicate(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 100, message: () => `build ${id} did not reach the expected state: ${JSON.stringify(last)}` },
    );
  }

  /** Polls /readyz until `predicate` holds for its body (workers report every few seconds). */
  async waitUntilReady(predicate: (body: any) => boolean, timeoutMs = 60_000): Promise<any> {
    let last: any;
    return eventually(
      async () => {
        last = (await this.get('/readyz')).body;
        return predicate(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 250, message: () => `/readyz did not reach the expected state: ${JSON.stringify(last)}` },
    );
  }
}

/** An API client that sends one tenant's token (or none). */
export class TenantClient extends ApiClient {
  constructor(
    baseUrl: string,
    private readonly token: string | undefined,
  ) {
    super(baseUrl);
  }

  override request<T = any>(
    method: string,
    p: string,
    body?: Buffer | string,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    return super.request<T>(method, p, body, this.token === undefined ? headers : { Authorization: `Bearer ${this.token}`, ...headers });
  }

  override async bytes(p: string): Promise<{ status: number; headers: Headers; bytes: Buffer }> {
    const res = await fetch(`${this.base}${p}`, { headers: this.token === undefined ? {} : { Authorization: `Bearer ${this.token}` } });
    return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
  }
}
