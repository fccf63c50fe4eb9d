"""Checks for event arguments: each takes an untrusted value and returns it
validated (and normalized where that matters), or raises ``SchemaError``.

A check is a plain callable, so an event's fields read as a table of what
each argument may hold. No third-party validation library: this module must
import in Pyodide with the standard library alone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from . import limits, ot
from .errors import SchemaError
from .ids import ID_PATTERN

Check = Callable[[Any], Any]


def _invalid(detail: str) -> SchemaError:
    return SchemaError("invalid_arg", detail)


def identifier(value: Any) -> str:
    """A cell, execution, session or event id: 1-64 URL-safe characters."""
    if not isinstance(value, str):
        raise _invalid(f"must be an id string, not {_type_name(value)}")
    if not ID_PATTERN.fullmatch(value):
        raise _invalid("must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def text(max_length: int, *, allow_empty: bool = True) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise _invalid(f"must be a string, not {_type_name(value)}")
        if len(value) > max_length:
            raise SchemaError("too_large", f"is {len(value)} characters; the limit is {max_length}")
        if not allow_empty and not value:
            raise _invalid("must not be empty")
        return value

    return check


def choice(*options: str) -> Check:
    allowed = frozenset(options)

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise _invalid(f"must be one of {', '.join(sorted(allowed))}, not {value!r:.40}")
        return value

    return check


def integer(minimum: int, maximum: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"must be an integer, not {_type_name(value)}")
        if not minimum <= value <= maximum:
            raise _invalid(f"must be between {minimum} and {maximum}, not {value}")
        return value

    return check


def number(minimum: float, maximum: float) -> Check:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _invalid(f"must be a number, not {_type_name(value)}")
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise _invalid(f"must be between {minimum} and {maximum}, not {value}")
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _invalid(f"must be true or false, not {_type_name(value)}")
    return value


def optional(inner: Check) -> Check:
    """``None`` or whatever ``inner`` accepts."""

    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def json_value(max_bytes: int, *, max_depth: int = limits.MAX_JSON_DEPTH) -> Check:
    """Any JSON value (finite numbers only), at most ``max_bytes`` serialized."""

    def check(value: Any) -> Any:
        _check_json(value, 0, max_depth)
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
        if size > max_bytes:
            raise SchemaError("too_large", f"is {size} bytes of JSON; the limit is {max_bytes}")
        return value

    return check


def json_object(max_bytes: int, *, max_depth: int = limits.MAX_JSON_DEPTH) -> Check:
    as_json = json_value(max_bytes, max_depth=max_depth)

    def check(value: Any) -> dict:
        if not isinstance(value, dict):
            raise _invalid(f"must be an object, not {_type_name(value)}")
        return as_json(value)

    return check


def text_ops(value: Any) -> ot.TextOps:
    """An edit in the ot.js form, normalized."""
    try:
        return ot.validate(value, max_components=limits.MAX_OPS_COMPONENTS)
    except ot.OTError as error:
        raise _invalid(str(error)) from None


def string_list(max_items: int, max_length: int) -> Check:
    item = text(max_length)

    def check(value: Any) -> list[str]:
        if not isinstance(value, list):
            raise _invalid(f"must be a list of strings, not {_type_name(value)}")
        if len(value) > max_items:
            raise SchemaError("too_large", f"has {len(value)} items; the limit is {max_items}")
        for index, entry in enumerate(value):
            try:
                item(entry)
            except SchemaError as error:
                raise error.at(f"[{index}]") from None
        return list(value)

    return check


def key_values(value_check: Check, max_keys: int = limits.MAX_KEYS) -> Check:
    """An object of at most ``max_keys`` non-empty keys, each value checked on its own."""

    def check(value: Any) -> dict:
        if not isinstance(value, dict):
            raise _invalid(f"must be an object, not {_type_name(value)}")
        if len(value) > max_keys:
            raise SchemaError("too_large", f"has {len(value)} keys; the limit is {max_keys}")
        checked = {}
        for key, entry in value.items():
            if not isinstance(key, str) or not 0 < len(key) <= limits.MAX_KEY:
                raise _invalid(f"keys must be 1-{limits.MAX_KEY} characters")
            try:
                checked[key] = value_check(entry)
            except SchemaError as error:
                raise error.at(key) from None
        return checked

    return check


def items(item_check: Check, max_items: int) -> Check:
    """A list of at most ``max_items`` entries, each checked (and normalized) on its own."""

    def check(value: Any) -> list:
        if not isinstance(value, list):
            raise _invalid(f"must be a list, not {_type_name(value)}")
        if len(value) > max_items:
            raise SchemaError("too_large", f"has {len(value)} items; the limit is {max_items}")
        checked = []
        for index, entry in enumerate(value):
            try:
                checked.append(item_check(entry))
            except SchemaError as error:
                raise error.at(f"[{index}]") from None
        return checked

    return check


def _check_json(value: Any, depth: int, max_depth: int) -> None:
    if depth > max_depth:
        raise _invalid(f"nests deeper than {max_depth} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid("must not contain NaN or Infinity")
        return
    if isinstance(value, list):
        for entry in value:
            _check_json(entry, depth + 1, max_depth)
        return
    if isinstance(value, dict):
        for key, entry in value.items():
            if not isinstance(key, str):
                raise _invalid("object keys must be strings")
            _check_json(entry, depth + 1, max_depth)
        return
    raise _invalid(f"must be JSON, not {_type_name(value)}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
