/**
 * Insert offers: what the `%distill search` widgets display under each result
 * (jupyter_codedistiller/widgets.py `insert_request`) for this extension to
 * render as an Insert button, and the rule deciding what a click inserts.
 *
 * Kernel output is never trusted for content: any code in the kernel can
 * display this MIME type. An offer names a snippet id and a revision and
 * nothing else; a click fetches the cell (marker, code, metadata) from the
 * authenticated server API and inserts that, and only if the server still
 * holds that very revision and nothing blocks it. Rendering inserts nothing.
 * Nothing here touches the DOM or JupyterLab.
 */

import type { ISnippetDetail } from './records';

/** The MIME type of an insert offer. */
export const INSERT_MIME_TYPE = 'application/vnd.codedistiller.insert+json';

/** What the server's snippet ids look like (server/handlers.py SNIPPET_ID). */
const SNIPPET_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/;

export interface IInsertOffer {
  snippet_id: string;
  revision: number;
}

/**
 * The offer in a bundle's JSON, or null unless it is exactly `{snippet_id, revision}`
 * with a well-formed id and a whole revision of at least 1. Anything more (a cell
 * source, a metadata record, a title) is refused: the server alone says what a cell holds.
 */
export function asInsertOffer(data: unknown): IInsertOffer | null {
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    return null;
  }
  const d = data as Record<string, unknown>;
  const keys = Object.keys(d).sort();
  if (keys.length !== 2 || keys[0] !== 'revision' || keys[1] !== 'snippet_id') {
    return null;
  }
  const { snippet_id: id, revision } = d;
  if (typeof id !== 'string' || !SNIPPET_ID.test(id)) {
    return null;
  }
  if (typeof revision !== 'number' || !Number.isInteger(revision) || revision < 1) {
    return null;
  }
  return { snippet_id: id, revision };
}

/** What a click on an offer does with the server's answer. */
export type InsertVerdict =
  | { insert: true; source: string; metadata: Record<string, unknown>; warnings: string[] }
  | { insert: false; reason: string };

/**
 * Whether to insert `detail` (the server's `GET snippets/{id}`) for `offer`: only the
 * snippet named (not one its id is a prefix of), only the revision offered, only when
 * the team policy does not block it; the cell is the server's source and metadata.
 */
export function verdict(offer: IInsertOffer, detail: ISnippetDetail): InsertVerdict {
  const id = offer.snippet_id;
  if (detail.id !== id) {
    return { insert: false, reason: `the library holds no snippet ${id}.` };
  }
  if (detail.revision !== offer.revision) {
    return {
      insert: false,
      reason:
        `revision ${offer.revision} of ${id} is gone (the library now holds revision ` +
        `${detail.revision}); search again to see what changed.`
    };
  }
  const blockers = Array.isArray(detail.insert_blockers) ? detail.insert_blockers : [];
  if (blockers.length) {
    return {
      insert: false,
      reason: `${blockers.join('; ')}. Run  %distill insert ${id} --force  to insert it anyway.`
    };
  }
  return {
    insert: true,
    source: detail.cell_source,
    metadata: detail.cell_metadata,
    warnings: Array.isArray(detail.insert_warnings) ? detail.insert_warnings : []
  };
}
