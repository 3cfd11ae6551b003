/**
 * The pure functions that turn the server API's JSON into what the panel shows. The JSON's
 * types are generated from the Python declarations into records.ts (do not edit that file).
 *
 * Nothing here touches the DOM or JupyterLab, so it runs under `node --test`.
 */

import type {
  FlagKind,
  IBuilding,
  IOutput,
  IProgressEntry,
  ISearchAnswer,
  ISnippetDetail,
  ISnippetView,
  ISource,
  IStatus
} from './records';
import { FlagKindValues } from './records';

/** The note shown above results while the library is still being built, or empty. */
export function buildingNote(building: IBuilding | null | undefined): string {
  if (!building) {
    return '';
  }
  return (
    `The library is still being built: ${building.snippets} snippets so far, ` +
    `${building.validated} validated, ${building.pending} waiting; results will grow.`
  );
}

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

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// The steps a ProgressEntry holds (model.ProgressEntry): resting ones, and the words of the others.
const RESTING = new Set(['idle', 'sleeping', 'done', 'stopped']);
const DOING: Record<string, string> = {
  fetch: 'Fetching',
  extract: 'Reading',
  store: 'Saving',
  validate: 'Validating',
  defaults: 'Adding the default packages',
  start: 'Starting an update of'
};

/**
 * One progress entry written by a long job (the distiller's `refresh`, the background
 * daemon) in plain words: `Validating lifelines examples: 120 of 212`; empty when resting.
 */
export function progressText(entry: IProgressEntry): string {
  const step = entry.step;
  if (!step || RESTING.has(step)) {
    return '';
  }
  const source = entry.source ?? '';
  const { done, total } = entry;
  const verb = DOING[step] ?? step.charAt(0).toUpperCase() + step.slice(1);
  let phrase = verb;
  if (step === 'defaults') {
    phrase = verb;
  } else if (step === 'start') {
    phrase = `${verb} ${plural(total, 'source')}`;
  } else if (source) {
    phrase += step === 'fetch' ? ` ${source}` : ` ${source} ${step === 'extract' ? 'files' : 'examples'}`;
  } else {
    phrase += ' examples';
  }
  if (step !== 'start' && total > 0) {
    phrase += `: ${done} of ${total}`;
  }
  return phrase;
}

/**
 * What the background work is doing, as one line: the refresh's own entry when it is
 * active, else the daemon's; "Library up to date" when all rest, and a plain warning
 * when the process that published it is gone.
 */
export function activityText(progress: Record<string, IProgressEntry>): string {
  const entries = ['distiller', 'daemon', ...Object.keys(progress || {}).sort()]
    .filter((k, i, all) => all.indexOf(k) === i && progress && progress[k])
    .map(k => progress[k]);
  for (const entry of entries) {
    const phrase = progressText(entry);
    if (phrase) {
      return entry.alive === false ? `Stopped while ${phrase.charAt(0).toLowerCase()}${phrase.slice(1)}` : phrase;
    }
  }
  const daemon = progress?.daemon;
  if (daemon && daemon.alive === false) {
    return 'Background updates are not running';
  }
  return entries.length ? 'Library up to date' : 'Library idle';
}

/** The panel's status line: library size, flags, a refresh started here, and the activity. */
export function statusLine(status: IStatus): string {
  const parts = [plural(status.snippets, 'snippet')];
  if (status.flagged) {
    parts.push(`${status.flagged} flagged`);
  }
  const job = status.refresh;
  if (job && job.state === 'failed') {
    parts.push(`the last update failed (exit code ${job.exit_code})`);
  }
  const activity = activityText(status.progress || {});
  parts.push(job && job.state === 'running' && activity === 'Library up to date' ? 'Updating…' : activity);
  return parts.join(' · ');
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

/** What an empty result list says, so a person knows what to try next. */
export function emptyState(query: string, filters: ISearchFilters, building: IBuilding | null | undefined): string[] {
  const lines: string[] = [];
  if (building) {
    lines.push(buildingNote(building));
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

/** Why inserting this snippet needs a second thought, or null when it passed validation. */
export function validationCaution(s: ISnippetView): string | null {
  const v = s.validation;
  if (v.status === 'passed') {
    return null;
  }
  const why = v.reason ? ` (${v.reason})` : '';
  const state: Record<string, string> = {
    failed: 'failed when it was run',
    timeout: 'ran out of time when it was run',
    skipped: 'was not run',
    stale: 'passed, but with package versions that have changed since',
    pending: 'has not been run yet'
  };
  return `This code has not passed validation: it ${state[v.status] ?? v.status}${why}.`;
}

/** Lines range of a source, e.g. `#L10-L42`, or empty. */
export function lineRange(source: ISource): string {
  if (!source.line_start) {
    return '';
  }
  const end =
    source.line_end && source.line_end !== source.line_start
      ? `-L${source.line_end}`
      : '';
  return `#L${source.line_start}${end}`;
}

/** The provenance of a snippet as label/value rows (the panel's "Why"). */
export function provenanceRows(s: ISnippetView): Array<[string, string]> {
  const src = s.source;
  const rows: Array<[string, string]> = [
    ['snippet', `${s.id} revision ${s.revision} (${s.lifecycle})`],
    ['source', `${src.kind} ${src.repository || src.url}`.trim()]
  ];
  if (src.commit) {
    rows.push(['commit', src.commit]);
  }
  if (src.package) {
    rows.push(['package', `${src.package} ${src.version ?? ''}`.trim()]);
  }
  rows.push(['file', `${src.path}${lineRange(src)}`]);
  rows.push(['license', src.license || 'unknown']);
  let made = s.origin.kind;
  if (s.origin.model) {
    made += ` by ${s.origin.model}`;
  }
  rows.push(['made', made]);
  const v = s.validation;
  let validation = v.status;
  if (v.reason) {
    validation += ` (${v.reason})`;
  }
  if (v.when) {
    validation += ` on ${v.when}`;
  }
  if (v.python_version) {
    validation += `, Python ${v.python_version}`;
  }
  if (v.isolation) {
    validation += `, sandbox ${v.isolation}`;
  }
  rows.push(['validation', validation]);
  rows.push(['review', s.review.status]);
  for (const e of s.review.history) {
    rows.push([
      '',
      `${e.when} ${e.status} rev ${e.revision} by ${e.by}${e.note ? `: ${e.note}` : ''}`
    ]);
  }
  const open = s.flags.filter(f => !f.resolved);
  rows.push(['flags', `${open.length} open, ${s.flags.length} in all`]);
  for (const f of s.flags) {
    const state = f.resolved ? `resolved by ${f.resolved_by}` : 'open';
    rows.push(['', `#${f.id} [${f.kind}] ${f.reason} by ${f.by} (${state})`]);
  }
  return rows;
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
