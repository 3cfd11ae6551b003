import type { ISnippetView, IStatus } from '../src/records';

export function snippet(): ISnippetView {
  return {
    id: 'cd-0123456789abcdef',
    code: 'print(1)\n',
    title: 'Kaplan-Meier <img src=x onerror=alert(1)>',
    summary: 'Fit by group',
    revision: 2,
    api: '',
    context: '',
    language: 'python',
    tags: ['survival'],
    imports: [],
    requirements: {},
    source: {
      kind: 'git',
      url: 'https://example.org/lab/km.git',
      commit: '0123456789abcdef0123456789abcdef01234567',
      ref: 'main',
      path: 'examples/km.py',
      line_start: 10,
      line_end: 42,
      package: null,
      version: null,
      license: 'MIT',
      repository: 'https://example.org/lab/km',
      source_id: 'km',
      layer: null,
      tag: null,
      sdist: null,
      sdist_sha256: null,
      index_url: null
    },
    origin: { kind: 'adapted', model: 'some-llm', prompt_version: 'v1', details: {} },
    validation: {
      status: 'passed', reason: null, when: '2026-01-02T03:04:05+00:00', duration: 1.5,
      interpreter: null, python_version: null, isolation: null, exit_code: 0, packages: {},
      stdout_tail: '', stderr_tail: '', host: null, worker: null, outputs: [], mode: null,
      mode_reason: null
    },
    review: { status: 'unreviewed', history: [] },
    flags: [
      {
        id: 7, kind: 'unsafe', reason: 'deletes files', by: 'ana', when: '2026-01-03',
        revision: 2, resolved: false, resolved_by: null, resolved_when: null, resolution: null
      }
    ],
    lifecycle: 'active',
    created: null,
    updated: null,
    also_at: [],
    code_sha256: 'ab',
    schema_version: 1,
    badges: [{ kind: 'validation', label: 'passed 2026-01-02', level: 'good' }],
    link: 'https://example.org/lab/km/blob/0123456789abcdef0123456789abcdef01234567/examples/km.py#L10-L42',
    where: 'km',
    headline: { title: 'Kaplan-Meier <img src=x onerror=alert(1)>', api: '', summary: 'Fit by group' },
    // As textview.provenance_rows and history_events word them for this record.
    provenance: [
      { label: 'source', text: 'git https://example.org/lab/km.git' },
      { label: 'commit', text: '0123456789abcdef0123456789abcdef01234567' },
      { label: 'file', text: 'examples/km.py lines 10-42' },
      {
        label: 'link',
        text: 'https://example.org/lab/km/blob/0123456789abcdef0123456789abcdef01234567/examples/km.py#L10-L42'
      },
      { label: 'license', text: 'MIT' },
      { label: 'made', text: 'adapted by some-llm (prompt v1)' },
      { label: 'validation', text: 'passed on 2026-01-02T03:04:05+00:00' },
      { label: 'took', text: '1.50 s, exit code 0' },
      { label: 'review', text: 'unreviewed' },
      { label: 'flags', text: '1 open, 1 in all' }
    ],
    history: [{ when: '2026-01-03', text: 'flag #7 [unsafe] deletes files by ana (open)' }],
    validation_note: null
  };
}

export function status(): IStatus {
  return {
    path: '/home/ana/library.db',
    schema_version: 5,
    snippets: 3,
    retired: 0,
    validation: { passed: 3 },
    review: { unreviewed: 3 },
    origin: { verbatim: 3 },
    flagged: 1,
    sources: [],
    progress: {},
    size_bytes: 4096,
    isolation: {},
    policy: 'open',
    refresh: null,
    status_line: '3 snippets · 1 flagged · Library idle'
  };
}
