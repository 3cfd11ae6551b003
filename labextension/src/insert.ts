/**
 * The renderer of insert requests: the `%distill search` widgets' Insert button
 * displays one in the results' Output area (a comm callback cannot create a cell,
 * jupyterlab#8893), and rendering a fresh, unseen one inserts the cell below the
 * cell holding the output, like the panel's Insert below.
 */

import type { IRenderMime } from '@jupyterlab/rendermime';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { insertLibraryCell } from './cells';
import {
  asInsertRequest,
  IInsertRequest,
  INonceStore,
  INSERT_MIME_TYPE,
  InsertLedger
} from './requests';

/** Ahead of text/plain (and every standard renderer) in a bundle holding a request. */
export const INSERT_REQUEST_RANK = 20;

const RENDERER_CLASS = 'jp-codedistiller-insert';

function nowSeconds(): number {
  return Date.now() / 1000;
}

function browserStore(): INonceStore | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

/**
 * The renderer factory for insert requests. Not `safe`: an untrusted output (a
 * notebook file not trusted here) never gets this renderer, only its text.
 */
export function insertRequestRenderers(
  tracker: INotebookTracker,
  ledger = new InsertLedger(browserStore())
): IRenderMime.IRendererFactory {
  return {
    safe: false,
    mimeTypes: [INSERT_MIME_TYPE],
    defaultRank: INSERT_REQUEST_RANK,
    createRenderer: options => new InsertRequestRenderer(options, tracker, ledger)
  };
}

/** The notebook holding `node` and the index of its cell, else the current notebook. */
function target(
  node: HTMLElement,
  tracker: INotebookTracker
): { panel: NotebookPanel; after?: number } | null {
  const holder = tracker.find(panel => panel.node.contains(node));
  if (holder) {
    const after = holder.content.widgets.findIndex(cell => cell.node.contains(node));
    return after >= 0 ? { panel: holder, after } : { panel: holder };
  }
  return tracker.currentWidget ? { panel: tracker.currentWidget } : null;
}

class InsertRequestRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    options: IRenderMime.IRendererOptions,
    private readonly tracker: INotebookTracker,
    private readonly ledger: InsertLedger
  ) {
    super();
    this.mimeType = options.mimeType;
    this.addClass(RENDERER_CLASS);
    this.addClass('jp-RenderedText');
    this.node.dataset.mimeType = 'text/plain';
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const request = asInsertRequest(model.data[this.mimeType]);
    const text = model.data['text/plain'];
    this.fallback = typeof text === 'string' ? text : (request?.source ?? '');
    this.pending = null;
    if (!request) {
      this.say(this.fallback);
      return;
    }
    switch (this.ledger.decide(request, nowSeconds())) {
      case 'inserted':
        this.say(`Inserted below: ${request.title}`, 'inserted');
        return;
      case 'stale':
        this.say(this.fallback);
        return;
    }
    this.say(`Inserting below: ${request.title}…`);
    this.pending = request;
    // The output area attaches a renderer after rendering starts; the cell is found then.
    if (this.isAttached) {
      await this.insertPending();
    }
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    void this.insertPending();
  }

  private async insertPending(): Promise<void> {
    const request = this.pending;
    this.pending = null;
    if (!request) {
      return;
    }
    if (!this.ledger.claim(request, nowSeconds())) {
      // inserted meanwhile by another view of this output, or attached too late
      if (this.ledger.decide(request, nowSeconds()) === 'inserted') {
        this.say(`Inserted below: ${request.title}`, 'inserted');
      } else {
        this.say(this.fallback);
      }
      return;
    }
    const where = target(this.node, this.tracker);
    const problem = where
      ? await insertLibraryCell(where.panel, request.source, request.metadata, where.after)
      : 'Open a notebook first: the snippet goes below its active cell.';
    if (problem) {
      this.say(`${problem}\n\n${this.fallback}`);
    } else {
      this.say(`Inserted below: ${request.title}`, 'inserted');
    }
  }

  /** Show `text` (as text, never markup); `state` marks what happened for styles and tests. */
  private say(text: string, state = ''): void {
    const pre = document.createElement('pre');
    pre.textContent = text;
    this.node.replaceChildren(pre);
    if (state) {
      this.node.dataset.codedistillerInsert = state;
    } else {
      delete this.node.dataset.codedistillerInsert;
    }
  }

  private readonly mimeType: string;
  private fallback = '';
  private pending: IInsertRequest | null = null;
}
