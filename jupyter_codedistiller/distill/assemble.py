"""Assembly: make one block of a document run on its own.

Documentation is a story: a later block uses names defined blocks earlier
(``df = load_waltons()`` three blocks up). ``assemble(blocks, i)`` prepends
the minimal earlier blocks of the same document that define the names block
``i`` uses -- transitively, imports counting as definitions, builtins never
needed -- and, for a name bound by assignment, the blocks in between that
update that object in place (``kmf.fit(T, E)`` before ``kmf.plot()``).

Blocks hold runnable Python: ``strip_prompts`` turns a ``>>>`` or IPython
session into code, dropping prompts and printed output.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

BUILTIN_NAMES = frozenset(dir(builtins)) | {
    "__builtins__",
    "__doc__",
    "__file__",
    "__loader__",
    "__name__",
    "__package__",
    "__spec__",
}


@dataclass(frozen=True)
class Analysis:
    """What a block binds and needs at module level."""

    defines: frozenset[str]
    needs: frozenset[str]
    modifies: frozenset[str]  # assigned-to objects updated in place: obj.attr = ..., obj.method()
    imported: frozenset[str]  # the subset of ``defines`` bound by import statements
    star: bool  # has ``from module import *``: may define anything


@dataclass
class Block:
    """One piece of runnable code of a document, with its 1-based line range in the file."""

    code: str
    line_start: int | None = None
    line_end: int | None = None
    _tree: ast.Module | None = field(default=None, init=False, repr=False, compare=False)
    _analysis: Analysis | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tree(self) -> ast.Module:
        """The parsed code; raises SyntaxError (or ValueError) when it is not Python."""
        if self._tree is None:
            self._tree = ast.parse(self.code)
        return self._tree

    @property
    def analysis(self) -> Analysis:
        """Def-use facts of the block (empty for code that does not parse)."""
        if self._analysis is None:
            try:
                self._analysis = analyse(self.tree)
            except (SyntaxError, ValueError, RecursionError):
                self._analysis = Analysis(frozenset(), frozenset(), frozenset(), frozenset(), False)
        return self._analysis


def _root_name(node: ast.AST) -> str | None:
    """``df`` for ``df.loc[0, "x"]`` or ``kmf.fit(T).plot``; None when the chain has no name root."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


class _Names(ast.NodeVisitor):
    """Walks one scope in execution order, recording loads, binds and nested free names.

    ``needs`` holds names loaded before this scope bound them (sequential reading,
    right for module and class bodies); ``loads`` and ``binds`` hold everything,
    for function bodies where any binding makes a name local.
    """

    def __init__(self, module_level: bool) -> None:
        self.module_level = module_level
        self.bound: set[str] = set()
        self.needs: set[str] = set()
        self.loads: set[str] = set()
        self.deferred: set[str] = set()  # free names of nested function bodies
        self.modifies: set[str] = set()
        self.imported: set[str] = set()
        self.globals: set[str] = set()
        self.star = False

    # -- primitives
    def _load(self, name: str) -> None:
        self.loads.add(name)
        if name not in self.bound:
            self.needs.add(name)

    def _bind(self, name: str) -> None:
        self.bound.add(name)

    def _visit_all(self, nodes: list) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node)

    def _modified_target(self, target: ast.AST) -> None:
        if self.module_level and isinstance(target, (ast.Attribute, ast.Subscript)):
            root = _root_name(target)
            if root:
                self.modifies.add(root)

    # -- names
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._load(node.id)
        else:
            self._bind(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals.update(node.names)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            self._bind(name)
            self.imported.add(name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.star = True
            else:
                name = alias.asname or alias.name
                self._bind(name)
                self.imported.add(name)

    # -- statements whose parts run in an order different from their fields
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._modified_target(target)
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        self._modified_target(node.target)
        if isinstance(node.target, ast.Name):
            self._load(node.target.id)
            self._bind(node.target.id)
        else:
            self.visit(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._visit_all([node.value, node.annotation])
        self._modified_target(node.target)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        self._visit_all(node.body + node.orelse)

    visit_AsyncFor = visit_For

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._modified_target(target)
            if not isinstance(target, ast.Name):
                self.visit(target)

    def visit_Expr(self, node: ast.Expr) -> None:
        value = node.value.value if isinstance(node.value, ast.Await) else node.value
        if self.module_level and isinstance(value, ast.Call) and isinstance(
            value.func, ast.Attribute
        ):
            root = _root_name(value.func)
            if root:
                self.modifies.add(root)
        self.visit(node.value)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._visit_all([node.type])
        if node.name:
            self._bind(node.name)
        self._visit_all(node.body)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self._visit_all([node.pattern])
        if node.name:
            self._bind(node.name)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._bind(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self._visit_all(node.keys + node.patterns)
        if node.rest:
            self._bind(node.rest)

    # -- nested scopes
    def _arguments(self, args: ast.arguments) -> list[str]:
        every = args.posonlyargs + args.args + args.kwonlyargs
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        for arg in every:
            self._visit_all([arg.annotation])
        self._visit_all(args.defaults + [d for d in args.kw_defaults if d is not None])
        return [arg.arg for arg in every]

    def _function_free(self, params: list[str], body: list[ast.AST]) -> set[str]:
        inner = _Names(module_level=False)
        inner.bound.update(params)
        inner._visit_all(body)
        free = (inner.loads - inner.bound) | inner.deferred | (inner.loads & inner.globals)
        # ``global x; x = ...`` inside a function defines x for the whole document
        self.bound.update(inner.bound & inner.globals)
        return free

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_all(node.decorator_list)
        params = self._arguments(node.args)
        self._visit_all([node.returns])
        self._bind(node.name)
        self.deferred |= self._function_free(params, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        params = self._arguments(node.args)
        self.deferred |= self._function_free(params, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_all(node.decorator_list + node.bases + [k.value for k in node.keywords])
        inner = _Names(module_level=False)
        inner._visit_all(node.body)
        for name in inner.needs | inner.deferred:
            self._load(name)
        self._bind(node.name)

    def _comprehension(self, node: ast.AST, elements: list[ast.AST]) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        inner = _Names(module_level=False)
        for i, gen in enumerate(generators):
            if i:
                inner.visit(gen.iter)
            inner.visit(gen.target)
            inner._visit_all(gen.ifs)
        inner._visit_all(elements)
        for name in (inner.loads - inner.bound) | inner.deferred:
            self._load(name)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_ListComp
    visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])


def analyse(tree: ast.Module) -> Analysis:
    """Names ``tree`` binds at module level and names it needs from before it."""
    names = _Names(module_level=True)
    names._visit_all(tree.body)
    needs = (names.needs | (names.deferred - names.bound)) - BUILTIN_NAMES
    return Analysis(
        defines=frozenset(names.bound),
        needs=frozenset(needs),
        modifies=frozenset(names.modifies),
        imported=frozenset(names.imported),
        star=names.star,
    )


def needed_blocks(blocks: list[Block], index: int) -> list[int]:
    """Indices of the earlier blocks block ``index`` needs to run alone, in document order."""
    chosen: set[int] = set()
    work: list[tuple[int, str]] = []
    seen: set[tuple[int, str]] = set()

    def choose(k: int) -> None:
        if k not in chosen:
            chosen.add(k)
            work.extend((k, name) for name in blocks[k].analysis.needs)

    work.extend((index, name) for name in blocks[index].analysis.needs)
    while work:
        pos, name = work.pop()
        if (pos, name) in seen:
            continue
        seen.add((pos, name))
        for j in range(pos - 1, -1, -1):
            facts = blocks[j].analysis
            if name in facts.defines:
                choose(j)
                if name not in facts.imported:
                    for k in range(j + 1, pos):
                        if name in blocks[k].analysis.modifies:
                            choose(k)
                break
        else:
            for j in range(pos - 1, -1, -1):
                if blocks[j].analysis.star:
                    choose(j)
                    break
    chosen.discard(index)
    return sorted(chosen)


def assemble(blocks: list[Block], index: int) -> tuple[str, bool]:
    """Code of block ``index`` preceded by the earlier blocks it needs; True when any were added."""
    parts = [blocks[k].code.strip("\n") for k in needed_blocks(blocks, index)]
    parts.append(blocks[index].code.strip("\n"))
    return "\n\n".join(parts) + "\n", len(parts) > 1


PROMPT = re.compile(r"^\s*(?:>>>|In \[\d*\]:)(?: |$)")
_PS2 = re.compile(r"^\s*\.\.\.:?(?: |$)")


def is_session(text: str) -> bool:
    """True when ``text`` is a ``>>>`` or IPython ``In [n]:`` session rather than plain code."""
    for line in text.splitlines():
        if line.strip():
            return bool(PROMPT.match(line))
    return False


def session_lines(lines: list[str]) -> list[tuple[int, str]]:
    """Code lines of a ``>>>``/IPython session as (offset in ``lines``, code), outputs dropped.

    A statement whose expected output is a traceback is dropped with that
    output: it demonstrates an error, and would make the snippet fail.
    """
    statements: list[list[tuple[int, str]]] = []
    raises: list[bool] = []
    in_code = False
    for offset, line in enumerate(lines):
        prompt = PROMPT.match(line)
        if prompt:
            statements.append([(offset, line[prompt.end() :])])
            raises.append(False)
            in_code = True
            continue
        prompt = _PS2.match(line) if in_code else None
        if prompt:
            statements[-1].append((offset, line[prompt.end() :]))
            continue
        if in_code and line.strip().startswith("Traceback (most recent call last)"):
            raises[-1] = True
        in_code = False  # an output line ends the statement above it
    code: list[tuple[int, str]] = []
    for statement, raised in zip(statements, raises, strict=True):
        if not raised:
            code.extend(statement)
    return code


def strip_prompts(text: str) -> str:
    """The code of a ``>>>`` or IPython session: prompts and printed output dropped."""
    return "\n".join(line for _, line in session_lines(text.splitlines())).strip("\n") + "\n"
