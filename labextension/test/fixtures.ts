import { ISnippet, IStatus } from '../src/models';

export function snippet(): ISnippet {
  return {
    id: 'cd-0123456789abcdef',
    code: 'print(1)\n',
    title: 'Kaplan-Meier <img src=x onerror=alert(1)>',
    summary: 'Fit by group',
    revision: 2,
    language: 'python',
    tags: ['survival'],
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
      source_id: 'km'
    },
    origin: { kind: 'adapted', model: 'some-llm', prompt_version: 'v1' },
    validation: {
      status: 'passed', reason: null, when: '2026-01-02T03:04:05+00:00', duration: 1.5,
      python_version: null, isolation: null, exit_code: 0, packages: {}
    },
    review: { status: 'unreviewed', history: [] },
    flags: [
      {
        id: 7, kind: 'unsafe', reason: 'deletes files', by: 'ana', when: '2026-01-03',
        revision: 2, resolved: false, resolved_by: null, resolved_when: null, resolution: null
      }
    ],
    lifecycle: 'active',
    code_sha256: 'ab',
    badges: [{ kind: 'validation', label: 'passed 2026-01-02', level: 'good' }],
    link: 'https://example.org/lab/km/blob/0123456789abcdef0123456789abcdef01234567/examples/km.py#L10-L42',
    where: 'km'
  };
}

export function status(): IStatus {
  return {
    snippets: 3,
    retired: 0,
    flagged: 1,
    validation: { passed: 3 },
    review: { unreviewed: 3 },
    sources: [],
    progress: {},
    refresh: null
  };
}
