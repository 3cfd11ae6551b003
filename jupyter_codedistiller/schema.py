"""Checks and JSON Schema derived from declared records: dataclasses whose type hints say
what JSON each field holds.

A record is a dataclass. Each field's type hint is one of ``str``, ``int``, ``float``,
``bool``, ``None``, ``Any``, ``Literal[...]`` (an enum), ``list[X]``, ``dict[str, X]``,
another record, or a union of these (``X | None``). What a type cannot say goes in the
field's metadata, made by ``rule``: ``max_length`` (characters of a text, items of a list),
``nonblank``, ``pattern``, ``minimum``, ``description``, and ``items`` (the rule each item of
a list must keep). A field without a default is
required. From that one declaration come:

- ``check(record, data, ...)``: whether JSON ``data`` fits the record; a ``RecordError``
  names the first place that does not, in one line. Strict by default (a field over its
  ``max_length`` is refused); ``coerce=True`` reads a model's answer leniently (texts cut to
  their length, ``"3"`` read as 3, list items that do not fit dropped).
- ``check_choices(instance)``: the enum fields of a constructed record (``__post_init__``).
- ``json_schema(hint)`` / ``record_schema(record)``: JSON Schema (OpenAPI 3.1), written into
  ``server/openapi.yaml`` by ``schemafiles.py``, which also writes the TypeScript types.

Only the standard library: the core imports this, and nothing here runs at ``%load_ext``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin


class RecordError(ValueError):
    """JSON that does not fit a declared record (a Snippet, a request body, an answer)."""


def rule(*, max_length: int | None = None, nonblank: bool = False, pattern: str | None = None,
         minimum: int | None = None, description: str | None = None,
         items: dict[str, Any] | None = None) -> dict[str, Any]:
    """A field's limits beyond its type, for ``dataclasses.field(metadata=rule(...))``.
    ``items``: the limits of each item of a list, itself a ``rule(...)``."""
    found = {"max_length": max_length, "nonblank": nonblank or None, "pattern": pattern,
             "minimum": minimum, "description": description,
             "items": items["schema"] if items is not None else None}
    return {"schema": {k: v for k, v in found.items() if v is not None}}


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One declared field: its name, type hint, limits and whether it must be given."""

    name: str
    hint: Any
    limits: dict[str, Any]
    required: bool


@cache
def fields_of(record: type) -> tuple[FieldSpec, ...]:
    """The declared fields of ``record``, type hints resolved (cached per class)."""
    hints = typing.get_type_hints(record)
    return tuple(
        FieldSpec(f.name, hints[f.name], dict(f.metadata.get("schema", {})),
                  f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(record) if f.init
    )


def is_record(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _options(hint: Any) -> tuple[Any, ...]:
    """The members of a union, or the hint alone."""
    if get_origin(hint) in (Union, types.UnionType):
        return get_args(hint)
    return (hint,)


# ---------------------------------------------------------------- checking


class _Misfit(Exception):
    def __init__(self, path: str, template: str) -> None:
        super().__init__(path, template)
        self.path, self.template = path, template


def _describe(hint: Any) -> str:
    if hint is str:
        return "a string"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a number"
    if hint is type(None) or hint is None:
        return "null"
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(hint))
    if origin is list:
        inner = _describe(get_args(hint)[0])
        return "a list of " + (inner.removeprefix("a ") + "s" if inner.startswith("a ") else inner)
    if origin is dict or is_record(hint):
        return "an object"
    return " or ".join(_describe(o) for o in _options(hint))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fit(hint: Any, value: Any, limits: dict[str, Any], path: str, mode: _Mode) -> Any:
    """``value`` checked against ``hint`` (coerced in lenient mode); raises _Misfit."""
    options = _options(hint)
    if len(options) > 1:
        if value is None and type(None) in options:
            return None
        for option in options:  # the option of the value's own JSON type says what is wrong
            if option is not type(None) and _same_kind(option, value):
                return _fit(option, value, limits, path, mode)
        raise _Misfit(path, "{where} must be " + _describe(hint))
    if hint is Any or hint is object:
        return value
    if hint is type(None) or hint is None:
        if value is None:
            return None
        raise _Misfit(path, "{where} must be null")
    origin = get_origin(hint)
    if origin is Literal:
        allowed = get_args(hint)
        if isinstance(value, str) and value in allowed:
            return value
        raise _Misfit(path, "{where} must be one of " + ", ".join(map(str, allowed))
                      + f"; got {_shown(value)}")
    if hint is str:
        return _text(value, limits, path, mode)
    if hint is bool:
        if mode.coerce and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise _Misfit(path, "{where} must be true or false")
        return value
    if hint is int:
        return _whole(value, limits, path, mode)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Misfit(path, "{where} must be a number")
        return value
    if origin is list:
        return _items(get_args(hint)[0], value, limits, path, mode)
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        if not isinstance(value, dict):
            raise _Misfit(path, "{where} must be an object")
        out = {}
        for k, v in value.items():
            _fit(key_hint, k, {}, path, mode)
            out[k] = _fit(value_hint, v, {}, _join(path, str(k)), mode)
        return out
    if is_record(hint):
        return _record(hint, value, path, mode)
    raise TypeError(f"{path}: a record field may not be declared as {hint!r}")


def _same_kind(hint: Any, value: Any) -> bool:
    """Whether ``value`` is the JSON kind ``hint`` holds (text, number, list, object...)."""
    origin = get_origin(hint)
    if hint is Any or hint is object:
        return True
    if hint is str or origin is Literal:
        return isinstance(value, str)
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list)
    return isinstance(value, dict)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any, limits: dict[str, Any], path: str, mode: _Mode) -> str:
    if not isinstance(value, str):
        raise _Misfit(path, "{where} must be a string")
    most = limits.get("max_length")
    if most is not None and len(value) > most:
        if not mode.coerce:
            raise _Misfit(path, f"{{where}} is longer than {most} characters")
        value = value[:most]
    if limits.get("nonblank") and not value.strip():
        raise _Misfit(path, "{where} must not be blank")
    pattern = limits.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        raise _Misfit(path, "{where} has characters it may not hold")
    return value


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _whole(value: Any, limits: dict[str, Any], path: str, mode: _Mode) -> int:
    if mode.coerce and not isinstance(value, bool):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
    least = limits.get("minimum")
    if not isinstance(value, int) or isinstance(value, bool) or (least is not None and value < least):
        at_least = f" of at least {least}" if least is not None else ""
        raise _Misfit(path, f"{{where}} must be a whole number{at_least}")
    return value


def _items(item_hint: Any, value: Any, limits: dict[str, Any], path: str, mode: _Mode) -> list[Any]:
    if not isinstance(value, list):
        raise _Misfit(path, "{where} must be " + _describe(list[item_hint]))
    most = limits.get("max_length")
    if most is not None and len(value) > most:
        if not mode.coerce:
            raise _Misfit(path, f"{{where}} holds more than {most} items")
        value = value[:most]
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_fit(item_hint, item, limits.get("items", {}), f"{path}[{i}]", mode))
        except _Misfit:
            if not mode.coerce:  # a model's answer: an item that does not fit is dropped
                raise
    return out


def _record(record: type, value: Any, path: str, mode: _Mode) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Misfit(path, "{where} must be an object")
    specs = fields_of(record)
    if mode.refuse_unknown:
        names = [s.name for s in specs]
        unknown = sorted(k for k in value if k not in names)
        if unknown:
            raise _Misfit(_join(path, str(unknown[0])), "unknown {where}; expected " + ", ".join(names))
    out: dict[str, Any] = {}
    for spec in specs:
        given = value.get(spec.name)
        if given is None and (spec.name not in value or mode.null_is_absent):
            if spec.required:
                raise _Misfit(_join(path, spec.name), "{where} is required")
            continue
        out[spec.name] = _fit(spec.hint, given, spec.limits, _join(path, spec.name), mode)
    return out


@dataclasses.dataclass(frozen=True)
class _Mode:
    refuse_unknown: bool
    coerce: bool
    null_is_absent: bool


def check(record: type, data: Any, *, refuse_unknown: bool = False, coerce: bool = False,
          null_is_absent: bool = False, label: Callable[[str], str] = str,
          whole: str = "the record") -> dict[str, Any]:
    """The fields of ``record`` that JSON ``data`` gives, checked against their declaration.

    Raises RecordError with one line: ``label(path)`` names the place (``source.kind``,
    ``sources[2]``). ``refuse_unknown``: a key the record does not declare is an error (else
    ignored). ``null_is_absent``: null counts as not given. ``coerce``: read leniently (see
    the module). ``whole`` names ``data`` itself when it is not an object.
    """
    if not isinstance(data, dict):
        raise RecordError(f"{whole} must be a JSON object")
    try:
        return _record(record, data, "", _Mode(refuse_unknown, coerce, null_is_absent))
    except _Misfit as exc:
        raise RecordError(exc.template.format(where=label(exc.path))) from None


@cache
def _choice_fields(record: type) -> tuple[tuple[str, tuple[str, ...]], ...]:
    found = []
    for spec in fields_of(record):
        literals = [o for o in _options(spec.hint) if get_origin(o) is Literal]
        if literals:
            found.append((spec.name, get_args(literals[0]) + ((None,) if type(None) in _options(spec.hint) else ())))
    return tuple(found)


def check_choices(instance: Any, prefix: str) -> None:
    """Refuse an enum field of a just-built record holding a value its ``Literal`` does not list."""
    for name, allowed in _choice_fields(type(instance)):
        value = getattr(instance, name)
        if value not in allowed:
            shown = ", ".join(str(a) for a in allowed if a is not None)
            raise RecordError(f"{_join(prefix, name)} must be one of {shown}; got {_shown(value)}")


# ---------------------------------------------------------------- JSON Schema


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_PLAIN_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def json_schema(hint: Any, limits: dict[str, Any] | None = None,
                names: dict[tuple[Any, ...], str] | None = None) -> dict[str, Any]:
    """The JSON Schema of a type hint; records and the enums named in ``names`` (Literal
    arguments -> component name) become ``$ref`` s to OpenAPI components."""
    limits = limits or {}
    names = names or {}
    options = _options(hint)
    if len(options) > 1:
        if all(o in _PLAIN_TYPES for o in options):
            schema = {"type": [_PLAIN_TYPES[o] for o in options]}
            schema.update(_limit_keywords(limits, "string" in schema["type"], "integer" in schema["type"]))
            return schema
        parts = [json_schema(o, limits, names) for o in options]
        return {"anyOf": parts}
    if hint is Any or hint is object:
        return {}
    if hint in _PLAIN_TYPES:
        return {"type": _PLAIN_TYPES[hint], **_limit_keywords(limits, hint is str, hint is int)}
    origin = get_origin(hint)
    if origin is Literal:
        values = get_args(hint)
        if values in names:
            return _ref(names[values])
        return {"type": "string", "enum": list(values)}
    if origin is list:
        schema = {"type": "array", "items": json_schema(get_args(hint)[0], limits.get("items"), names)}
        if limits.get("max_length") is not None:
            schema["maxItems"] = limits["max_length"]
        return schema
    if origin is dict:
        value_schema = json_schema(get_args(hint)[1], None, names)
        return {"type": "object", "additionalProperties": value_schema} if value_schema else {"type": "object"}
    if is_record(hint):
        return _ref(hint.__name__)
    raise TypeError(f"no JSON Schema for {hint!r}")


def _limit_keywords(limits: dict[str, Any], text: bool, whole: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if text and limits.get("max_length") is not None:
        out["maxLength"] = limits["max_length"]
    if text and limits.get("nonblank"):
        out["minLength"] = 1
    if text and limits.get("pattern"):
        out["pattern"] = f"^(?:{limits['pattern']})$"
    if whole and limits.get("minimum") is not None:
        out["minimum"] = limits["minimum"]
    return out


def record_schema(record: type, *, names: dict[tuple[Any, ...], str] | None = None,
                  all_required: bool = True) -> dict[str, Any]:
    """The JSON Schema of a record: an object of exactly its fields. ``all_required``: every
    field is always written (an answer); else only the fields without a default (a request)."""
    properties = {}
    for spec in fields_of(record):
        schema = json_schema(spec.hint, spec.limits, names)
        if spec.limits.get("description"):
            schema = {**schema, "description": spec.limits["description"]}
        properties[spec.name] = schema
    out: dict[str, Any] = {"type": "object"}
    doc = " ".join((record.__doc__ or "").strip().split("\n\n")[0].split())
    if doc and not doc.startswith(f"{record.__name__}("):
        out["description"] = doc
    out["additionalProperties"] = False
    required = [s.name for s in fields_of(record) if all_required or s.required]
    if required:
        out["required"] = required
    out["properties"] = properties
    return out
