/**
 * The pure functions that turn the server API's JSON into what the panel shows. The JSON's
 * types are generated from the Python declarations into records.ts (do not edit that file).
 * The phrases a person reads (provenance rows, history, status line, building and validation
 * notes) come finished from the server (Python's textview.py): nothing here rewords them.
 *
 * Nothing here touches the DOM or JupyterLab, so it runs under `node --test`.
 */

import type { FlagKind, IOutput, ISearchAnswer, ISnippetDetail, ISnippetView } from './records';
import { FlagKindValues } from './records';

/** What the person narrowed the search to. */
export interface ISearchFilters {
  package?: string;
  validatedOnly?: boolean;
  reviewedOnly?: boolean;
}

export const FLAG_KINDS: readonly FlagKind[] = FlagKindValues;

/** The cell metadata key holding the provenance record of an inserted snippet. */
export const METADATA_KEY = 'codedistiller';

/** The query string of `GET search` for a query, filters and page. */
export function searchQuery(
  query: string,
  filters: ISearchFilters,
  limit: number,
  offset = 0
): string {
  const params = new URLSearchParams();
  params.set('q', query.trim());
  params.set('limit', String(limit));
  if (offset > 0) {
    params.set('offset', String(offset));
  }
  const pkg = (filters.package ?? '').trim();
  if (pkg) {
    params.set('package', pkg);
  }
  if (filters.validatedOnly) {
    params.set('validation', 'passed');
  }
  if (filters.reviewedOnly) {
    params.set('review', 'approved');
  }
  return params.toString();
}

/** The figures a snippet's validation drew, in order (only well-formed digests). */
export function figures(s: ISnippetView): IOutput[] {
  return (s.validation.outputs ?? []).filter(
    o => o.kind === 'figure' && typeof o.sha256 === 'string' && /^[0-9a-f]{64}$/.test(o.sha256)
  );
}

/** The API path of a figure (`GET figures/{sha256}`), or null for anything but a digest. */
export function figurePath(sha256: string | null | undefined): string | null {
  return typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256) ? `figures/${sha256}` : null;
}

/** Title, API name and summary as the server words them (older servers: the raw fields). */
export function headlineOf(s: ISnippetView): { title: string; api: string; summary: string } {
  const h = s.headline;
  return {
    title: (h && h.title) || s.title || '(untitled)',
    api: (h && h.api) || '',
    summary: h ? h.summary : s.summary
  };
}

/** The first `lines` lines of the code, for a card's preview. */
export function codePreview(code: string, lines = 3): string {
  return code.replace(/\s+$/, '').split('\n').slice(0, lines).join('\n');
}

/**
 * What an empty result list says, so a person knows what to try next; `buildingNote` is the
 * server's sentence (`building_note`) when the library is still being built.
 */
export function emptyState(query: string, filters: ISearchFilters, buildingNote: string | null | undefined): string[] {
  const lines: string[] = [];
  if (buildingNote) {
    lines.push(buildingNote);
  }
  if (query.trim()) {
    lines.push(`Nothing matches “${query.trim()}”.`);
    if (filters.package?.trim() || filters.validatedOnly || filters.reviewedOnly) {
      lines.push('Clear the package or the “validated” / “reviewed” filters.');
    }
    lines.push('Try fewer or more general words: a method (“kaplan meier”), a package (“lifelines”) or a task (“differential expression”).');
  } else {
    lines.push('Type what you want to do, for example “kaplan meier by group”, “cox regression” or “leiden clustering”.');
  }
  return lines;
}

/** A link safe to put in an anchor's href: only http(s) URLs, else null. */
export function safeLink(link: string | null | undefined): string | null {
  if (!link) {
    return null;
  }
  try {
    const url = new URL(link);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
  } catch {
    return null;
  }
}

/** The provenance record of a cell inserted from the library, or null. */
export function libraryRecord(
  metadata: unknown
): { id: string; revision: number } | null {
  if (!metadata || typeof metadata !== 'object') {
    return null;
  }
  const record = (metadata as Record<string, unknown>)[METADATA_KEY];
  if (!record || typeof record !== 'object') {
    return null;
  }
  const { id, revision } = record as Record<string, unknown>;
  if (typeof id !== 'string' || !id) {
    return null;
  }
  return { id, revision: typeof revision === 'number' ? revision : 0 };
}

/** The words of the small badge shown on a cell inserted from the library. */
export function cellBadgeText(record: { id: string; revision: number }): string {
  return `library ${record.id}${record.revision ? ` rev ${record.revision}` : ''}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return !!value && typeof value === 'object' && !Array.isArray(value);
}

/** Check the shape of a `GET search` answer; throws on anything else. */
export function asSearchResponse(data: unknown): ISearchAnswer {
  if (!isObject(data) || !Array.isArray(data.results)) {
    throw new Error('unexpected search answer: no results list');
  }
  for (const r of data.results) {
    if (!isObject(r) || typeof r.id !== 'string' || typeof r.code !== 'string') {
      throw new Error('unexpected search answer: a result has no id or code');
    }
    if (!Array.isArray(r.badges)) {
      throw new Error('unexpected search answer: a result has no badges');
    }
  }
  return data as unknown as ISearchAnswer;
}

/** Check the shape of a `GET snippets/{id}` answer; throws on anything else. */
export function asSnippetDetail(data: unknown): ISnippetDetail {
  if (
    !isObject(data) ||
    typeof data.id !== 'string' ||
    typeof data.cell_source !== 'string' ||
    !isObject(data.cell_metadata)
  ) {
    throw new Error('unexpected snippet answer: no cell source or cell metadata');
  }
  return data as unknown as ISnippetDetail;
}
