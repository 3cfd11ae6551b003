import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  asInsertRequest,
  FRESH_SECONDS,
  IInsertRequest,
  INonceStore,
  InsertLedger
} from '../src/requests';

const NOW = 1_700_000_000;

function request(nonce: string, created = NOW): IInsertRequest {
  const r = asInsertRequest({
    source: '# codedistiller: id=cd-1 rev=1\nprint(1)\n',
    metadata: { id: 'cd-1', revision: 1 },
    nonce,
    created,
    snippet_id: 'cd-1',
    title: 'Kaplan-Meier fit'
  });
  assert.ok(r);
  return r;
}

class MemoryStore implements INonceStore {
  items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
}

describe('asInsertRequest', () => {
  it('accepts what widgets.insert_request sends', () => {
    const r = request('a1');
    assert.equal(r.title, 'Kaplan-Meier fit');
    assert.deepEqual(r.metadata, { id: 'cd-1', revision: 1 });
  });

  it('refuses anything without source, metadata object, nonce and numeric time', () => {
    const good = { source: 'x', metadata: {}, nonce: 'n', created: NOW };
    assert.ok(asInsertRequest(good));
    for (const bad of [
      null,
      'text',
      [],
      { ...good, source: 1 },
      { ...good, metadata: [] },
      { ...good, metadata: null },
      { ...good, nonce: '' },
      { ...good, created: '1700000000' },
      { ...good, created: Number.NaN }
    ]) {
      assert.equal(asInsertRequest(bad), null, JSON.stringify(bad));
    }
  });

  it('falls back to the snippet id when there is no title', () => {
    const r = asInsertRequest({ source: 'x', metadata: {}, nonce: 'n', created: NOW, snippet_id: 'cd-9' });
    assert.equal(r?.title, 'cd-9');
  });
});

describe('InsertLedger', () => {
  it('inserts a fresh request once', () => {
    const ledger = new InsertLedger();
    const r = request('once');
    assert.equal(ledger.decide(r, NOW + 1), 'insert');
    assert.equal(ledger.claim(r, NOW + 1), true);
    assert.equal(ledger.decide(r, NOW + 2), 'inserted');
    assert.equal(ledger.claim(r, NOW + 2), false);
    assert.equal(ledger.claim(request('other'), NOW + 2), true, 'another click inserts again');
  });

  it('never inserts a stale request: a reopened notebook, or a clock far ahead', () => {
    const ledger = new InsertLedger();
    const old = request('old', NOW - FRESH_SECONDS - 1);
    assert.equal(ledger.decide(old, NOW), 'stale');
    assert.equal(ledger.claim(old, NOW), false);
    assert.equal(ledger.claim(request('future', NOW + FRESH_SECONDS + 1), NOW), false);
    assert.equal(ledger.claim(request('edge', NOW - FRESH_SECONDS), NOW), true);
  });

  it('remembers nonces across pages through the store, and forgets the ones too old to matter', () => {
    const store = new MemoryStore();
    assert.equal(new InsertLedger(store).claim(request('kept'), NOW), true);
    const reloaded = new InsertLedger(store);
    assert.equal(reloaded.decide(request('kept'), NOW + 5), 'inserted');
    assert.equal(reloaded.claim(request('kept'), NOW + 5), false);

    const later = NOW + 3 * FRESH_SECONDS;
    assert.equal(new InsertLedger(store).claim(request('new', later), later), true);
    const stored = JSON.parse(store.getItem('codedistiller:inserted-requests') ?? '{}');
    assert.deepEqual(Object.keys(stored), ['new']);
  });

  it('works on memory alone when the store fails', () => {
    const broken: INonceStore = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('quota');
      }
    };
    const ledger = new InsertLedger(broken);
    assert.equal(ledger.claim(request('m'), NOW), true);
    assert.equal(ledger.claim(request('m'), NOW), false);
  });
});
