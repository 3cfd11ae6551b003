"""Docstrings a module makes rather than writes: templates filled in by decorators.

Libraries such as pandas write one template and fill it in per function:
``@Appender(_doc % {"klass": "Series"})``, ``@Substitution(name="groupby")``,
``@doc(_shared_docs["x"], klass="DataFrame")``, ``func.__doc__ = _template.format(...)``,
``textwrap.dedent(...)``. Their examples are as good as any other docstring's, so
the text is worked out here, statically, from what the same file holds: string literals,
names bound to them at module level, ``+``, ``dedent``, ``.format`` and ``%`` with literal
(or likewise resolvable) values. Nothing is imported or run: the file is hostile input,
and a template built any other way (from another module, at run time) is left alone.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator

MAX_CHARS = 200_000  # a made docstring longer than this is not one
MAX_MADE = 4_000_000  # characters one module may make in all (hostile files: bounded memory and time)
_FIELD = re.compile(r"\{(\w+)\}")
_PERCENT = re.compile(r"%\((\w+)\)s")

Strings = dict[str, tuple[str, int]]  # name or name[key] -> (text, line of its first literal)


class Texts:
    """The strings a module binds at its top level: ``strings`` (name or ``name[key]`` -> text
    and line) and ``dicts`` (name -> its string values), filled in order by ``module_texts``."""

    def __init__(self) -> None:
        self.strings: Strings = {}
        self.dicts: dict[str, dict[str, str]] = {}
        self.left = MAX_MADE  # characters this module may still make

    def spend(self, text: str) -> bool:
        """Count ``text`` as made; whether it fits (one string and the module's total)."""
        self.left -= len(text)
        return len(text) <= MAX_CHARS and self.left >= 0


def _key(node: ast.expr) -> str | None:
    """``name`` or ``name[key]`` for a Name or a literal-keyed Subscript of one."""
    if isinstance(node, ast.Name):
        return node.id
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        return f"{node.value.id}[{node.slice.value}]"
    return None


def _values(node: ast.expr, strings: Texts) -> dict[str, str] | None:
    """A ``{...}`` / ``dict(...)`` of resolvable strings (others left out), or a resolvable name."""
    out: dict[str, str] = {}
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values, strict=True):
            if isinstance(k, ast.Constant) and isinstance(k.value, str) and (text := fold(v, strings)):
                out[k.value] = text[0]
        return out
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return _keywords(node.keywords, strings)
    if isinstance(node, ast.Name) and node.id in strings.dicts:
        return strings.dicts[node.id]
    return None


def _keywords(keywords: list[ast.keyword], strings: Texts) -> dict[str, str]:
    return {k.arg: text[0] for k in keywords if k.arg and (text := fold(k.value, strings))}


def _fill(template: str, values: dict[str, str], pattern: re.Pattern[str]) -> str:
    """``template`` with the fields ``values`` knows filled in, the others left as written."""
    return pattern.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def fold(node: ast.expr, strings: Texts) -> tuple[str, int] | None:
    """The text an expression makes and the line of its first literal, or None if unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value, node.lineno) if len(node.value) <= MAX_CHARS else None
    if (key := _key(node)) is not None:
        return strings.strings.get(key)
    if strings.left < 0:  # the module made all it may: nothing more is worked out
        return None
    out: tuple[str, int] | None = None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = fold(node.left, strings), fold(node.right, strings)
        if left and right:
            out = (left[0] + right[0], left[1])
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = fold(node.left, strings)
        values = _values(node.right, strings)
        if left and values is not None:
            out = (_fill(left[0], values, _PERCENT), left[1])
        elif left and (single := fold(node.right, strings)):
            out = (left[0].replace("%s", single[0], 1), left[1])
    elif isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "dedent" and len(node.args) == 1 and (inner := fold(node.args[0], strings)):
            out = (textwrap.dedent(inner[0]), inner[1])
        elif name == "format" and isinstance(func, ast.Attribute) and (base := fold(func.value, strings)):
            out = (_fill(base[0], _keywords(node.keywords, strings), _FIELD), base[1])
    elif isinstance(node, ast.JoinedStr):
        parts, line = [], node.lineno
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and (text := fold(value.value, strings)):
                parts.append(text[0])
            else:
                return None
        out = ("".join(parts), line)
    if out is not None and not strings.spend(out[0]):
        return None
    return out


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """A module's statements in order, those of its class bodies included (not functions')."""
    for node in body:
        yield node
        if isinstance(node, ast.ClassDef):
            yield from _statements(node.body)


def module_texts(tree: ast.Module) -> Texts:
    """The strings a module binds at its top level and in class bodies, in order (``NAME = ...``,
    ``table["key"] = ...``, and the string values of ``table = {"key": ...}``)."""
    texts = Texts()
    for node in _statements(tree.body):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        text = fold(node.value, texts)
        for target in targets:
            key = _key(target)
            if key is None:
                continue
            if text is not None:
                texts.strings[key] = text
                if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
                    texts.dicts.setdefault(target.value.id, {})[key.split("[", 1)[1][:-1]] = text[0]
            elif isinstance(target, ast.Name) and isinstance(node.value, ast.Dict):
                values = _values(node.value, texts) or {}
                texts.dicts[target.id] = values
                for k, v in values.items():
                    texts.strings[f"{target.id}[{k}]"] = (v, node.lineno)
    return texts


def made_docstring(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, strings: Texts,
                   assigned: Strings) -> tuple[str, int] | None:
    """The docstring decorators (or a later ``name.__doc__ = ...``) give ``node``, with the
    line of its first literal; None when it has its own docstring only, or none that can be known.

    Decorators apply bottom-up: ``Appender`` adds its text to the docstring so far,
    ``Substitution`` fills ``%(name)s`` fields (or ``%s``), ``doc`` joins its texts and fills
    ``{name}`` fields."""
    own = ast.get_docstring(node, clean=False)
    doc: tuple[str, int] | None = (own, node.body[0].lineno) if own else None  # type: ignore[attr-defined]
    made = False
    for decorator in reversed(node.decorator_list):
        if not isinstance(decorator, ast.Call):
            continue
        func = decorator.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "Appender" and decorator.args and (text := fold(decorator.args[0], strings)):
            join = next((k.value.value for k in decorator.keywords if k.arg == "join"
                         and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)), "")
            doc = (doc[0] + join + text[0], doc[1]) if doc else text
            made = True
        elif name == "Substitution" and doc:
            values = _keywords(decorator.keywords, strings)
            if values:
                doc = (_fill(doc[0], values, _PERCENT), doc[1])
            elif decorator.args and (single := fold(decorator.args[0], strings)):
                doc = (doc[0].replace("%s", single[0], 1), doc[1])
            made = True
        elif name == "doc":
            texts = [t for a in decorator.args if (t := fold(a, strings))]
            if doc:
                texts = [doc, *texts] if not decorator.args else texts
            if texts:
                joined = "\n".join(textwrap.dedent(t[0]).strip("\n") for t in texts)
                doc = (_fill(joined, _keywords(decorator.keywords, strings), _FIELD), texts[0][1])
                made = True
        if made and doc and not strings.spend(doc[0]):
            return None  # too long, or the module made all it may
    later = assigned.get(node.name)
    if later is not None:
        return later
    return doc if made and doc and len(doc[0]) <= MAX_CHARS else None


def doc_assignments(tree: ast.Module, strings: Texts) -> Strings:
    """``name.__doc__ = <text>`` at module level: name -> (text, line)."""
    out: Strings = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if (isinstance(target, ast.Attribute) and target.attr == "__doc__"
                    and isinstance(target.value, ast.Name) and (text := fold(node.value, strings))):
                out[target.value.id] = text
    return out
