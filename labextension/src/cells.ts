/**
 * Cells inserted from the library: how one is inserted (the side panel and the
 * `%distill` widgets' insert requests share it), and the small provenance badge
 * they carry: a class and a data attribute on the cell node, shown by CSS
 * (`content: attr(...)` is text-only).
 */

import type { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { cellBadgeText, libraryRecord, METADATA_KEY } from './models';

export const LIBRARY_CELL_CLASS = 'jp-codedistiller-cell';

/**
 * Insert a code cell holding `source`, with `metadata` as its `metadata.codedistiller`,
 * below cell `after` of the notebook (default: below the active cell), and make it
 * the active cell. Returns why it could not, or null.
 */
export async function insertLibraryCell(
  panel: NotebookPanel,
  source: string,
  metadata: Record<string, unknown>,
  after?: number
): Promise<string | null> {
  await panel.context.ready;
  const notebook = panel.content;
  const model = notebook.model;
  if (!model || model.readOnly) {
    return 'This notebook cannot be edited.';
  }
  const index =
    after !== undefined && after >= 0 && after < model.cells.length
      ? after + 1
      : notebook.activeCell
        ? notebook.activeCellIndex + 1
        : 0;
  model.sharedModel.insertCell(index, {
    cell_type: 'code',
    source,
    metadata: { [METADATA_KEY]: metadata } as any
  });
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  return null;
}

/** Mark one cell according to its metadata. */
export function markCell(cell: Cell): void {
  const record = libraryRecord({ [METADATA_KEY]: cell.model.getMetadata(METADATA_KEY) });
  cell.toggleClass(LIBRARY_CELL_CLASS, record !== null);
  if (record) {
    cell.node.dataset.codedistiller = cellBadgeText(record);
    cell.node.title = 'Inserted from the code library; see its provenance in the cell metadata';
  } else if (cell.node.dataset.codedistiller !== undefined) {
    delete cell.node.dataset.codedistiller;
    cell.node.removeAttribute('title');
  }
}

/** Keep the badges of every open notebook's cells in step with their metadata. */
export function trackLibraryCells(tracker: INotebookTracker): void {
  const watched = new WeakSet<object>();
  const watch = (panel: NotebookPanel) => {
    let pending = false;
    const markAll = () => {
      pending = false;
      if (panel.isDisposed) {
        return;
      }
      for (const cell of panel.content.widgets) {
        if (!watched.has(cell.model)) {
          watched.add(cell.model);
          cell.model.metadataChanged.connect(() => markCell(cell));
        }
        markCell(cell);
      }
    };
    const schedule = () => {
      if (!pending) {
        pending = true;
        requestAnimationFrame(markAll);
      }
    };
    void panel.context.ready.then(schedule);
    panel.content.modelContentChanged.connect(schedule);
  };
  tracker.forEach(watch);
  tracker.widgetAdded.connect((_, panel) => watch(panel));
}
