/**
 * The client of the server API under `/codedistiller/api/`.
 *
 * It is given a `Fetcher` that knows the server (base URL, token, XSRF): the
 * extension passes JupyterLab's `ServerConnection.makeRequest`, the unit
 * tests a recording fake. Every failed call rejects with an `ApiError`
 * carrying the server's one-line message.
 */

import { asSearchResponse, asSnippetDetail, figurePath, ISearchFilters, searchQuery } from './models';
import type {
  FlagKind,
  IFlagAnswer,
  IFlagBody,
  IRefreshAnswer,
  IRefreshBody,
  IResolveBody,
  IReviewAnswer,
  IReviewBody,
  ISearchAnswer,
  ISnippetDetail,
  IStatus
} from './records';

/** Sends one request to `path` (relative to the API root, query string included). */
export type Fetcher = (path: string, init: RequestInit) => Promise<Response>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export class CodeDistillerClient {
  constructor(private readonly fetcher: Fetcher) {}

  search(
    query: string,
    filters: ISearchFilters = {},
    limit = 20,
    offset = 0
  ): Promise<ISearchAnswer> {
    const qs = searchQuery(query, filters, limit, offset);
    return this.request('GET', `search?${qs}`).then(asSearchResponse);
  }

  snippet(id: string): Promise<ISnippetDetail> {
    return this.request('GET', `snippets/${encodeURIComponent(id)}`).then(
      asSnippetDetail
    );
  }

  /** Raise a flag; the server records the signed-in Jupyter user as who raised it. */
  flag(id: string, kind: FlagKind, reason: string): Promise<IFlagAnswer> {
    const body: IFlagBody = { kind, reason };
    return this.request('POST', `snippets/${encodeURIComponent(id)}/flags`, body);
  }

  resolveFlag(id: string, flagId: number, note = ''): Promise<IFlagAnswer> {
    const body: IResolveBody = { note };
    return this.request('POST', `snippets/${encodeURIComponent(id)}/flags/${flagId}/resolve`, body);
  }

  review(
    id: string,
    status: 'approved' | 'rejected',
    note = '',
    revision?: number
  ): Promise<IReviewAnswer> {
    const body: IReviewBody = { status, note };
    if (revision !== undefined) {
      body.revision = revision;
    }
    return this.request('POST', `snippets/${encodeURIComponent(id)}/reviews`, body);
  }

  /** A figure a validation drew (`GET figures/{sha256}`), as a PNG blob. */
  async figure(sha256: string): Promise<Blob> {
    const path = figurePath(sha256);
    if (!path) {
      throw new ApiError(400, 'not a figure id');
    }
    let response: Response;
    try {
      response = await this.fetcher(path, { method: 'GET' });
    } catch (err) {
      throw new ApiError(0, `cannot reach the Jupyter server: ${String(err)}`);
    }
    if (!response.ok) {
      throw new ApiError(response.status, `${response.status} ${response.statusText}`.trim());
    }
    return response.blob();
  }

  status(): Promise<IStatus> {
    return this.request('GET', 'status');
  }

  refresh(sources: string[] = []): Promise<IRefreshAnswer> {
    const body: IRefreshBody = sources.length ? { sources } : {};
    return this.request('POST', 'refresh', body);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await this.fetcher(path, init);
    } catch (err) {
      throw new ApiError(0, `cannot reach the Jupyter server: ${String(err)}`);
    }
    const text = await response.text();
    let data: unknown = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const message =
        data && typeof (data as { message?: unknown }).message === 'string'
          ? (data as { message: string }).message
          : `${response.status} ${response.statusText}`.trim();
      throw new ApiError(response.status, message);
    }
    if (data === null) {
      throw new ApiError(response.status, 'the server answered with no JSON');
    }
    return data as T;
  }
}
