/**
 * The renderer of insert offers: the `%distill search` widgets display one under
 * each result (a comm callback cannot create a cell, jupyterlab#8893). It draws an
 * Insert button and nothing else happens until a person clicks it: then it fetches
 * the snippet from the server API and inserts the server's marker + code, with the
 * server's provenance record, below the cell holding the output, like the panel's
 * Insert below. The offer itself (kernel output, which any code can forge) names a
 * snippet id and a revision only; see `requests.ts`.
 */

import type { IRenderMime } from '@jupyterlab/rendermime';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { insertLibraryCell } from './cells';
import { CodeDistillerClient } from './client';
import { asInsertOffer, IInsertOffer, INSERT_MIME_TYPE, verdict } from './requests';

/** Ahead of text/plain (and every standard renderer) in a bundle holding an offer. */
export const INSERT_REQUEST_RANK = 20;

const RENDERER_CLASS = 'jp-codedistiller-insert';

/**
 * The renderer factory for insert offers. Not `safe`: an untrusted output (a
 * notebook file not trusted here) never gets this renderer, only its text.
 */
export function insertRequestRenderers(
  tracker: INotebookTracker,
  client: CodeDistillerClient
): IRenderMime.IRendererFactory {
  return {
    safe: false,
    mimeTypes: [INSERT_MIME_TYPE],
    defaultRank: INSERT_REQUEST_RANK,
    createRenderer: options => new InsertOfferRenderer(options, tracker, client)
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

class InsertOfferRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    options: IRenderMime.IRendererOptions,
    private readonly tracker: INotebookTracker,
    private readonly client: CodeDistillerClient
  ) {
    super();
    this.mimeType = options.mimeType;
    this.addClass(RENDERER_CLASS);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const offer = asInsertOffer(model.data[this.mimeType]);
    const text = model.data['text/plain'];
    this.node.replaceChildren();
    delete this.node.dataset.snippetId;
    this.offer = offer;
    if (!offer) {
      // not an offer this extension makes: its text, as text, and no button
      this.node.classList.add('jp-RenderedText');
      this.node.appendChild(this.pre(typeof text === 'string' ? text : ''));
      this.node.dataset.codedistillerInsert = 'ignored';
      return;
    }
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-Button jp-mod-styled jp-mod-accept jp-codedistiller-insert-button';
    button.textContent = 'Insert below';
    button.title = `Insert snippet ${offer.snippet_id} revision ${offer.revision} from the library below`;
    button.addEventListener('click', event => {
      // A person's click only: a synthetic event from a script on the page inserts nothing.
      if (event.isTrusted) {
        void this.insert(offer, button);
      }
    });
    this.status = document.createElement('span');
    this.status.className = 'jp-codedistiller-insert-status';
    this.node.append(button, this.status);
    this.node.dataset.codedistillerInsert = 'offered';
    this.node.dataset.snippetId = offer.snippet_id;
  }

  private async insert(offer: IInsertOffer, button: HTMLButtonElement): Promise<void> {
    if (offer !== this.offer || button.disabled) {
      return;
    }
    button.disabled = true;
    this.say('Fetching it from the library…', 'fetching');
    try {
      const detail = await this.client.snippet(offer.snippet_id);
      const decision = verdict(offer, detail);
      if (!decision.insert) {
        this.say(`Not inserted: ${decision.reason}`, 'refused');
        return;
      }
      const where = target(this.node, this.tracker);
      const problem = where
        ? await insertLibraryCell(where.panel, decision.source, decision.metadata, where.after)
        : 'Open a notebook first: the snippet goes below its active cell.';
      if (problem) {
        this.say(`Not inserted: ${problem}`, 'refused');
        return;
      }
      const warnings = decision.warnings.map(w => ` Warning: ${w}`).join('');
      const title = detail.headline?.title || detail.title || detail.id;
      this.say(`Inserted below: ${title}.${warnings}`, 'inserted');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.say(`Not inserted: ${message}`, 'refused');
    } finally {
      button.disabled = false;
    }
  }

  private pre(text: string): HTMLElement {
    const pre = document.createElement('pre');
    pre.textContent = text;
    return pre;
  }

  /** Show `text` (as text, never markup); `state` marks what happened for styles and tests. */
  private say(text: string, state: string): void {
    if (this.status) {
      this.status.textContent = text;
    }
    this.node.dataset.codedistillerInsert = state;
  }

  private readonly mimeType: string;
  private offer: IInsertOffer | null = null;
  private status: HTMLElement | null = null;
}
