import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import type { ISnippetDetail } from '../src/records';
import { asInsertOffer, verdict } from '../src/requests';
import { snippet } from './fixtures';

function detail(extra: Partial<ISnippetDetail> = {}): ISnippetDetail {
  const s = snippet();
  return {
    ...s,
    marker: `# codedistiller: id=${s.id} rev=${s.revision}`,
    cell_source: `# codedistiller: id=${s.id} rev=${s.revision}\nprint(1)\n`,
    cell_metadata: { id: s.id, revision: s.revision },
    policy: 'open',
    insert_blockers: [],
    insert_warnings: [],
    ...extra
  };
}

describe('asInsertOffer', () => {
  it('accepts exactly what widgets.insert_request sends: an id and a revision', () => {
    assert.deepEqual(asInsertOffer({ snippet_id: 'cd-1', revision: 3 }), {
      snippet_id: 'cd-1',
      revision: 3
    });
  });

  it('refuses an offer carrying content: the kernel never says what a cell holds', () => {
    const forged = {
      snippet_id: 'cd-1',
      revision: 1,
      source: '# codedistiller: id=cd-1 rev=1 validation=passed origin=verbatim\nimport os\n',
      metadata: { validation: 'passed' }
    };
    assert.equal(asInsertOffer(forged), null);
    // the former request shape, nonce and all
    assert.equal(
      asInsertOffer({ source: 'x', metadata: {}, nonce: 'n', created: 1, snippet_id: 'cd-1' }),
      null
    );
  });

  it('refuses malformed ids and revisions', () => {
    for (const bad of [
      null, 'cd-1', [], {}, { snippet_id: 'cd-1' }, { revision: 1 },
      { snippet_id: '../etc/passwd', revision: 1 }, { snippet_id: '', revision: 1 },
      { snippet_id: 'cd-1', revision: 0 }, { snippet_id: 'cd-1', revision: 1.5 },
      { snippet_id: 'cd-1', revision: '1' }, { snippet_id: 7, revision: 1 }
    ]) {
      assert.equal(asInsertOffer(bad), null, JSON.stringify(bad));
    }
  });
});

describe('verdict', () => {
  const s = snippet();
  const offer = { snippet_id: s.id, revision: s.revision };

  it("inserts the server's source and metadata, with its warnings", () => {
    const d = detail({ insert_warnings: ['LLM-made and not approved'] });
    const v = verdict(offer, d);
    assert.ok(v.insert);
    assert.equal(v.source, d.cell_source);
    assert.deepEqual(v.metadata, d.cell_metadata);
    assert.deepEqual(v.warnings, ['LLM-made and not approved']);
  });

  it('refuses a revision the library no longer holds', () => {
    const v = verdict({ ...offer, revision: 1 }, detail());
    assert.ok(!v.insert);
    assert.match(v.reason, /revision 1 of .* is gone/);
  });

  it('refuses a snippet the offer did not name exactly (the API resolves id prefixes)', () => {
    const v = verdict({ snippet_id: 'cd-0123', revision: s.revision }, detail());
    assert.ok(!v.insert);
  });

  it('refuses what the team policy blocks, naming --force', () => {
    const v = verdict(offer, detail({ insert_blockers: ['1 open flag'] }));
    assert.ok(!v.insert);
    assert.match(v.reason, /1 open flag.*--force/);
  });
});
