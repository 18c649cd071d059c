/** The master's public API, as the dashboard calls it: every request carries the X-API-Key header. */
import type { InfoView, InstanceView, TcpingView } from '../../src/master/schemas.js';

export type Instance = InstanceView;
export type Info = InfoView;
export type Tcping = TcpingView;
/** `PATCH /instances/{id}` (the master's PatchBody; spelled out because its action union does not infer). */
export interface Patch {
  alias?: string;
  action?: 'start' | 'stop' | 'restart' | 'reset';
  restart?: boolean;
  meta?: { peer?: { sid?: string; type?: string; alias?: string }; tags?: Record<string, string> };
}

/** A non-2xx answer: the status and the master's `{"error"}` message. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The API-key instance: its `url` is the key, its alias the master's alias. */
export const API_KEY_ID = '********';

export class ApiClient {
  constructor(
    /** e.g. `/api/v1` (same origin as the page) */
    readonly base: string,
    public key: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { 'X-API-Key': this.key };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ?? AbortSignal.timeout(15_000),
        cache: 'no-store',
      });
    } catch (err) {
      throw new ApiError(0, `The master did not answer (${(err as Error).message})`);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const message =
        parsed && typeof parsed === 'object' && typeof (parsed as { error?: unknown }).error === 'string'
          ? (parsed as { error: string }).error
          : `HTTP ${res.status}`;
      throw new ApiError(res.status, message);
    }
    return parsed as T;
  }

  instances(): Promise<Instance[]> {
    return this.request('GET', '/instances');
  }
  create(url: string, alias: string): Promise<Instance> {
    return this.request('POST', '/instances', alias === '' ? { url } : { url, alias });
  }
  patch(id: string, body: Patch): Promise<Instance> {
    return this.request('PATCH', `/instances/${encodeURIComponent(id)}`, body);
  }
  replaceUrl(id: string, url: string): Promise<Instance> {
    return this.request('PUT', `/instances/${encodeURIComponent(id)}`, { url });
  }
  remove(id: string): Promise<void> {
    return this.request('DELETE', `/instances/${encodeURIComponent(id)}`);
  }
  info(): Promise<Info> {
    return this.request('GET', '/info');
  }
  setAlias(alias: string): Promise<Info> {
    return this.request('POST', '/info', { alias });
  }
  tcping(target: string): Promise<Tcping> {
    return this.request('GET', `/tcping?target=${encodeURIComponent(target)}`);
  }
}
