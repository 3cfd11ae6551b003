/**
 * jupyter-codedistiller: the JupyterLab side panel over the snippet library.
 */

import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { LabIcon } from '@jupyterlab/ui-components';

import { insertLibraryCell, trackLibraryCells } from './cells';
import { CodeDistillerClient, Fetcher } from './client';
import { INSERT_REQUEST_RANK, insertRequestRenderers } from './insert';
import type { ISnippetDetail } from './records';
import { CodeDistillerPanel, DEFAULT_SETTINGS, IPanelSettings } from './panel';

const PLUGIN_ID = 'jupyter-codedistiller:plugin';
const API_ROOT = 'codedistiller/api/';

export namespace CommandIDs {
  export const open = 'codedistiller:open';
  export const focusSearch = 'codedistiller:focus-search';
}

const libraryIcon = new LabIcon({
  name: 'codedistiller:library',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<path d="M4 3h5v18H4zM10 3h5v18h-5zM16.2 4.1l4.8-1.3 4 17.4-4.8 1.3z" transform="scale(.9) translate(1 1)"/>' +
    '</g></svg>'
});

function serverFetcher(settings: ServerConnection.ISettings): Fetcher {
  return (path, init) =>
    ServerConnection.makeRequest(settings.baseUrl + API_ROOT + path, init, settings);
}

/** Insert below the active cell of the current notebook: marker + code, provenance in metadata. */
function inserter(
  app: JupyterFrontEnd,
  tracker: INotebookTracker
): (detail: ISnippetDetail) => Promise<string | null> {
  return async detail => {
    const panel = tracker.currentWidget;
    if (!panel) {
      return 'Open a notebook first: the snippet goes below its active cell.';
    }
    const problem = await insertLibraryCell(panel, detail.cell_source, detail.cell_metadata);
    if (!problem) {
      app.shell.activateById(panel.id);
    }
    return problem;
  };
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'A side panel to search, insert, flag and review validated code examples.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [
    ICommandPalette,
    ISettingRegistry,
    IEditorLanguageRegistry,
    ILayoutRestorer,
    IRenderMimeRegistry
  ],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    languages: IEditorLanguageRegistry | null,
    restorer: ILayoutRestorer | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const client = new CodeDistillerClient(serverFetcher(app.serviceManager.serverSettings));
    const panel = new CodeDistillerPanel({
      client,
      languages,
      insert: inserter(app, tracker)
    });
    panel.title.icon = libraryIcon;
    app.shell.add(panel, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(panel, 'codedistiller');
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'Open Code Library Panel',
      caption: 'Search validated code examples with provenance',
      icon: libraryIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.focusSearch, {
      label: 'Search the Code Library',
      execute: () => {
        app.shell.activateById(panel.id);
        panel.focusSearch();
      }
    });
    if (palette) {
      const category = 'Code Library';
      palette.addItem({ command: CommandIDs.open, category });
      palette.addItem({ command: CommandIDs.focusSearch, category });
    }

    trackLibraryCells(tracker);
    if (rendermime) {
      // Notebooks clone the app's registry when they open, so every notebook opened from
      // now on (and the ipywidgets Output areas, which use the notebook's) renders offers;
      // a click on one inserts what this client fetches from the server, never kernel output.
      rendermime.addFactory(insertRequestRenderers(tracker, client), INSERT_REQUEST_RANK);
    }

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () =>
            panel.configure({
              ...DEFAULT_SETTINGS,
              ...(settings.composite as unknown as Partial<IPanelSettings>)
            });
          apply();
          settings.changed.connect(apply);
        })
        .catch(reason => {
          console.warn('codedistiller: cannot load settings; using defaults', reason);
        });
    }
  }
};

export default plugin;
