import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  asSearchResponse,
  asSnippetDetail,
  cellBadgeText,
  libraryRecord,
  codePreview,
  emptyState,
  figurePath,
  figures,
  headlineOf,
  safeLink,
  searchQuery
} from '../src/models';
import { snippet } from './fixtures';

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

  it('says what to try when nothing matches, after the server\'s building note', () => {
    const lines = emptyState('zzz', { validatedOnly: true }, null);
    assert.match(lines[0], /Nothing matches “zzz”/);
    assert.match(lines.join(' '), /filters/);
    assert.match(emptyState('', {}, null)[0], /kaplan meier/);
    const note = 'The library is still being built: 120 snippets so far, 30 validated, 90 waiting; results will grow.';
    assert.equal(emptyState('zzz', {}, note)[0], note);
    assert.equal(emptyState('zzz', {}, '')[0], 'Nothing matches “zzz”.');
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
