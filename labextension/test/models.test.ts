import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  asSearchResponse,
  asSnippetDetail,
  cellBadgeText,
  libraryRecord,
  buildingNote,
  progressText,
  activityText,
  codePreview,
  emptyState,
  figurePath,
  figures,
  headlineOf,
  validationCaution,
  provenanceRows,
  safeLink,
  searchQuery,
  statusLine
} from '../src/models';
import type { IStatus } from '../src/records';
import { progressEntry, snippet, status } from './fixtures';

describe('searchQuery', () => {
  it('maps the panel filters onto the API parameters', () => {
    const qs = new URLSearchParams(
      searchQuery('  kaplan meier ', { package: ' lifelines ', validatedOnly: true, reviewedOnly: true }, 20)
    );
    assert.equal(qs.get('q'), 'kaplan meier');
    assert.equal(qs.get('limit'), '20');
    assert.equal(qs.get('package'), 'lifelines');
    assert.equal(qs.get('validation'), 'passed');
    assert.equal(qs.get('review'), 'approved');
    assert.equal(qs.has('offset'), false);
  });

  it('leaves unset filters out and encodes any text', () => {
    const raw = searchQuery('a&b=c #x', { package: '', validatedOnly: false }, 5, 10);
    const qs = new URLSearchParams(raw);
    assert.deepEqual([...qs.keys()].sort(), ['limit', 'offset', 'q']);
    assert.equal(qs.get('q'), 'a&b=c #x');
    assert.equal(qs.get('offset'), '10');
    assert.ok(!raw.includes('#'));
  });
});

describe('statusLine', () => {
  it('shows size, flags and a library at rest', () => {
    assert.equal(statusLine(status()), '3 snippets · 1 flagged · Library idle');
    assert.equal(
      statusLine({ ...status(), progress: { daemon: progressEntry({ state: 'idle', step: 'sleeping' }) } }),
      '3 snippets · 1 flagged · Library up to date'
    );
  });

  it('says in plain words what the distiller is doing, once', () => {
    const s: IStatus = {
      ...status(),
      flagged: 0,
      snippets: 1,
      progress: {
        daemon: progressEntry({ state: 'refreshing', step: 'validate', done: 3, total: 10 }),
        distiller: progressEntry({ step: 'validate', source: 'lifelines', done: 120, total: 212 })
      }
    };
    assert.equal(statusLine(s), '1 snippet · Validating lifelines examples: 120 of 212');
  });

  it('says when the last update failed', () => {
    const s: IStatus = {
      ...status(),
      refresh: {
        id: 2, pid: 1, state: 'failed', sources: ['x'], validate: true, started: 'a',
        finished: 'b', exit_code: 1, log_tail: ['boom']
      }
    };
    assert.match(statusLine(s), /the last update failed \(exit code 1\)/);
  });

  it('words each step and says nothing for resting jobs', () => {
    assert.equal(progressText(progressEntry({})), '');
    assert.equal(progressText(progressEntry({ step: 'idle', source: null, done: 2, total: 2 })), '');
    assert.equal(progressText(progressEntry({ state: 'idle', step: 'sleeping', interval: 3600 })), '');
    assert.equal(progressText(progressEntry({ step: 'extract', source: 'scanpy', done: 4, total: 9 })), 'Reading scanpy files: 4 of 9');
    assert.equal(progressText(progressEntry({ step: 'fetch', source: 'anndata', done: 0, total: 1 })), 'Fetching anndata: 0 of 1');
  });

  it('says when the job that published progress is gone', () => {
    assert.equal(
      activityText({ daemon: progressEntry({ step: 'validate', source: 'lifelines', done: 3, total: 9, alive: false }) }),
      'Stopped while validating lifelines examples: 3 of 9'
    );
    assert.equal(activityText({ daemon: progressEntry({ state: 'idle', step: 'sleeping', alive: false }) }),
      'Background updates are not running');
  });
});

describe('cards and details', () => {
  it('takes the server headline, else the raw fields', () => {
    const s = snippet();
    assert.deepEqual(headlineOf(s), { title: s.title, api: '', summary: 'Fit by group' });
    const h = { title: 'Fit a Kaplan-Meier curve', api: 'KaplanMeierFitter.fit', summary: '' };
    assert.deepEqual(headlineOf({ ...s, headline: h }), h);
  });

  it('previews three lines and names figures by digest only', () => {
    assert.equal(codePreview('a\nb\nc\nd\n'), 'a\nb\nc');
    const sha = 'a'.repeat(64);
    const base = { label: '', size: 1, width: 1, height: 1, text: '', truncated: false };
    const s = snippet();
    s.validation.outputs = [
      { ...base, kind: 'figure', sha256: sha },
      { ...base, kind: 'figure', sha256: '../../etc/passwd' },
      { ...base, kind: 'text', sha256: null, text: '<script>' }
    ];
    assert.deepEqual(figures(s).map(f => f.sha256), [sha]);
    assert.equal(figurePath(sha), `figures/${sha}`);
    assert.equal(figurePath('../x'), null);
  });

  it('warns before inserting what has not passed, and says what to try when nothing matches', () => {
    const s = snippet();
    assert.equal(validationCaution(s), null);
    s.validation = { ...s.validation, status: 'skipped', reason: 'needs network' };
    assert.equal(validationCaution(s), 'This code has not passed validation: it was not run (needs network).');
    const lines = emptyState('zzz', { validatedOnly: true }, null);
    assert.match(lines[0], /Nothing matches “zzz”/);
    assert.match(lines.join(' '), /filters/);
    assert.match(emptyState('', {}, null)[0], /kaplan meier/);
  });
});

describe('provenanceRows', () => {
  it('lists source, commit, lines, license, origin, validation, reviews and flags', () => {
    const rows = new Map<string, string[]>();
    for (const [k, v] of provenanceRows(snippet())) {
      rows.set(k, [...(rows.get(k) ?? []), v]);
    }
    assert.deepEqual(rows.get('commit'), ['0123456789abcdef0123456789abcdef01234567']);
    assert.deepEqual(rows.get('file'), ['examples/km.py#L10-L42']);
    assert.deepEqual(rows.get('license'), ['MIT']);
    assert.deepEqual(rows.get('made'), ['adapted by some-llm']);
    assert.match(rows.get('validation')![0], /^passed on 2026-01-02/);
    assert.deepEqual(rows.get('flags'), ['1 open, 1 in all']);
    assert.ok(rows.get('')!.some(v => v.includes('[unsafe] deletes files by ana (open)')));
  });
});

describe('safeLink', () => {
  it('allows http(s) links only', () => {
    assert.equal(safeLink('https://example.org/a/b'), 'https://example.org/a/b');
    assert.equal(safeLink('javascript:alert(1)'), null);
    assert.equal(safeLink('data:text/html,<b>x</b>'), null);
    assert.equal(safeLink('not a url'), null);
    assert.equal(safeLink(null), null);
  });
});

describe('libraryRecord', () => {
  it('finds the provenance record in cell metadata', () => {
    const record = libraryRecord({ codedistiller: { id: 'cd-1', revision: 2 }, tags: [] });
    assert.deepEqual(record, { id: 'cd-1', revision: 2 });
    assert.equal(cellBadgeText(record!), 'library cd-1 rev 2');
  });

  it('ignores cells without a usable record', () => {
    assert.equal(libraryRecord({}), null);
    assert.equal(libraryRecord(null), null);
    assert.equal(libraryRecord({ codedistiller: 'x' }), null);
    assert.equal(libraryRecord({ codedistiller: { revision: 1 } }), null);
  });
});

describe('answer checks', () => {
  it('accepts well-formed answers', () => {
    const s = snippet();
    assert.equal(asSearchResponse({ results: [{ ...s, rank: 1, score: 1 }] }).results.length, 1);
    const d = asSnippetDetail({ ...s, cell_source: '# m\nx', cell_metadata: { id: s.id } });
    assert.equal(d.cell_source, '# m\nx');
  });

  it('rejects malformed answers', () => {
    assert.throws(() => asSearchResponse({}), /no results list/);
    assert.throws(() => asSearchResponse({ results: [{ id: 'x' }] }), /no id or code/);
    assert.throws(() => asSearchResponse({ results: [{ id: 'x', code: '' }] }), /no badges/);
    assert.throws(() => asSnippetDetail({ id: 'x', cell_source: 'y' }), /cell metadata/);
  });
});

describe('buildingNote', () => {
  it('says the library is still being built, and is empty otherwise', () => {
    assert.equal(buildingNote(null), '');
    assert.equal(buildingNote(undefined), '');
    assert.match(
      buildingNote({ snippets: 120, validated: 30, pending: 90, sources_waiting: 0 }),
      /still being built: 120 snippets so far, 30 validated, 90 waiting/
    );
  });
});
