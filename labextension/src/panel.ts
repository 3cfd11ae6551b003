/**
 * The left-sidebar panel: search as you type, filters, results with badges,
 * highlighted code, and per result Insert below / Copy / Why / Flag / Approve / Reject.
 *
 * Every string that comes from the library (and so from repositories) is put
 * into the page with `textContent` or text nodes, never as HTML.
 */

import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { Widget } from '@lumino/widgets';

import { ApiError, CodeDistillerClient } from './client';
import {
  buildingNote,
  FLAG_KINDS,
  FlagKind,
  IBadge,
  ISearchFilters,
  ISearchResult,
  ISnippet,
  ISnippetDetail,
  IStatus,
  provenanceRows,
  safeLink,
  statusLine
} from './models';

/** The user settings the panel follows (schema/plugin.json). */
export interface IPanelSettings {
  debounceMs: number;
  resultLimit: number;
  validatedOnly: boolean;
  reviewedOnly: boolean;
  statusIntervalSeconds: number;
}

export const DEFAULT_SETTINGS: IPanelSettings = {
  debounceMs: 250,
  resultLimit: 20,
  validatedOnly: false,
  reviewedOnly: false,
  statusIntervalSeconds: 15
};

export interface IPanelOptions {
  client: CodeDistillerClient;
  languages: IEditorLanguageRegistry | null;
  /** Put the snippet below the active cell of the current notebook; a message on failure. */
  insert: (detail: ISnippetDetail) => Promise<string | null>;
}

const LEVELS = new Set(['good', 'info', 'warn', 'bad']);
const KINDS = new Set(['validation', 'review', 'origin', 'flags', 'lifecycle']);

/** An element with a class and text, built without HTML parsing. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', 'jp-codedistiller-action', label);
  b.type = 'button';
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

/** The badges of a snippet as small labelled spans. */
export function badgeNodes(badges: IBadge[]): HTMLElement {
  const row = el('div', 'jp-codedistiller-badges');
  for (const b of badges) {
    const level = LEVELS.has(b.level) ? b.level : 'info';
    const kind = KINDS.has(b.kind) ? b.kind : 'other';
    const span = el(
      'span',
      `jp-codedistiller-badge jp-codedistiller-badge-${level} jp-codedistiller-badge-${kind}`,
      b.label
    );
    span.dataset.kind = kind;
    row.appendChild(span);
  }
  return row;
}

/** A text-only dialog body. */
class TextBody extends Widget {
  constructor(lines: string[]) {
    super();
    for (const line of lines) {
      this.node.appendChild(el('p', '', line));
    }
  }
}

/** The Flag dialog: a kind and a reason. */
export class FlagForm extends Widget implements Dialog.IBodyWidget<{ kind: FlagKind; reason: string }> {
  private kind = el('select', 'jp-mod-styled jp-codedistiller-flag-kind');
  private reason = el('textarea', 'jp-mod-styled jp-codedistiller-flag-reason');

  constructor(title: string) {
    super();
    this.addClass('jp-codedistiller-form');
    this.node.appendChild(el('p', '', `Flag “${title}” as doubtful.`));
    const kindLabel = el('label', '', 'Kind ');
    for (const k of FLAG_KINDS) {
      const option = el('option', '', k);
      option.value = k;
      this.kind.appendChild(option);
    }
    kindLabel.appendChild(this.kind);
    this.node.appendChild(kindLabel);
    const reasonLabel = el('label', '', 'Reason');
    this.reason.rows = 3;
    this.reason.placeholder = 'What is wrong with it?';
    reasonLabel.appendChild(this.reason);
    this.node.appendChild(reasonLabel);
  }

  getValue(): { kind: FlagKind; reason: string } {
    return { kind: this.kind.value as FlagKind, reason: this.reason.value };
  }
}

/** The review dialog: an optional note. */
class NoteForm extends Widget implements Dialog.IBodyWidget<string> {
  private note = el('textarea', 'jp-mod-styled jp-codedistiller-review-note');

  constructor(question: string) {
    super();
    this.addClass('jp-codedistiller-form');
    this.node.appendChild(el('p', '', question));
    this.note.rows = 3;
    this.note.placeholder = 'Note for the record (optional)';
    this.node.appendChild(this.note);
  }

  getValue(): string {
    return this.note.value;
  }
}

export class CodeDistillerPanel extends Widget {
  private settings: IPanelSettings = { ...DEFAULT_SETTINGS };
  private readonly input = el('input', 'jp-mod-styled jp-codedistiller-search');
  private readonly packageInput = el('input', 'jp-mod-styled jp-codedistiller-package');
  private readonly validatedBox = el('input', 'jp-codedistiller-validated');
  private readonly reviewedBox = el('input', 'jp-codedistiller-reviewed');
  private readonly statusNode = el('div', 'jp-codedistiller-status', 'connecting…');
  private readonly refreshButton: HTMLButtonElement;
  private readonly messageNode = el('div', 'jp-codedistiller-message');
  private readonly list = el('ul', 'jp-codedistiller-results');
  private readonly more = el('button', 'jp-codedistiller-more', 'More results');
  private debounce: number | null = null;
  private poll: number | null = null;
  private sequence = 0;
  private offset = 0;
  private started = false;

  constructor(private readonly options: IPanelOptions) {
    super();
    this.id = 'jp-codedistiller-panel';
    this.addClass('jp-codedistiller-panel');
    this.title.caption = 'Code library';

    const header = el('div', 'jp-codedistiller-header');
    header.appendChild(el('h2', 'jp-codedistiller-heading', 'Code library'));
    this.node.appendChild(header);

    this.input.type = 'search';
    this.input.placeholder = 'Search validated examples…';
    this.input.setAttribute('aria-label', 'Search the code library');
    this.input.addEventListener('input', () => this.scheduleSearch());
    this.input.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.searchNow();
      }
    });
    this.node.appendChild(this.input);

    const filters = el('div', 'jp-codedistiller-filters');
    this.packageInput.type = 'text';
    this.packageInput.placeholder = 'package';
    this.packageInput.setAttribute('aria-label', 'Only snippets from this package');
    this.packageInput.addEventListener('input', () => this.scheduleSearch());
    filters.appendChild(this.packageInput);
    for (const [box, label] of [
      [this.validatedBox, 'validated only'],
      [this.reviewedBox, 'reviewed only']
    ] as Array<[HTMLInputElement, string]>) {
      box.type = 'checkbox';
      box.addEventListener('change', () => this.searchNow());
      const wrap = el('label', 'jp-codedistiller-check');
      wrap.appendChild(box);
      wrap.appendChild(document.createTextNode(` ${label}`));
      filters.appendChild(wrap);
    }
    this.node.appendChild(filters);

    const statusRow = el('div', 'jp-codedistiller-status-row');
    statusRow.appendChild(this.statusNode);
    this.refreshButton = button('Update library', 'Distil new and changed examples from the sources now', () =>
      void this.startRefresh()
    );
    this.refreshButton.hidden = true;
    statusRow.appendChild(this.refreshButton);
    this.node.appendChild(statusRow);
    this.node.appendChild(this.messageNode);
    this.node.appendChild(this.list);
    this.more.type = 'button';
    this.more.hidden = true;
    this.more.addEventListener('click', () => void this.search(true));
    this.node.appendChild(this.more);
  }

  /** Apply user settings (from the settings registry). */
  configure(settings: Partial<IPanelSettings>): void {
    const first = !this.started;
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    if (first) {
      this.validatedBox.checked = this.settings.validatedOnly;
      this.reviewedBox.checked = this.settings.reviewedOnly;
    }
    if (this.isVisible) {
      this.startPolling();
      this.searchNow();
    }
  }

  /** Put the caret in the search box. */
  focusSearch(): void {
    this.input.focus();
    this.input.select();
  }

  get filters(): ISearchFilters {
    return {
      package: this.packageInput.value,
      validatedOnly: this.validatedBox.checked,
      reviewedOnly: this.reviewedBox.checked
    };
  }

  protected onAfterShow(): void {
    if (!this.started) {
      this.started = true;
      this.searchNow();
    }
    this.startPolling();
  }

  protected onBeforeHide(): void {
    this.stopPolling();
  }

  dispose(): void {
    this.stopPolling();
    if (this.debounce !== null) {
      window.clearTimeout(this.debounce);
    }
    super.dispose();
  }

  private startPolling(): void {
    this.stopPolling();
    void this.refreshStatus();
    const seconds = this.settings.statusIntervalSeconds;
    if (seconds > 0) {
      this.poll = window.setInterval(() => void this.refreshStatus(), seconds * 1000);
    }
  }

  private stopPolling(): void {
    if (this.poll !== null) {
      window.clearInterval(this.poll);
      this.poll = null;
    }
  }

  private scheduleSearch(): void {
    if (this.debounce !== null) {
      window.clearTimeout(this.debounce);
    }
    this.debounce = window.setTimeout(() => {
      this.debounce = null;
      void this.search(false);
    }, this.settings.debounceMs);
  }

  private searchNow(): void {
    if (this.debounce !== null) {
      window.clearTimeout(this.debounce);
      this.debounce = null;
    }
    void this.search(false);
  }

  /** Run the search; `more` appends the next page. Answers to older searches are dropped. */
  async search(more = false): Promise<void> {
    const seq = ++this.sequence;
    const limit = this.settings.resultLimit;
    const offset = more ? this.offset : 0;
    this.node.dataset.searching = 'true';
    try {
      const answer = await this.options.client.search(
        this.input.value,
        this.filters,
        limit,
        offset
      );
      if (seq !== this.sequence) {
        return;
      }
      if (!more) {
        this.list.replaceChildren();
      }
      for (const r of answer.results) {
        this.list.appendChild(this.resultNode(r));
      }
      this.offset = offset + answer.results.length;
      this.more.hidden = !answer.has_more;
      if (!more) {
        const note = buildingNote(answer.building);
        const none = answer.results.length ? '' : 'No snippets match.';
        const notice = answer.notice
          ? answer.notice.charAt(0).toUpperCase() + answer.notice.slice(1)
          : none;
        this.say([note, notice].filter(Boolean).join(' '));
      }
      // What the list shows now: lets tests and styles tell a finished search apart.
      this.node.dataset.query = answer.query;
    } catch (err) {
      if (seq === this.sequence) {
        this.say(errorText(err), true);
      }
    } finally {
      if (seq === this.sequence) {
        delete this.node.dataset.searching;
      }
    }
  }

  async refreshStatus(): Promise<void> {
    try {
      const status: IStatus = await this.options.client.status();
      this.statusNode.textContent = statusLine(status);
      this.statusNode.title = status.sources
        .map(s => `${s.id}: ${s.state}${s.last_refresh ? `, refreshed ${s.last_refresh}` : ''}`)
        .join('\n');
      this.refreshButton.hidden = !status.capabilities.refresh;
      this.refreshButton.disabled = status.refresh?.state === 'running';
    } catch (err) {
      this.statusNode.textContent = `library unavailable: ${errorText(err)}`;
    }
  }

  private async startRefresh(): Promise<void> {
    try {
      const { job } = await this.options.client.refresh();
      this.say(`Refresh started (pid ${job.pid}).`);
    } catch (err) {
      this.say(errorText(err), true);
    }
    await this.refreshStatus();
  }

  private say(message: string, error = false): void {
    this.messageNode.textContent = message;
    this.messageNode.classList.toggle('jp-codedistiller-error', error);
  }

  private resultNode(result: ISearchResult): HTMLLIElement {
    const item = el('li', 'jp-codedistiller-result');
    item.dataset.snippetId = result.id;
    this.fillResult(item, result);
    return item;
  }

  /** (Re)build one result card from a snippet record. */
  private fillResult(item: HTMLLIElement, s: ISnippet): void {
    item.replaceChildren();
    const shown = s.headline ?? { title: s.title, api: '', summary: s.summary };
    const head = el('div', 'jp-codedistiller-result-head');
    head.appendChild(el('span', 'jp-codedistiller-title', shown.title || '(untitled)'));
    head.appendChild(el('span', 'jp-codedistiller-where', s.where));
    item.appendChild(head);
    if (shown.api) {
      item.appendChild(el('code', 'jp-codedistiller-api', shown.api));
    }
    item.appendChild(badgeNodes(s.badges));
    if (shown.summary) {
      item.appendChild(el('div', 'jp-codedistiller-summary', shown.summary));
    }
    const code = el('pre', 'jp-codedistiller-code cm-s-jupyter');
    this.highlight(s.code, s.language, code);
    item.appendChild(code);

    const why = el('div', 'jp-codedistiller-why');
    why.hidden = true;
    const actions = el('div', 'jp-codedistiller-actions');
    actions.appendChild(
      button('Insert below', 'Insert below the active cell of the notebook', () =>
        void this.insert(s)
      )
    );
    actions.appendChild(button('Copy', 'Copy the code with its provenance marker', () => void this.copy(s)));
    actions.appendChild(
      button('Why', 'Where it comes from, how it was validated, who reviewed it', () => {
        if (why.hidden) {
          this.fillWhy(why, s);
        }
        why.hidden = !why.hidden;
      })
    );
    actions.appendChild(button('Flag', 'Flag this snippet as doubtful', () => void this.flag(item, s)));
    actions.appendChild(
      button('Approve', 'Approve this revision', () => void this.review(item, s, 'approved'))
    );
    actions.appendChild(
      button('Reject', 'Reject this revision', () => void this.review(item, s, 'rejected'))
    );
    item.appendChild(actions);
    item.appendChild(why);
  }

  private highlight(code: string, language: string, node: HTMLElement): void {
    node.textContent = '';
    const registry = this.options.languages;
    const spec = registry?.findBest(language || 'python') ?? null;
    if (!registry || !spec) {
      node.textContent = code;
      return;
    }
    registry.highlight(code, spec, node).catch(() => {
      node.textContent = code;
    });
  }

  private fillWhy(node: HTMLElement, s: ISnippet): void {
    node.replaceChildren();
    const table = el('table', 'jp-codedistiller-provenance');
    for (const [label, value] of provenanceRows(s)) {
      const row = el('tr');
      row.appendChild(el('th', '', label));
      row.appendChild(el('td', '', value));
      table.appendChild(row);
    }
    node.appendChild(table);
    const href = safeLink(s.link);
    if (href) {
      const a = el('a', 'jp-codedistiller-link', 'Open the source at this commit');
      a.href = href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.title = href;
      node.appendChild(a);
    }
  }

  private async insert(s: ISnippet): Promise<void> {
    try {
      const detail = await this.options.client.snippet(s.id);
      if (detail.insert_blockers.length) {
        const answer = await showDialog({
          title: 'Insert anyway?',
          body: new TextBody([
            'This snippet would need --force in the magic, because:',
            ...detail.insert_blockers.map(b => `• ${b}`)
          ]),
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Insert anyway' })]
        });
        if (!answer.button.accept) {
          return;
        }
      }
      const problem = await this.options.insert(detail);
      if (problem) {
        this.say(problem, true);
        return;
      }
      this.say(['Inserted below the active cell.', ...detail.insert_warnings].join(' '));
    } catch (err) {
      this.say(errorText(err), true);
    }
  }

  private async copy(s: ISnippet): Promise<void> {
    try {
      const detail = await this.options.client.snippet(s.id);
      Clipboard.copyToSystem(detail.cell_source);
      this.say('Copied the code with its provenance marker.');
    } catch (err) {
      this.say(errorText(err), true);
    }
  }

  private async flag(item: HTMLLIElement, s: ISnippet): Promise<void> {
    const answer = await showDialog({
      title: 'Flag snippet',
      body: new FlagForm(s.title || s.id),
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Flag' })],
      focusNodeSelector: 'textarea'
    });
    if (!answer.button.accept || !answer.value) {
      return;
    }
    if (!answer.value.reason.trim()) {
      this.say('A flag needs a reason.', true);
      return;
    }
    try {
      const { flag, snippet } = await this.options.client.flag(
        s.id,
        answer.value.kind,
        answer.value.reason
      );
      this.fillResult(item, snippet);
      this.say(`Flag ${flag.id} raised by ${flag.by}.`);
      void this.refreshStatus();
    } catch (err) {
      this.say(errorText(err), true);
    }
  }

  private async review(
    item: HTMLLIElement,
    s: ISnippet,
    status: 'approved' | 'rejected'
  ): Promise<void> {
    const verb = status === 'approved' ? 'Approve' : 'Reject';
    const answer = await showDialog({
      title: `${verb} revision ${s.revision}`,
      body: new NoteForm(`${verb} “${s.title || s.id}”, revision ${s.revision}?`),
      buttons: [
        Dialog.cancelButton(),
        status === 'approved'
          ? Dialog.okButton({ label: verb })
          : Dialog.warnButton({ label: verb })
      ],
      focusNodeSelector: 'textarea'
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      const { review, snippet } = await this.options.client.review(
        s.id,
        status,
        answer.value ?? '',
        s.revision
      );
      this.fillResult(item, snippet);
      this.say(`Revision ${review.revision} ${review.status} by ${review.by}.`);
      void this.refreshStatus();
    } catch (err) {
      this.say(errorText(err), true);
    }
  }
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}
