"""SOURCE arguments every entry point (``sources.classify``, the CLI, the magic, the API)
must read alike: what each names, and what each refuses with which words."""

from __future__ import annotations

# (argument, kind). git+ssh and ssh+git name closed ports here: a clone is tried, and fails.
ACCEPTED = [
    ("https://example.org/lab/repo.git", "git"),
    ("git+ssh://git@127.0.0.1:1/lab/repo.git", "git"),
    ("ssh+git://127.0.0.1:1/lab/repo.git", "git"),
    ("ssh://git@127.0.0.1:1/lab/repo.git", "git"),
    ("git@127.0.0.1:lab/repo.git", "git"),
    ("pkg:nbformat", "package"),
    ("file:///srv/repos/lab.git", "git"),
    ("some/folder", "local"),
]

# Reachable without the network: a clone of these must be tried and fail, not be refused.
TRIED = ["git+ssh://git@127.0.0.1:1/lab/repo.git", "ssh+git://127.0.0.1:1/lab/repo.git"]

# (argument, words of the one-line refusal)
REFUSED = [
    ("   ", "give a git URL, a path to a git working copy, or pkg:NAME"),
    ("--upload-pack=touch /tmp/pwned", "is not a source"),
    ("-oProxyCommand=touch /tmp/pwned:repo", "is not a source"),
    ("ftp://example.org/repo.git", "unsupported URL scheme"),
    ("javascript://alert(1)", "unsupported URL scheme"),
    ("ext::sh -c touch% /tmp/pwned", "git transports (ext::, fd::) are refused"),
    ("fd::17", "git transports (ext::, fd::) are refused"),
    ("ssh://-oProxyCommand=touch%20/tmp/pwned/repo", "its host reads as an option"),
    ("git+ssh://user@-oProxyCommand=x/repo", "its host reads as an option"),
    ("pkg:../../x", "does not name a distribution"),
    ("pkg:x y", "does not name a distribution"),
    ("repo\x1b[31m", "is not a source"),
]
