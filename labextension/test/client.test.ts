import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { ApiError, CodeDistillerClient, Fetcher } from '../src/client';
import { snippet, status } from './fixtures';

interface ISent {
  path: string;
  method: string;
  body: unknown;
  contentType: string | null;
}

/** A fetcher that records each request and answers with the next canned response. */
function recorder(answers: Array<[number, unknown]>): { fetcher: Fetcher; sent: ISent[] } {
  const sent: ISent[] = [];
  const fetcher: Fetcher = async (path, init) => {
    const headers = new Headers(init.headers);
    sent.push({
      path,
      method: init.method ?? 'GET',
      body: init.body ? JSON.parse(String(init.body)) : undefined,
      contentType: headers.get('Content-Type')
    });
    const [code, data] = answers.shift() ?? [500, { message: 'no answer left' }];
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    return new Response(text, { status: code });
  };
  return { fetcher, sent };
}

describe('CodeDistillerClient', () => {
  it('searches with the filters in the query string', async () => {
    const s = snippet();
    const { fetcher, sent } = recorder([
      [200, { query: 'km', limit: 5, offset: 0, has_more: false, results: [{ ...s, rank: 1, score: 2 }] }]
    ]);
    const answer = await new CodeDistillerClient(fetcher).search('km', { validatedOnly: true }, 5);
    assert.equal(answer.results[0].id, s.id);
    assert.equal(sent[0].method, 'GET');
    assert.equal(sent[0].path, 'search?q=km&limit=5&validation=passed');
  });

  it('escapes snippet ids in paths', async () => {
    const detail = { ...snippet(), cell_source: '# m\nprint(1)', cell_metadata: { id: 'x' } };
    const { fetcher, sent } = recorder([[200, detail]]);
    await new CodeDistillerClient(fetcher).snippet('a/b?c');
    assert.equal(sent[0].path, 'snippets/a%2Fb%3Fc');
  });

  it('posts flags and reviews as JSON bodies', async () => {
    const s = snippet();
    const { fetcher, sent } = recorder([
      [201, { flag: s.flags[0], snippet: s }],
      [201, { review: { status: 'approved', by: 'ana', when: 'now', revision: 2, note: '' }, snippet: s }],
      [200, { flag: s.flags[0], snippet: s }],
      [202, { job: { id: 1, pid: 9, state: 'running' } }]
    ]);
    const client = new CodeDistillerClient(fetcher);
    await client.flag(s.id, 'unsafe', 'deletes files');
    await client.review(s.id, 'approved', 'looks right', 2);
    await client.resolveFlag(s.id, 7, 'fixed upstream');
    await client.refresh(['km']);
    assert.deepEqual(
      sent.map(r => [r.method, r.path, r.body, r.contentType]),
      [
        ['POST', `snippets/${s.id}/flags`, { kind: 'unsafe', reason: 'deletes files' }, 'application/json'],
        ['POST', `snippets/${s.id}/reviews`, { status: 'approved', note: 'looks right', revision: 2 }, 'application/json'],
        ['POST', `snippets/${s.id}/flags/7/resolve`, { note: 'fixed upstream' }, 'application/json'],
        ['POST', 'refresh', { sources: ['km'] }, 'application/json']
      ]
    );
  });

  it('turns error answers into ApiError with the server message', async () => {
    const { fetcher } = recorder([
      [404, { message: "no snippet 'cd-x' in the library" }],
      [400, 'not json'],
      [200, 'not json either']
    ]);
    const client = new CodeDistillerClient(fetcher);
    await assert.rejects(client.snippet('cd-x'), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 404);
      assert.equal(err.message, "no snippet 'cd-x' in the library");
      return true;
    });
    await assert.rejects(client.status(), (err: unknown) => err instanceof ApiError && err.status === 400);
    await assert.rejects(client.status(), /no JSON/);
  });

  it('reports an unreachable server', async () => {
    const client = new CodeDistillerClient(async () => {
      throw new TypeError('fetch failed');
    });
    await assert.rejects(client.status(), (err: unknown) => err instanceof ApiError && err.status === 0);
  });

  it('rejects a search answer of the wrong shape', async () => {
    const { fetcher } = recorder([[200, { results: 'nope' }]]);
    await assert.rejects(new CodeDistillerClient(fetcher).search('x'), /no results list/);
  });

  it('reads the status', async () => {
    const { fetcher } = recorder([[200, status()]]);
    assert.equal((await new CodeDistillerClient(fetcher).status()).snippets, 3);
  });
});
