"""LLM-assisted distillation: generate, execute, reflect, repair, judge.

When a source yields no validated snippet of its core functionality (no
passed snippet imports the source's own modules), or an extracted candidate
failed validation, an LLM may write or repair an example:

1. **purpose**: summarise what the repository is for from its README and an
   outline of its Python files (fast model);
2. **rate** the Python files for relevance, 1 to 5 (fast model);
3. **generate** an example of the core functionality from the most relevant
   files (code model);
4. **run** it in the sandbox (``sandbox.validate``, the only place LLM code runs);
5. **reflect and repair**: show the model the failure and ask for a fix, up to
   ``iterations`` runs in all;
6. **judge** whether the passing example demonstrates the stated purpose
   (fast model); a "no" is not stored.

``Distiller.repair(snippet)`` runs steps 4 to 6 on a failing extracted
snippet. Results are stored with origin ``generated`` (id from
``snippet_id(source, "llm:generated", "core")``) or ``adapted`` (id from
``snippet_id(source, "llm:adapted", <failing snippet id>)``), the model,
the prompt ``name/version`` that wrote the final code, and details
(iterations, tokens, cost, judge verdict, files, prompt versions). The
validation stored is the sandbox's; the review is whatever people recorded
(a new revision starts unreviewed); of the model's answers only the code,
title and summary are kept.

Repository text (README, files, program output) reaches the model only inside
data blocks the system prompt declares untrusted. Each source gets a
``Budget``; when it runs out the loop stops, the item under way is dropped
(nothing half-written) and the report says why. Attempts are remembered on
the source (``settings.llm``) so that ``refresh --llm`` does not pay again
for the same commit or the same failing code (unless the snippet it stored has
been retired since); ``generate SOURCE`` forces.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..library import Library, LibraryError
from ..model import Origin, RegisteredSource, Snippet, Source, Validation, snippet_id, utcnow
from ..schema import rule
from . import sources
from .extract import SKIP_FILES
from .llm import (
    Budget,
    BudgetExhausted,
    LLMAnswerError,
    LLMCallError,
    LLMClient,
    LLMConfig,
    LLMError,
    LLMRefusal,
    PromptTemplate,
    Usage,
    build_prompt,
    data_block,
    new_nonce,
    template,
)
from .tree import Tree, at_commit, at_version

DEFAULT_ITERATIONS = 3  # sandbox runs per item: the first try plus repairs
MAX_REPAIRS = 5  # failing extracted snippets repaired per source and pass
GENERATED_ANCHOR = "core"
README_CHARS = 12_000
FILE_CHARS = 12_000
FILES_CHARS = 30_000
OUTLINE_FILES = 60
TOP_FILES = 3
OUTPUT_CHARS = 2_000
TITLE_CHARS = 120
SUMMARY_CHARS = 600
CODE_CHARS = 20_000
COMMON_DISTRIBUTIONS = ("numpy", "pandas", "scipy", "matplotlib", "scikit-learn", "statsmodels",
                        "seaborn", "networkx", "lifelines", "anndata", "scanpy", "biopython")
SKIP_DIRS = frozenset({"tests", "test", "testing", "docs", "doc", "build", "dist", "benchmarks",
                       "node_modules", "site-packages", "__pycache__", "venv", "vendor", "_vendor"})

# What each task's answer holds, declared as records (see schema.py): ``LLMClient.ask`` keeps
# only these keys, cut to their lengths.


@dataclass
class PurposeAnswer:
    purpose: str = field(metadata=rule(max_length=600))
    core_functionality: str = field(metadata=rule(max_length=300))
    keywords: list[str] = field(default_factory=list, metadata=rule(max_length=8))


@dataclass
class Rating:
    path: str = field(metadata=rule(max_length=500))
    score: int


@dataclass
class RateAnswer:
    ratings: list[Rating] = field(metadata=rule(max_length=200))


@dataclass(kw_only=True)
class CodeAnswer:
    title: str = field(metadata=rule(max_length=TITLE_CHARS))
    summary: str = field(default="", metadata=rule(max_length=SUMMARY_CHARS))
    code: str


@dataclass(kw_only=True)
class RepairAnswer(CodeAnswer):
    diagnosis: str = field(default="", metadata=rule(max_length=300))


@dataclass
class JudgeAnswer:
    demonstrates: bool
    reason: str = field(default="", metadata=rule(max_length=300))


TRANSIENT = ("error", "budget")  # not remembered: the next pass tries again


Data = tuple[str, str, str]  # (kind, name, untrusted text) of one data block


class GenerateError(LibraryError):
    """The LLM path cannot work on a source (never distilled, checkout moved); one line."""


# ---------------------------------------------------------------- reports


@dataclass
class ItemResult:
    """What happened to one generated example or one repair."""

    kind: str  # generated | adapted
    target: str  # "core", or the id of the failing snippet repaired
    # pending, then passed (the only one stored), failed, timeout, skipped, rejected, refused,
    # malformed, error, budget or secret
    status: str = "pending"
    reason: str | None = None
    snippet_id: str | None = None
    iterations: int = 0
    model: str | None = None
    prompt_version: str | None = None
    verdict: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    prompts: dict[str, str] = field(default_factory=dict)

    def end(self, status: str, reason: str | None = None) -> ItemResult:
        self.status, self.reason = status, reason
        return self


@dataclass
class SourceLLMReport:
    """What the LLM pass did for one source."""

    source_id: str
    items: list[ItemResult] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    budget_stop: str | None = None
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing was attempted
    fatal: bool = False  # the endpoint failed in a way no later request can avoid
    seconds: float = 0.0

    def count(self, kind: str | None = None, status: str | None = None) -> int:
        return sum(1 for i in self.items
                   if (kind is None or i.kind == kind) and (status is None or i.status == status))


@dataclass
class LLMPassReport:
    """What the LLM pass did, source by source."""

    endpoint: str = ""
    sources: list[SourceLLMReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def items(self) -> list[ItemResult]:
        return [i for rep in self.sources for i in rep.items]

    @property
    def problems(self) -> list[str]:
        out = [p for rep in self.sources for p in rep.problems]
        out += [f"{rep.source_id}: budget stop: {rep.budget_stop}" for rep in self.sources if rep.budget_stop]
        return out

    @property
    def errors(self) -> dict[str, str]:
        return {rep.source_id: rep.error for rep in self.sources if rep.error}

    def totals(self) -> dict[str, Any]:
        usage = Usage()
        for rep in self.sources:
            usage.add(rep.usage)
        stored = [i for i in self.items if i.status == "passed"]
        return {
            "generated": sum(1 for i in stored if i.kind == "generated"),
            "adapted": sum(1 for i in stored if i.kind == "adapted"),
            "passed": len(stored),
            "failed": sum(1 for i in self.items if i.status not in ("passed", "budget")),
            "rejected": sum(1 for i in self.items if i.status == "rejected"),
            "budget_stops": sum(1 for rep in self.sources if rep.budget_stop),
            "tokens_prompt": usage.tokens_prompt,
            "tokens_completion": usage.tokens_completion,
            "cost_usd": round(usage.cost_usd, 6),
        }

    def summary(self) -> str:
        """The closing line: generated / adapted / passed / failed / budget stops, tokens and cost."""
        t = self.totals()
        line = (f"LLM: {t['generated']} generated, {t['adapted']} adapted, {t['passed']} passed, "
                f"{t['failed']} failed")
        if t["rejected"]:
            line += f" ({t['rejected']} rejected by the judge)"
        line += f"; {t['budget_stops']} budget stop{'s' * (t['budget_stops'] != 1)}"
        line += f"; {t['tokens_prompt'] + t['tokens_completion']} tokens, ${t['cost_usd']:.4f}"
        if self.errors:
            line += f"; {len(self.errors)} source{'s' * (len(self.errors) != 1)} failed"
        return line + f" ({self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"endpoint": self.endpoint, "sources": [asdict(r) for r in self.sources],
                "totals": self.totals(), "seconds": self.seconds}


# ---------------------------------------------------------------- the source as the LLM sees it


@dataclass
class SourceContext(Tree):
    """A distilled source's files at its pinned commit or version (``files``: all of them), and
    how to run code against it: the tree at its pin of ``tree.py``, as refresh plans it."""

    source: RegisteredSource = field(kw_only=True)

    def python_files(self) -> list[str]:
        """Python files worth showing: no tests, build or docs; the package's own modules first."""
        modules = self.modules()
        chosen = []
        for path in self.files:
            parts = path.split("/")
            if not path.endswith(".py") or parts[-1] in SKIP_FILES:
                continue
            if parts[-1].startswith("test_") or parts[-1].endswith("_test.py"):
                continue
            if any(p.startswith(".") or p.lower() in SKIP_DIRS or p.endswith((".dist-info", ".egg-info"))
                   for p in parts[:-1]):
                continue
            chosen.append(path)

        def order(path: str) -> tuple[int, int, str]:
            parts = path.removeprefix("src/").split("/")
            own = parts[0] in modules or parts[0].removesuffix(".py") in modules
            return (0 if own else 1, len(parts), path)

        return sorted(chosen, key=order)

    def modules(self) -> set[str]:
        """Top-level import names the source provides (packages and single-file modules)."""
        names: set[str] = set()
        for path in self.files:
            parts = path.split("/")
            if parts[0] == "src" and len(parts) > 1:
                parts = parts[1:]
            if len(parts) == 2 and parts[1] == "__init__.py":
                names.add(parts[0])
            elif len(parts) == 1 and parts[0].endswith(".py") and parts[0] not in SKIP_FILES:
                names.add(parts[0][:-3])
        return {n for n in names if n.isidentifier() and not n.startswith(("test", "_"))}

    def readme(self) -> tuple[str, str] | None:
        """(path, text) of the top-level README, Markdown preferred."""
        found = [p for p in self.files if "/" not in p and p.lower().startswith("readme")]
        found.sort(key=lambda p: (not p.lower().endswith((".md", ".markdown")), len(p)))
        for path in found:
            text = self.read(path, README_CHARS)
            if text and text.strip():
                return path, text
        return None


def source_context(library: Library, source_id: str) -> SourceContext:
    """The context of a registered, distilled source; raises GenerateError when there is none."""
    src = library.source(source_id)
    if src.state == "removed":
        raise GenerateError(f"source {source_id!r} was removed; add it again first")
    if src.kind == "package":
        info = sources.package_info(src.settings.package or src.url.removeprefix("pkg:"))
        return at_version(SourceContext, info, source=src, files=sorted({*info.files, *info.virtual}))
    if not src.last_commit:
        raise GenerateError(f"source {source_id!r} was never distilled; run `codedistiller refresh "
                            f"{source_id}` first")
    checkout = Path(src.location) if src.location else sources.checkout_path(library, src.id)
    head = sources.head_commit(checkout) if (checkout / ".git").is_dir() else None
    if head != src.last_commit:
        raise GenerateError(f"the checkout of {source_id!r} is not at the distilled commit "
                            f"{src.last_commit[:12]}; run `codedistiller refresh {source_id}` first")
    return at_commit(SourceContext, checkout, head, ref=src.settings.ref,
                          repository=src.settings.repository, source=src,
                          files=sources.tracked_files(checkout, head))


def has_core_snippet(library: Library, ctx: SourceContext) -> bool:
    """True when a passed snippet of the source imports one of its own modules (any, if none known)."""
    modules = ctx.modules()
    return any(not modules or modules & set(s.imports)
               for s in library.all(include_retired=False, source=ctx.source.id, validation="passed"))


# ---------------------------------------------------------------- text helpers


def _one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def clean_code(code: str) -> str:
    """The code without a surrounding Markdown fence, trailing spaces, and with one final newline."""
    text = code.strip("\n")
    lines = text.splitlines()
    if lines and lines[0].lstrip().startswith("```"):
        lines = lines[1:]
        if lines and lines[-1].strip().startswith("```"):
            lines = lines[:-1]
    return "\n".join(line.rstrip() for line in lines).strip("\n") + "\n"


def _outline_entry(path: str, text: str | None) -> str:
    if text is None:
        return f"{path}: (unreadable)"
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return f"{path}: (does not parse)"
    doc = (ast.get_docstring(tree) or "").strip().splitlines()
    names = [n.name for n in tree.body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and not n.name.startswith("_")]
    first = f" -- {doc[0][:120]}" if doc else ""
    defined = f"; defines {', '.join(names[:25])}" if names else ""
    return f"{path}{first}{defined}"


def _output_tail(v: Validation) -> str:
    """What a run printed (and why it ended, when it did not pass), for a data block."""
    out = (v.stdout_tail or "")[-OUTPUT_CHARS // 2:]
    err = (v.stderr_tail or "")[-OUTPUT_CHARS:]
    parts = [f"[why it ended]\n{v.reason}" if v.reason and v.status != "passed" else "",
             f"[stdout]\n{out}" if out.strip() else "", f"[stderr]\n{err}" if err.strip() else ""]
    return "\n".join(p for p in parts if p) or "(no output)"


# ---------------------------------------------------------------- the distiller


@dataclass
class _Environment:
    python_version: str
    installed: str


def _environment(ctx: SourceContext, interpreter: str | None) -> _Environment:
    from .sandbox.probe import installed_versions, python_version

    names = list(COMMON_DISTRIBUTIONS)
    if ctx.package:
        names.append(ctx.package)
    found = installed_versions(names, interpreter)
    installed = ", ".join(f"{n} {v}" for n, v in sorted(found.items(), key=lambda kv: kv[0].lower()) if v)
    return _Environment(python_version=python_version(interpreter), installed=installed or "only the standard library")


class Distiller:
    """The generate-execute-reflect loop for one source, within one budget.

    Raises nothing for an item's failure (it is reported on the ItemResult);
    BudgetExhausted and fatal LLMCallError propagate so the caller stops.
    """

    def __init__(self, library: Library, ctx: SourceContext, client: LLMClient, *,
                 budget: Budget | None = None, iterations: int = DEFAULT_ITERATIONS,
                 settings: Any = None) -> None:
        self.library = library
        self.ctx = ctx
        self.client = client
        self.config: LLMConfig = client.config
        self.budget = budget or Budget()
        self.iterations = max(1, iterations)
        self.settings = settings
        self.items: list[ItemResult] = []  # every item started, the one a budget stop cut short included
        self._env: _Environment | None = None
        self._outline: str | None = None

    # ------------------------------------------------------------ shared pieces

    @property
    def env(self) -> _Environment:
        if self._env is None:
            self._env = _environment(self.ctx, getattr(self.settings, "interpreter", None))
        return self._env

    def outline(self) -> str:
        """One line per relevant Python file: path, first docstring line, public names."""
        if self._outline is None:
            paths = self.ctx.python_files()[:OUTLINE_FILES]
            self._outline = "\n".join(_outline_entry(p, self.ctx.read(p, 200_000)) for p in paths)
        return self._outline

    def _modules_text(self) -> str:
        return ", ".join(sorted(self.ctx.modules())) or "(none found)"

    def _ask(self, item: ItemResult, name: str, schema: type, *, fast: bool,
             blocks: dict[str, Data | list[Data]], **values: Any) -> dict[str, Any]:
        """Render template ``name`` and ask; ``blocks`` maps placeholders to untrusted text, each
        piece sent inside its own data block."""
        nonce = new_nonce()
        for key, pieces in blocks.items():
            pieces = pieces if isinstance(pieces, list) else [pieces]
            values[key] = "\n".join(data_block(nonce, kind, label, text) for kind, label, text in pieces)
        prompt = build_prompt(name, nonce, **values)
        item.prompts[name] = prompt.task.version
        model = self.config.fast_model if fast else self.config.code_model
        answer = self.client.ask(prompt, schema, model=model, budget=self.budget, meter=item.usage)
        if not fast:
            item.model = answer.model
        return answer.data

    def _run(self, code: str, extra_path: Iterable[str] = ()) -> Validation:
        """The sandbox's verdict on ``code``; a syntax error is reported without running it."""
        try:
            compile(code, "snippet.py", "exec")
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            return Validation(status="failed", reason=f"SyntaxError: {getattr(exc, 'msg', exc)}"
                              + (f" (line {line})" if line else ""), when=utcnow(), duration=0.0,
                              stderr_tail=f"SyntaxError: {exc}")
        from .imports import imports_of, requirements_for
        from .sandbox import validate

        return validate(code, python_path=[*extra_path, *self.ctx.python_path], settings=self.settings,
                        requirements=requirements_for(imports_of(code)))

    # ------------------------------------------------------------ the loop

    def _loop(self, item: ItemResult, answer: dict[str, Any], writer: PromptTemplate,
              goal: Data, files: Data | list[Data],
              extra_path: list[str]) -> tuple[dict[str, Any], Validation] | None:
        """Run, reflect, repair until it passes or ``iterations`` runs are spent."""
        from .secrets import contains_secret

        while True:
            code = clean_code(answer["code"])
            answer["code"] = code
            if len(code) > CODE_CHARS:
                item.end("failed", f"the code is longer than {CODE_CHARS} characters")
                return None
            secret = contains_secret(code)
            if secret:
                item.end("secret", f"the code holds a credential ({secret}); not stored")
                return None
            self.budget.iterate()
            item.iterations += 1
            v = self._run(code, extra_path)
            if v.status == "passed":
                item.prompt_version = writer.tag
                return answer, v
            if v.status == "skipped" and (v.reason or "").startswith(("sandbox setup failed", "interpreter",
                                                                      "the interpreter")):
                item.end("skipped", f"the sandbox could not run it: {v.reason}")
                return None
            if item.iterations >= self.iterations:
                item.end(v.status if v.status in ("failed", "timeout", "skipped") else "failed",
                         f"still {v.status} after {item.iterations} run{'s' * (item.iterations != 1)}: "
                         f"{v.reason or 'no reason given'}")
                return None
            answer = self._ask(
                item, "repair", RepairAnswer, fast=False,
                blocks={"goal": goal, "code": ("code", "example.py", code),
                        "output": ("output", "sandbox run", _output_tail(v)), "files": files},
                status=v.status, modules=self._modules_text(),
                python_version=self.env.python_version, installed=self.env.installed)
            writer = template("repair")

    def _judge(self, item: ItemResult, goal: Data, code: str, v: Validation) -> dict[str, Any]:
        """The judge's verdict; a refusal, malformed answer or failed call gives ``demonstrates: None``."""
        try:
            data = self._ask(item, "judge", JudgeAnswer, fast=True,
                             blocks={"goal": goal, "code": ("code", "example.py", code),
                                     "output": ("output", "sandbox run", _output_tail(v))})
        except (LLMRefusal, LLMAnswerError) as exc:
            return {"demonstrates": None, "reason": f"no verdict: {exc}", "model": self.config.fast_model}
        except LLMCallError as exc:
            if exc.fatal:
                raise
            return {"demonstrates": None, "reason": f"no verdict: {exc}", "model": self.config.fast_model}
        return {"demonstrates": data["demonstrates"], "reason": _one_line(data.get("reason", ""), 300),
                "model": self.config.fast_model}

    def _guard(self, item: ItemResult, step: Callable[[], ItemResult]) -> ItemResult:
        """Run ``step``; an item-level LLM failure ends the item, budget and fatal errors propagate."""
        try:
            return step()
        except BudgetExhausted as exc:
            item.end("budget", str(exc))
            raise
        except LLMRefusal as exc:
            return item.end("refused", str(exc))
        except LLMAnswerError as exc:
            return item.end("malformed", str(exc))
        except LLMCallError as exc:
            item.end("error", str(exc))
            if exc.fatal:
                raise
            return item

    # ------------------------------------------------------------ generated

    def _pick_files(self, item: ItemResult, purpose: str) -> list[str]:
        """The most relevant files by the fast model's rating; the first outline files if that fails."""
        paths = self.ctx.python_files()[:OUTLINE_FILES]
        if not paths:
            return []
        try:
            data = self._ask(item, "rate", RateAnswer, fast=True,
                             blocks={"purpose": ("purpose", "stated purpose", purpose),
                                     "outline": ("outline", "python files", self.outline())})
        except (LLMRefusal, LLMAnswerError) as exc:
            item.reason = f"file rating unusable ({exc}); used the package's first files"
            return paths[:TOP_FILES]
        known = set(paths)
        scores: dict[str, int] = {}
        for r in data["ratings"]:
            if r["path"] in known:
                scores[r["path"]] = max(1, min(5, r["score"]))
        ranked = sorted(scores, key=lambda p: (-scores[p], paths.index(p)))
        top = [p for p in ranked if scores[p] >= 3][:TOP_FILES]
        return top or ranked[:TOP_FILES] or paths[:TOP_FILES]

    def _file_blocks(self, paths: list[str]) -> list[Data]:
        """The files' text, each cut to FILE_CHARS, FILES_CHARS in all."""
        blocks: list[Data] = []
        room = FILES_CHARS
        for path in paths:
            text = self.ctx.read(path, min(FILE_CHARS, room))
            if not text:
                continue
            blocks.append(("file", path, text))
            room -= len(text)
            if room <= 0:
                break
        return blocks or [("file", "none", "(no Python files)")]

    def generate(self) -> ItemResult:
        """Write, run and repair an example of the source's core functionality; store it if it passes."""
        item = ItemResult(kind="generated", target=GENERATED_ANCHOR)
        self.items.append(item)
        return self._guard(item, lambda: self._generate(item))

    def _generate(self, item: ItemResult) -> ItemResult:
        found = self.ctx.readme()
        readme = found[1] if found else "(the repository has no README)"
        data = self._ask(item, "purpose", PurposeAnswer, fast=True,
                         blocks={"readme": ("readme", found[0] if found else "README", readme),
                                 "outline": ("outline", "python files", self.outline() or "(no Python files)")},
                         source_name=self.ctx.source.id)
        purpose = _one_line(data["purpose"], 600)
        core = _one_line(data["core_functionality"], 300)
        goal = ("purpose", "stated purpose", f"{purpose}\nCore functionality: {core}")
        item.files = self._pick_files(item, purpose)
        files = self._file_blocks(item.files)
        answer = self._ask(item, "generate", CodeAnswer, fast=False,
                           blocks={"purpose": goal, "files": files, "core": ("task", "core functionality", core)},
                           modules=self._modules_text(), python_version=self.env.python_version,
                           installed=self.env.installed)
        done = self._loop(item, answer, template("generate"), goal, files, [])
        if done is None:
            return item
        answer, v = done
        item.verdict = self._judge(item, goal, answer["code"], v)
        if item.verdict["demonstrates"] is False:
            return item.end("rejected", f"the judge says it does not demonstrate the purpose: "
                                        f"{item.verdict['reason']}")
        primary = item.files[0] if item.files else (found[0] if found else "")
        source = Source(kind=self.ctx.source.kind, url=self.ctx.source.url, commit=self.ctx.commit,
                        ref=self.ctx.ref, path=primary, package=self.ctx.package, version=self.ctx.version,
                        license=self.ctx.license, repository=self.ctx.repository,
                        source_id=self.ctx.source.id)
        sid = snippet_id(self.ctx.source.id, "llm:generated", GENERATED_ANCHOR)
        snippet = self._snippet(sid, answer, v, source, item, "generated", {"anchor": GENERATED_ANCHOR},
                                tags=[])
        self._store(item, snippet)
        return item

    # ------------------------------------------------------------ adapted

    def repair(self, candidate: Snippet) -> ItemResult:
        """Repair a failing extracted snippet; store the fix as origin ``adapted`` if it passes.

        The original stays as it is (failed); the adapted one gets its own id.
        """
        item = ItemResult(kind="adapted", target=candidate.id, files=[candidate.source.path])
        self.items.append(item)
        return self._guard(item, lambda: self._repair(item, candidate))

    def _repair(self, item: ItemResult, candidate: Snippet) -> ItemResult:
        from .refresh import SCRIPT_KINDS

        extra: list[str] = []
        if candidate.origin.details.get("extracted_from") in SCRIPT_KINDS:
            folder = (self.ctx.root / candidate.source.path).parent
            if folder.is_dir():
                extra.append(str(folder))
        intent = candidate.title + (f"\n{candidate.summary}" if candidate.summary else "")
        goal = ("intent", f"{candidate.source.path} example", intent or "(no title)")
        files = ("outline", "python files", self.outline() or "(no Python files)")
        # The original already failed in the sandbox: start from its recorded failure.
        v = candidate.validation
        answer = self._ask(
            item, "repair", RepairAnswer, fast=False,
            blocks={"goal": goal, "code": ("code", candidate.source.path, candidate.code),
                    "output": ("output", "sandbox run", _output_tail(v)), "files": files},
            status=v.status, modules=self._modules_text(),
            python_version=self.env.python_version, installed=self.env.installed)
        done = self._loop(item, answer, template("repair"), goal, files, extra)
        if done is None:
            return item
        answer, v = done
        item.verdict = self._judge(item, goal, answer["code"], v)
        if item.verdict["demonstrates"] is False:
            return item.end("rejected", f"the judge says it does not keep the example's intent: "
                                        f"{item.verdict['reason']}")
        source = replace(candidate.source, commit=self.ctx.commit or candidate.source.commit,
                         version=self.ctx.version or candidate.source.version)
        sid = snippet_id(self.ctx.source.id, "llm:adapted", candidate.id)
        details = {"adapted_from": candidate.id, "adapted_from_revision": candidate.revision,
                   "adapted_from_sha256": candidate.code_sha256}
        if candidate.origin.details.get("extracted_from"):
            details["extracted_from"] = candidate.origin.details["extracted_from"]
        snippet = self._snippet(sid, answer, v, source, item, "adapted", details, tags=list(candidate.tags),
                                fallback_title=candidate.title, fallback_summary=candidate.summary)
        self._store(item, snippet, memory=(candidate.id, candidate.code_sha256))
        return item

    # ------------------------------------------------------------ storing

    def _snippet(self, sid: str, answer: dict[str, Any], v: Validation, source: Source, item: ItemResult,
                 kind: str, details: dict[str, Any], *, tags: list[str], fallback_title: str = "",
                 fallback_summary: str = "") -> Snippet:
        from .imports import imports_of, requirements_for

        code = answer["code"]
        imports = imports_of(code)
        title = _one_line(answer.get("title") or "", TITLE_CHARS) or fallback_title or "Example"
        summary = _one_line(answer.get("summary") or "", SUMMARY_CHARS) or fallback_summary
        usage = item.usage
        details = {
            **details,
            "iterations": item.iterations,
            "tokens_prompt": usage.tokens_prompt,
            "tokens_completion": usage.tokens_completion,
            "cost_usd": round(usage.cost_usd, 6),
            "calls": usage.calls,
            "judge": item.verdict,
            "files": list(item.files),
            "prompts": dict(item.prompts),
            "endpoint": self.config.base_url or "https://api.openai.com/v1",
        }
        if usage.estimated:
            details["tokens_estimated"] = True
        return Snippet(
            id=sid, code=code, title=title, summary=summary, tags=tags, imports=imports,
            requirements=requirements_for(imports), source=source,
            origin=Origin(kind=kind, model=item.model or self.config.code_model,
                          prompt_version=item.prompt_version, details=details),
            validation=v,  # the sandbox's verdict, nothing the model said
        )

    def _store(self, item: ItemResult, snippet: Snippet, memory: tuple[str, str] | None = None) -> None:
        """Upsert the snippet and remember the attempt: one transaction."""
        with self.library.transaction():
            current = self.library.source(self.ctx.source.id)
            if current.state == "removed":
                raise GenerateError(f"source {current.id} was removed during the LLM pass")
            self.library.upsert([snippet])
            remember(current, item, self.ctx.pin, memory)
            self.library.save_source(current)
        item.snippet_id = snippet.id
        item.end("passed", item.reason)


def remember(src: RegisteredSource, item: ItemResult, pin: str | None,
             adapted: tuple[str, str] | None = None) -> None:
    """Note the outcome on the source's settings so the next pass does not pay for it again."""
    memo = dict(src.settings.llm)
    entry = {"outcome": item.status if item.status != "pending" else "passed", "when": utcnow()}
    if item.kind == "generated":
        memo["generated"] = {"pin": pin, **entry}
    elif adapted is not None:
        repaired = dict(memo.get("adapted") or {})
        repaired[adapted[0]] = {"sha256": adapted[1], **entry}
        memo["adapted"] = repaired
    src.settings.llm = memo


def _remember_failure(library: Library, source_id: str, item: ItemResult, pin: str | None,
                      adapted: tuple[str, str] | None = None) -> None:
    if item.status in TRANSIENT or item.status == "passed":
        return
    with library.transaction():
        current = library.source(source_id)
        if current.state == "removed":
            return
        remember(current, item, pin, adapted)
        library.save_source(current)


# ---------------------------------------------------------------- the pass over sources


def distill_source(library: Library, source_id: str, client: LLMClient, *, budget: Budget | None = None,
                   iterations: int = DEFAULT_ITERATIONS, settings: Any = None, force: bool = False,
                   repairs: int = MAX_REPAIRS) -> SourceLLMReport:
    """The LLM pass over one source: repair failing extracted snippets, then generate the core
    example if no passed snippet demonstrates it. ``force`` ignores what earlier passes remember
    and generates even when a core snippet exists. Never raises for the source's failures.
    """
    from .refresh import SourceLock

    started = time.monotonic()
    rep = SourceLLMReport(source_id=source_id)
    budget = budget or Budget()
    lock = SourceLock(library, source_id)
    distiller: Distiller | None = None
    if not lock.acquire():
        rep.skipped = "another refresh is working on it"
        rep.problems.append(f"{source_id}: LLM pass skipped: another refresh is working on it")
        return rep
    try:
        try:
            ctx = source_context(library, source_id)
        except (LibraryError, OSError) as exc:
            rep.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return rep
        distiller = Distiller(library, ctx, client, budget=budget, iterations=iterations, settings=settings)
        memo = ctx.source.settings.llm
        tried = memo.get("adapted") or {}
        active = library.ids_for_source(source_id)

        def settled(entry: dict[str, Any] | None, key: str, value: str | None, sid: str) -> bool:
            """Tried on this very input already, and its result (if one was stored) is still active."""
            return bool(entry) and entry.get(key) == value and (entry.get("outcome") != "passed" or sid in active)

        failing = [s for s in library.all(include_retired=False, source=source_id, validation="failed")
                   if s.origin.kind in ("verbatim", "assembled")]
        failing.sort(key=lambda s: (s.source.path, s.id))
        todo = [s for s in failing if force or not settled(
            tried.get(s.id), "sha256", s.code_sha256, snippet_id(source_id, "llm:adapted", s.id))]
        for candidate in todo[:repairs]:
            item = distiller.repair(candidate)
            _remember_failure(library, source_id, item, ctx.pin, (candidate.id, candidate.code_sha256))
        if len(todo) > repairs:
            rep.problems.append(f"{source_id}: {len(todo) - repairs} failing snippets left for a later pass")
        done = settled(memo.get("generated"), "pin", ctx.pin,
                       snippet_id(source_id, "llm:generated", GENERATED_ANCHOR))
        if force or (not done and not has_core_snippet(library, ctx)):
            item = distiller.generate()
            _remember_failure(library, source_id, item, ctx.pin)
        elif not distiller.items:
            rep.skipped = "already tried for this commit" if done else "a validated snippet already demonstrates it"
    except BudgetExhausted:
        rep.budget_stop = budget.stopped
    except LLMCallError as exc:  # only fatal ones get here: the endpoint will not answer anything
        rep.error, rep.fatal = str(exc), True
    except (LLMError, LibraryError) as exc:
        rep.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    finally:
        lock.release()
        rep.items = distiller.items if distiller is not None else []
        for item in rep.items:
            rep.usage.add(item.usage)
        for item in rep.items:
            if item.status not in ("passed", "budget") and item.reason:
                rep.problems.append(f"{source_id}: {item.kind} {item.target}: {item.status}: {item.reason}")
        rep.seconds = time.monotonic() - started
    return rep


def llm_pass(library: Library, source_ids: Iterable[str] | None = None, *, config: LLMConfig,
             client: LLMClient | None = None, budget: Budget | None = None,
             iterations: int = DEFAULT_ITERATIONS, settings: Any = None, force: bool = False,
             repairs: int = MAX_REPAIRS) -> LLMPassReport:
    """Run the LLM pass over the given sources (default: all registered ones), each with a fresh
    budget of ``budget``'s limits. A fatal endpoint error (bad key, unknown model) stops the pass."""
    started = time.monotonic()
    report = LLMPassReport(endpoint=config.describe())
    ids = list(dict.fromkeys(source_ids)) if source_ids is not None else [s.id for s in library.sources()]
    own = client is None
    client = client or LLMClient(config)
    try:
        for sid in ids:
            limits = budget.limits() if budget is not None else {}
            rep = distill_source(library, sid, client, budget=Budget(**limits), iterations=iterations,
                                 settings=settings, force=force, repairs=repairs)
            report.sources.append(rep)
            if rep.fatal:
                report.sources += [SourceLLMReport(source_id=rest, skipped="not tried: the endpoint failed")
                                   for rest in ids[ids.index(sid) + 1:]]
                break
    finally:
        if own:
            client.close()
    report.seconds = time.monotonic() - started
    return report
