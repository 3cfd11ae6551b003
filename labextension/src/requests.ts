/**
 * Insert requests: what the `%distill search` widgets' Insert button displays
 * (jupyter_codedistiller/widgets.py `insert_request`) for this extension to turn
 * into a new cell, and the rule deciding when a request is acted on.
 *
 * A request is acted on once (its nonce is remembered) and only while fresh,
 * so re-rendering an output, opening a second view or reopening a saved
 * notebook never inserts again. Nothing here touches the DOM or JupyterLab.
 */

/** The MIME type of an insert request. */
export const INSERT_MIME_TYPE = 'application/vnd.codedistiller.insert+json';

/** How many seconds a request stays fresh, either side of the browser's clock. */
export const FRESH_SECONDS = 60;

export interface IInsertRequest {
  /** The cell text: provenance marker line and code. */
  source: string;
  /** The provenance record for the cell's `metadata.codedistiller`. */
  metadata: Record<string, unknown>;
  /** Unique per click. */
  nonce: string;
  /** When the kernel made the request, in seconds since the epoch. */
  created: number;
  snippet_id: string;
  title: string;
}

/** The request in a bundle's JSON, or null when it does not have the expected shape. */
export function asInsertRequest(data: unknown): IInsertRequest | null {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    return null;
  }
  const d = data as Record<string, unknown>;
  const { source, metadata, nonce, created } = d;
  if (
    typeof source !== 'string' ||
    !metadata ||
    typeof metadata !== 'object' ||
    Array.isArray(metadata) ||
    typeof nonce !== 'string' ||
    !nonce ||
    typeof created !== 'number' ||
    !Number.isFinite(created)
  ) {
    return null;
  }
  const snippetId = typeof d.snippet_id === 'string' ? d.snippet_id : '';
  const title = typeof d.title === 'string' && d.title ? d.title : snippetId;
  return {
    source,
    metadata: metadata as Record<string, unknown>,
    nonce,
    created,
    snippet_id: snippetId,
    title
  };
}

/**
 * What to do with a request: `insert` it, or it was `inserted` already
 * (here or in another tab), or it is `stale` (made too long ago, or dated
 * in the future) and must never insert.
 */
export type InsertDecision = 'insert' | 'inserted' | 'stale';

/** The part of the Web Storage API the ledger uses (`window.localStorage`). */
export interface INonceStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * The nonces of the requests acted on, in memory and, when a store is given,
 * in that store too, so a page reload within the fresh window does not insert
 * again. Entries too old to be fresh are dropped: the freshness rule covers them.
 */
export class InsertLedger {
  constructor(
    private readonly store: INonceStore | null = null,
    private readonly key = 'codedistiller:inserted-requests'
  ) {}

  /** What to do with `request` at `now` (seconds since the epoch). */
  decide(request: IInsertRequest, now: number): InsertDecision {
    if (this.seen.has(request.nonce) || request.nonce in this.load(now)) {
      return 'inserted';
    }
    return Math.abs(now - request.created) <= FRESH_SECONDS ? 'insert' : 'stale';
  }

  /** Whether the caller should insert `request` now; true at most once per nonce. */
  claim(request: IInsertRequest, now: number): boolean {
    if (this.decide(request, now) !== 'insert') {
      return false;
    }
    this.seen.add(request.nonce);
    const kept = this.load(now);
    kept[request.nonce] = request.created;
    this.save(kept);
    return true;
  }

  private load(now: number): Record<string, number> {
    const kept: Record<string, number> = {};
    if (!this.store) {
      return kept;
    }
    try {
      const stored: unknown = JSON.parse(this.store.getItem(this.key) ?? '{}');
      if (stored && typeof stored === 'object' && !Array.isArray(stored)) {
        for (const [nonce, created] of Object.entries(stored)) {
          if (typeof created === 'number' && now - created <= 2 * FRESH_SECONDS) {
            kept[nonce] = created;
          }
        }
      }
    } catch {
      // unreadable or blocked storage: memory alone still guards this page
    }
    return kept;
  }

  private save(kept: Record<string, number>): void {
    if (!this.store) {
      return;
    }
    try {
      this.store.setItem(this.key, JSON.stringify(kept));
    } catch {
      // a full or blocked storage: memory alone still guards this page
    }
  }

  private readonly seen = new Set<string>();
}
