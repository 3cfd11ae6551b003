"""Assembly: make one block of a document run on its own.

Documentation is a story: a later block uses names defined blocks earlier
(``df = load_waltons()`` three blocks up). ``Document(blocks).assemble(i)``
prepends the fewest earlier *statements* of the same document that define the
names block ``i`` uses -- transitively, imports counting as definitions,
builtins never needed -- and, for a name bound by assignment, the statements
in between that update that object in place (``kmf.fit(T, E)`` before
``kmf.plot()``). A block that would need more than ``MAX_CONTEXT_LINES``
earlier lines is not assembled but marked ``needs too much context``.

Blocks hold runnable Python: ``session_lines`` reads the code of a ``>>>`` or
IPython session, dropping prompts and printed output.
"""

from __future__ import annotations

import ast
import builtins
import re
from bisect import bisect_left
from dataclasses import dataclass, field

from .imports import imports_from_tree

BUILTIN_NAMES = frozenset(dir(builtins)) | {
    "__builtins__",
    "__doc__",
    "__file__",
    "__loader__",
    "__name__",
    "__package__",
    "__spec__",
}


# Methods that only read or show an object (and ``plot*``/``print*`` ones): calling one is not an
# update a later block depends on.
READ_ONLY_METHODS = frozenset({
    "head", "tail", "describe", "info", "summary", "print_summary", "show", "to_string",
    "__repr__", "__str__", "items", "keys", "values", "get", "count", "index", "copy",
})


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


def _updating_call(node: ast.expr) -> bool:
    """True when a method chain calls a method that may update its object (not only read, plot, print)."""
    while True:
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Attribute):
                return False
            attr = node.func.attr
            if attr not in READ_ONLY_METHODS and not attr.startswith(("plot", "print")):
                return True
            node = node.func.value
        elif isinstance(node, (ast.Attribute, ast.Subscript)):
            node = node.value
        else:
            return False


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
    def visit_Constant(self, node: ast.Constant) -> None:
        pass  # binds and needs nothing (and NodeVisitor's default for it is slow)

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
        if self.module_level and isinstance(value, ast.Call) and _updating_call(value):
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


MAX_CONTEXT_LINES = 30
"""A block needing more earlier lines than this is not assembled: it is ``skipped: needs too much context``."""

@dataclass(frozen=True)
class Statement:
    """One top-level statement of a block: where it is and what it binds and needs."""

    block: int
    first: int  # 1-based line range in the block's code, decorators included
    last: int
    analysis: Analysis

    @property
    def lines(self) -> int:
        return self.last - self.first + 1


@dataclass
class Assembly:
    """A block made to run alone: its code, how many lines came from earlier, what it imports."""

    code: str
    context_lines: int = 0
    imports: list[str] = field(default_factory=list)
    skipped: str = ""  # why the block was not assembled (it then holds only its own code)

    @property
    def assembled(self) -> bool:
        return self.context_lines > 0


class Document:
    """The blocks of one document, their top-level statements indexed once by the names they touch.

    ``assemble(i)`` takes the fewest earlier statements block ``i`` needs:
    for each name it uses, the latest statement before it that binds the name
    (an import brings its import line, not the block around it), transitively,
    and for a name bound by assignment the statements in between that update
    the object in place. A name nobody binds comes from the document's star
    import, written as an explicit ``from m import name`` of just the names the
    block needs (with several star imports, their lines as they are). Work per block is bounded by the context cap, so a
    document costs time linear in its size.
    """

    def __init__(self, blocks: list[Block]) -> None:
        self.blocks = blocks
        self.statements: list[Statement] = []
        self.starts: list[int] = []  # index of each block's first statement
        self.defines: dict[str, list[int]] = {}
        self.modifies: dict[str, list[int]] = {}
        self.stars: list[int] = []
        self.trees: dict[int, ast.stmt] = {}
        self._lines: dict[int, list[str]] = {}  # each block's code lines, split once
        for b, block in enumerate(blocks):
            self.starts.append(len(self.statements))
            try:
                body = block.tree.body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
            for node in body:
                first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
                try:
                    facts = analyse(ast.Module(body=[node], type_ignores=[]))
                except RecursionError:
                    facts = Analysis(frozenset(), frozenset(), frozenset(), frozenset(), False)
                pos = len(self.statements)
                self.statements.append(Statement(b, first, node.end_lineno or node.lineno, facts))
                self.trees[pos] = node
                for name in facts.defines:
                    self.defines.setdefault(name, []).append(pos)
                for name in facts.modifies:
                    self.modifies.setdefault(name, []).append(pos)
                if facts.star:
                    self.stars.append(pos)

    def _latest(self, positions: list[int] | None, before: int) -> int | None:
        if not positions:
            return None
        k = bisect_left(positions, before)
        return positions[k - 1] if k else None

    def needed(self, index: int, cap: int = MAX_CONTEXT_LINES) -> list[int] | None:
        """Positions of the earlier statements block ``index`` needs, in order; None when over ``cap`` lines."""
        found = self._needed(index, cap)
        return None if found is None else found[0]

    def _needed(self, index: int, cap: int) -> tuple[list[int], set[str]] | None:
        """``needed`` and the names only a star import can provide."""
        start = self.starts[index]
        starred: set[str] = set()
        chosen: set[int] = set()
        lines = 0
        work: list[tuple[int, str]] = [(start, n) for n in self.blocks[index].analysis.needs]
        seen: set[tuple[int, str]] = set()
        while work:
            pos, name = work.pop()
            if (pos, name) in seen:
                continue
            seen.add((pos, name))
            found = self._latest(self.defines.get(name), pos)
            take: list[int] = []
            if found is None:
                take = self.stars[: bisect_left(self.stars, pos)]
                if take:
                    starred.add(name)
            else:
                take.append(found)
                if name not in self.statements[found].analysis.imported:
                    updates = self.modifies.get(name, [])
                    lo, hi = bisect_left(updates, found + 1), bisect_left(updates, pos)
                    if hi - lo > cap:
                        return None
                    take.extend(updates[lo:hi])
            for k in take:
                if k in chosen:
                    continue
                chosen.add(k)
                lines += self.statements[k].lines
                if lines > cap:
                    return None
                work.extend((k, n) for n in self.statements[k].analysis.needs)
        return sorted(chosen), starred

    def _explicit(self, pos: int, names: set[str]) -> str | None:
        """``from m import a, b`` for the one-line star import at ``pos``, importing only ``names``."""
        node = self.trees[pos]
        if (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                and len(node.names) == 1 and node.lineno == node.end_lineno and names):
            return f"from {node.module} import {', '.join(sorted(names))}"
        return None

    def assemble(self, index: int, cap: int = MAX_CONTEXT_LINES) -> Assembly:
        """Block ``index`` preceded by the earlier statements it needs (see the class docstring)."""
        alone = self.own(index)
        own, imports = alone.code.strip("\n"), set(alone.imports)
        found = self._needed(index, cap)
        if found is None:
            return Assembly(own + "\n", 0, sorted(imports),
                            f"needs too much context: over {cap} lines from earlier in the document")
        needed, starred = found
        stars = [pos for pos in needed if self.statements[pos].analysis.star]
        # One star import provides every name nobody binds: import just those, explicitly.
        explicit = self._explicit(stars[0], starred) if len(stars) == 1 else None
        groups: list[list[str]] = []  # the lines taken from each earlier block, in order
        current, lines_of, last_line = -1, [], 0
        for pos in needed:
            statement = self.statements[pos]
            imports.update(imports_from_tree(self.trees[pos]))
            if statement.block != current:
                current, last_line = statement.block, 0
                lines_of = self._lines.get(current) or self._lines.setdefault(
                    current, self.blocks[current].code.split("\n"))
                groups.append([])
            for number in range(max(statement.first, last_line + 1), statement.last + 1):
                line = lines_of[number - 1]
                if explicit and statement.analysis.star and ";" not in line:
                    line = explicit
                groups[-1].append(line)
            last_line = max(last_line, statement.last)
        context = ["\n".join(group) for group in groups]
        code = "\n\n".join(context + [own]) + "\n"
        return Assembly(code, sum(len(g) for g in groups), sorted(imports))

    def own(self, index: int) -> Assembly:
        """Block ``index`` exactly as it is, with the modules it imports."""
        block = self.blocks[index]
        try:
            imports = imports_from_tree(block.tree)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            imports = []
        return Assembly(block.code.strip("\n") + "\n", 0, imports)

    def needed_blocks(self, index: int) -> list[int]:
        """Indices of the earlier blocks that give block ``index`` a statement (no cap)."""
        needed = self.needed(index, cap=1 << 30) or []
        return sorted({self.statements[k].block for k in needed})


def needed_blocks(blocks: list[Block], index: int) -> list[int]:
    """Indices of the earlier blocks block ``index`` takes statements from, in document order."""
    return Document(blocks).needed_blocks(index)


def assemble(blocks: list[Block], index: int) -> tuple[str, bool]:
    """Code of block ``index`` preceded by the earlier statements it needs; True when any were added."""
    result = Document(blocks).assemble(index, cap=1 << 30)
    return result.code, result.assembled


PROMPT = re.compile(r"^\s*(?:>>>|In \[\d*\]:)(?: |$)")
_PS2 = re.compile(r"^\s*\.\.\.:?(?: |$)")


def is_session(text: str) -> bool:
    """True when ``text`` is a ``>>>`` or IPython ``In [n]:`` session rather than plain code."""
    for line in text.splitlines():
        if line.strip():
            return bool(PROMPT.match(line))
    return False


def _without_directive(code: str) -> tuple[str, bool]:
    """``code`` without a trailing ``# doctest: ...`` comment; True when that comment says +SKIP."""
    k = code.find("doctest:")
    if k < 0:
        return code, False
    head = code[:k].rstrip()
    if not head.endswith("#"):
        return code, False
    return head[:-1].rstrip(), "+SKIP" in code[k:]


def _parses(lines: list[str]) -> bool:
    try:
        ast.parse("\n".join(lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def session_lines(lines: list[str]) -> list[tuple[int, str]]:
    """Code lines of a ``>>>``/IPython session as (offset in ``lines``, code), outputs dropped.

    A statement whose expected output is a traceback is dropped with that
    output: it demonstrates an error, and would make the snippet fail. So is a
    statement marked ``# doctest: +SKIP`` (doctest never runs it); other
    directive comments are removed. ``...`` lines after a complete one-line
    statement are its ``+ELLIPSIS`` output, not a continuation.
    """
    statements: list[list[tuple[int, str]]] = []
    raises: list[bool] = []
    in_code = False
    for offset, line in enumerate(lines):
        prompt = PROMPT.match(line)
        if prompt:
            code, skip = _without_directive(line[prompt.end() :])
            statements.append([(offset, code)])
            raises.append(skip)
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
        if raised:
            continue
        if len(statement) > 1:
            texts = [text for _, text in statement]
            if not _parses(texts) and _parses(texts[:1]):
                statement = statement[:1]  # the "..." lines were +ELLIPSIS output
        code.extend(statement)
    return code

