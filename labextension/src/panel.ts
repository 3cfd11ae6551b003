/**
 * The left-sidebar panel, built for a narrow sidebar: search as you type, filters,
 * compact result cards (one-line title, package and API name, badges in one row,
 * a thumbnail of the first figure the sandbox saw, a 3-line code preview) with icon
 * buttons, and a details view per result (full highlighted code, figures, printed
 * output, provenance, history of flags and reviews). Keyboard: arrows move between
 * cards, Enter inserts the focused one, Escape goes back to the search box.
 *
 * Every string that comes from the library (and so from repositories) is put
 * into the page with `textContent` or text nodes, never as HTML; figures are the
 * server's checked PNGs, fetched with the session's credentials as blobs.
 */

import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import {
  addBelowIcon,
  bugIcon,
  checkIcon,
  closeIcon,
  copyIcon,
  infoIcon,
  LabIcon,
  refreshIcon
} from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { ApiError, CodeDistillerClient } from './client';
import { codePreview, emptyState, figures, headlineOf, FLAG_KINDS, ISearchFilters, safeLink } from './models';
import type { FlagKind, IBadge, IOutput, ISearchResult, ISnippetDetail, ISnippetView, IStatus } from './records';

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

/** A square icon button; its name (for screen readers and tests) is `label`, its tooltip `title`. */
function iconButton(icon: LabIcon, label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', 'jp-codedistiller-icon-button');
  b.type = 'button';
  b.title = title;
  b.setAttribute('aria-label', label);
  b.dataset.action = label;
  icon.element({ container: b, height: '16px', width: '16px', elementPosition: 'center' });
  b.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return b;
}

/** The badges of a snippet as small labelled spans. */
export function badgeNodes(badges: IBadge[]): HTMLElement {
  const row = el('div', 'jp-codedistiller-badges');
  row.title = badges.map(b => b.label).join(' · ');
  // One row that may be cut at the right: validation, then warnings, so a flag is never cut.
  const order = (b: IBadge) => (b.kind === 'validation' ? 0 : ['bad', 'warn'].indexOf(b.level) + 1 || 3);
  const sorted = badges.map((b, i) => [b, i] as [IBadge, number]).sort(
    (x, y) => order(x[0]) - order(y[0]) || x[1] - y[1]
  );
  for (const [b] of sorted) {
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
  private readonly statusNode = el('div', 'jp-codedistiller-status', 'Connecting…');
  private readonly refreshButton: HTMLButtonElement;
  private readonly messageNode = el('div', 'jp-codedistiller-message');
  private readonly list = el('ul', 'jp-codedistiller-results');
  private readonly empty = el('div', 'jp-codedistiller-empty');
  private readonly more = el('button', 'jp-codedistiller-more', 'More results');
  private readonly figureUrls = new Map<string, Promise<string | null>>();
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
    this.refreshButton = iconButton(
      refreshIcon,
      'Update library',
      'Update the library now: read new and changed examples from its sources',
      () => void this.startRefresh()
    );
    this.refreshButton.hidden = true;
    header.appendChild(this.refreshButton);
    this.node.appendChild(header);

    this.input.type = 'search';
    this.input.placeholder = 'Search examples, e.g. kaplan meier';
    this.input.setAttribute('aria-label', 'Search the code library');
    this.input.addEventListener('input', () => this.scheduleSearch());
    this.input.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.searchNow();
      } else if (event.key === 'ArrowDown') {
        const first = this.cards()[0];
        if (first) {
          event.preventDefault();
          first.focus();
        }
      }
    });
    this.node.appendChild(this.input);

    const filters = el('div', 'jp-codedistiller-filters');
    this.packageInput.type = 'text';
    this.packageInput.placeholder = 'package';
    this.packageInput.setAttribute('aria-label', 'Only snippets from this package');
    this.packageInput.addEventListener('input', () => this.scheduleSearch());
    filters.appendChild(this.packageInput);
    for (const [box, label, tip] of [
      [this.validatedBox, 'validated', 'Only code that ran without error in the sandbox'],
      [this.reviewedBox, 'reviewed', 'Only code a person approved']
    ] as Array<[HTMLInputElement, string, string]>) {
      box.type = 'checkbox';
      box.addEventListener('change', () => this.searchNow());
      const wrap = el('label', 'jp-codedistiller-check');
      wrap.title = tip;
      wrap.appendChild(box);
      wrap.appendChild(document.createTextNode(` ${label}`));
      filters.appendChild(wrap);
    }
    this.node.appendChild(filters);

    this.statusNode.setAttribute('role', 'status');
    this.node.appendChild(this.statusNode);
    this.node.appendChild(this.messageNode);
    this.list.setAttribute('aria-label', 'Search results');
    this.list.addEventListener('keydown', event => this.onListKey(event));
    this.node.appendChild(this.list);
    this.empty.hidden = true;
    this.node.appendChild(this.empty);
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
    for (const url of this.figureUrls.values()) {
      void url.then(u => u && URL.revokeObjectURL(u));
    }
    super.dispose();
  }

  private cards(): HTMLLIElement[] {
    return Array.from(this.list.querySelectorAll<HTMLLIElement>(':scope > .jp-codedistiller-result'));
  }

  /** Arrows move between cards, Enter inserts the focused card, Escape returns to the search box. */
  private onListKey(event: KeyboardEvent): void {
    const card = event.target as HTMLElement;
    if (!card.classList.contains('jp-codedistiller-result')) {
      return;
    }
    const cards = this.cards();
    const at = cards.indexOf(card as HTMLLIElement);
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const next = cards[at + (event.key === 'ArrowDown' ? 1 : -1)];
      if (next) {
        next.focus();
      } else if (event.key === 'ArrowUp') {
        this.input.focus();
      }
    } else if (event.key === 'Enter') {
      event.preventDefault();
      card.querySelector<HTMLButtonElement>('button[data-action="Insert below"]')?.click();
    } else if (event.key === 'Escape') {
      this.input.focus();
    }
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
        const none = !answer.results.length;
        this.empty.replaceChildren(
          ...(none ? emptyState(answer.query, this.filters, answer.building_note) : []).map(line =>
            el('p', '', line)
          )
        );
        this.empty.hidden = !none;
        const notice = answer.notice
          ? answer.notice.charAt(0).toUpperCase() + answer.notice.slice(1)
          : '';
        this.say(none ? '' : [answer.building_note, notice].filter(Boolean).join(' '));
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
      this.statusNode.textContent = status.status_line;
      this.statusNode.title = [
        status.status_line,
        ...status.sources.map(
          s => `${s.id}: ${s.state}${s.last_refresh ? `, updated ${s.last_refresh}` : ''}`
        )
      ].join('\n');
      this.refreshButton.hidden = false;
      this.refreshButton.disabled = status.refresh?.state === 'running';
    } catch (err) {
      this.statusNode.textContent = `The library cannot be reached: ${errorText(err)}`;
    }
  }

  private async startRefresh(): Promise<void> {
    try {
      await this.options.client.refresh();
      this.say('Updating the library in the background.');
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
    item.tabIndex = 0;
    this.fillResult(item, result);
    return item;
  }

  /** An object URL for a figure (fetched once per panel), or null if it cannot be had. */
  private figureUrl(sha256: string): Promise<string | null> {
    let url = this.figureUrls.get(sha256);
    if (!url) {
      url = this.options.client
        .figure(sha256)
        .then(blob => (blob.type === 'image/png' ? URL.createObjectURL(blob) : null))
        .catch(() => null);
      this.figureUrls.set(sha256, url);
    }
    return url;
  }

  private image(figure: IOutput, className: string): HTMLImageElement {
    const img = el('img', className);
    img.alt = figure.label || 'figure';
    if (figure.width && figure.height) {
      img.width = figure.width;
      img.height = figure.height;
    }
    void this.figureUrl(figure.sha256 as string).then(url => {
      if (url) {
        img.src = url;
      } else {
        img.hidden = true;
      }
    });
    return img;
  }

  /** (Re)build one result card from a snippet record. */
  private fillResult(item: HTMLLIElement, s: ISnippetView): void {
    item.replaceChildren();
    const head = headlineOf(s);
    item.setAttribute('aria-label', head.title);
    const title = el('div', 'jp-codedistiller-title', head.title);
    title.title = head.title;
    item.appendChild(title);
    const where = [s.where, head.api].filter(Boolean).join(' · ');
    const whereNode = el('div', 'jp-codedistiller-where', where);
    whereNode.title = where;
    item.appendChild(whereNode);
    item.appendChild(badgeNodes(s.badges));

    const preview = el('div', 'jp-codedistiller-preview');
    const first = figures(s)[0];
    if (first) {
      const thumb = this.image(first, 'jp-codedistiller-thumb');
      thumb.title = 'What it drew when validated (open Details for full size)';
      preview.appendChild(thumb);
    }
    const code = el('pre', 'jp-codedistiller-code cm-s-jupyter');
    code.title = 'The first lines; Details shows all of it';
    this.highlight(codePreview(s.code), s.language, code);
    preview.appendChild(code);
    item.appendChild(preview);
    if (head.summary) {
      const summary = el('div', 'jp-codedistiller-summary', head.summary);
      summary.title = head.summary;
      item.appendChild(summary);
    }

    const why = el('div', 'jp-codedistiller-why');
    why.hidden = true;
    const actions = el('div', 'jp-codedistiller-actions');
    const details = iconButton(infoIcon, 'Details', 'Details: all the code, what it showed, where it comes from', () => {
      if (why.hidden) {
        this.fillWhy(why, s);
      }
      why.hidden = !why.hidden;
      details.setAttribute('aria-expanded', String(!why.hidden));
    });
    details.setAttribute('aria-expanded', 'false');
    actions.append(
      iconButton(addBelowIcon, 'Insert below', 'Insert below the active cell (Enter)', () => void this.insert(s)),
      iconButton(copyIcon, 'Copy', 'Copy the code with its provenance line', () => void this.copy(s)),
      details,
      el('span', 'jp-codedistiller-spacer'),
      iconButton(checkIcon, 'Approve', 'Approve this revision (you read it and it is right)', () =>
        void this.review(item, s, 'approved')
      ),
      iconButton(closeIcon, 'Reject', 'Reject this revision', () => void this.review(item, s, 'rejected')),
      iconButton(bugIcon, 'Flag', 'Flag as doubtful: wrong, unsafe, outdated, license…', () =>
        void this.flag(item, s)
      )
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

  private section(node: HTMLElement, heading: string): HTMLElement {
    const part = el('section', 'jp-codedistiller-section');
    part.appendChild(el('h3', 'jp-codedistiller-section-title', heading));
    node.appendChild(part);
    return part;
  }

  /** The details view: all the code, what it showed, provenance, history. */
  private fillWhy(node: HTMLElement, s: ISnippetView): void {
    node.replaceChildren();
    const head = headlineOf(s);
    if (head.summary) {
      node.appendChild(el('p', 'jp-codedistiller-details-summary', head.summary)); // the card cuts it
    }
    if (s.validation_note) {
      node.appendChild(el('p', 'jp-codedistiller-caution', s.validation_note));
    }
    const code = el('pre', 'jp-codedistiller-fullcode cm-s-jupyter');
    this.highlight(s.code, s.language, code);
    this.section(node, 'Code').appendChild(code);

    const v = s.validation;
    const shown = (v.outputs ?? []).filter(o => o.kind !== 'figure');
    const drawn = figures(s);
    if (drawn.length || shown.length || v.stdout_tail) {
      const part = this.section(node, 'What it showed when validated');
      for (const f of drawn) {
        part.appendChild(this.image(f, 'jp-codedistiller-figure'));
      }
      for (const o of shown) {
        if (o.kind === 'text') {
          part.appendChild(el('div', 'jp-codedistiller-output-label', o.label + (o.truncated ? ' (cut)' : '')));
          part.appendChild(el('pre', 'jp-codedistiller-output', o.text));
        } else {
          part.appendChild(el('div', 'jp-codedistiller-note', o.text));
        }
      }
      if (v.stdout_tail) {
        part.appendChild(el('div', 'jp-codedistiller-output-label', 'Printed'));
        part.appendChild(el('pre', 'jp-codedistiller-output', v.stdout_tail.replace(/\s+$/, '')));
      }
    }
    if (v.status !== 'passed' && v.stderr_tail) {
      const part = this.section(node, 'Errors');
      part.appendChild(el('pre', 'jp-codedistiller-output', v.stderr_tail.replace(/\s+$/, '')));
    }

    const table = el('table', 'jp-codedistiller-provenance');
    for (const row of s.provenance) {
      const tr = el('tr');
      tr.appendChild(el('th', '', row.label));
      tr.appendChild(el('td', '', row.text));
      table.appendChild(tr);
    }
    const where = this.section(node, 'Where it comes from');
    where.appendChild(table);
    const href = safeLink(s.link);
    if (href) {
      const a = el('a', 'jp-codedistiller-link', 'Open the source at this commit');
      a.href = href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.title = href;
      where.appendChild(a);
    }

    const history = this.section(node, 'History');
    if (!s.history.length) {
      history.appendChild(el('div', 'jp-codedistiller-note', 'No reviews or flags yet.'));
    } else {
      const ol = el('ol', 'jp-codedistiller-history');
      for (const event of s.history) {
        const li = el('li');
        li.appendChild(el('span', 'jp-codedistiller-when', event.when.slice(0, 10)));
        li.appendChild(document.createTextNode(` ${event.text}`));
        ol.appendChild(li);
      }
      history.appendChild(ol);
    }
  }

  private async insert(s: ISnippetView): Promise<void> {
    try {
      const detail = await this.options.client.snippet(s.id);
      const caution = detail.validation_note;
      if (detail.insert_blockers.length) {
        const answer = await showDialog({
          title: 'Insert anyway?',
          body: new TextBody([
            ...(caution ? [caution] : []),
            'This snippet would need --force in the magic, because:',
            ...detail.insert_blockers.map(b => `• ${b}`)
          ]),
          buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Insert anyway' })]
        });
        if (!answer.button.accept) {
          return;
        }
      } else if (caution) {
        const answer = await showDialog({
          title: 'Insert code that has not passed validation?',
          body: new TextBody([caution, 'Read it and check what it does before you run it.']),
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

  private async copy(s: ISnippetView): Promise<void> {
    try {
      const detail = await this.options.client.snippet(s.id);
      Clipboard.copyToSystem(detail.cell_source);
      this.say('Copied the code with its provenance marker.');
    } catch (err) {
      this.say(errorText(err), true);
    }
  }

  private async flag(item: HTMLLIElement, s: ISnippetView): Promise<void> {
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
    s: ISnippetView,
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
