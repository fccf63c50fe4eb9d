"""What a notebook needs installed: the packages ``%pip install`` put in, pinned.

They live in the notebook's metadata, as ``metadata["anode"]["requirements"]``
(a list of ``name==version``), so an ``.ipynb`` export carries them and an
import brings them back. Only fold rules change that list: a kernel's
``requirementsAdded`` (what a ``%pip install`` resolved to) and an editor's
``requirementRemoved``; every kernel that serves the notebook installs them
before its first cell.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import SchemaError

#: Where in the notebook's metadata (``metadata[KEY]["requirements"]``).
KEY = "anode"
MAX_REQUIREMENTS = 200
MAX_LENGTH = 200

#: A project name (PEP 508), with an optional ``==version`` pin (PEP 440 characters).
REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:==(?P<version>[A-Za-z0-9.+!_-]+))?"
)
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


def canonical(name: str) -> str:
    """PEP 503's normalized name: ``Foo_Bar.baz`` and ``foo-bar-baz`` are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def check_requirement(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_LENGTH or not REQUIREMENT.fullmatch(value):
        raise SchemaError("invalid_arg", "must be a package name, optionally with ==version")
    return value


def check_requirement_list(value: Any) -> list[str]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_REQUIREMENTS:
        raise SchemaError("invalid_arg", f"must be a list of 1-{MAX_REQUIREMENTS} requirements")
    return [check_requirement(item) for item in value]


def check_name(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_LENGTH or not _NAME.fullmatch(value):
        raise SchemaError("invalid_arg", "must be a package name")
    return value


def requirements_of(metadata: dict[str, Any]) -> list[str]:
    """The notebook's requirements, as recorded (well-formed ones only: an imported file
    may hold anything there)."""
    ours = metadata.get(KEY)
    listed = ours.get("requirements") if isinstance(ours, dict) else None
    if not isinstance(listed, list):
        return []
    return [item for item in listed if isinstance(item, str) and REQUIREMENT.fullmatch(item)]


def with_requirements(metadata: dict[str, Any], requirements: list[str]) -> dict[str, Any]:
    """``metadata`` with its requirements replaced (a new dict; nothing shared is changed)."""
    previous = metadata.get(KEY)
    ours = dict(previous) if isinstance(previous, dict) else {}
    if requirements:
        ours["requirements"] = requirements
    else:
        ours.pop("requirements", None)
    updated = dict(metadata)
    if ours:
        updated[KEY] = ours
    else:
        updated.pop(KEY, None)
    return updated


def added(current: list[str], new: list[str]) -> list[str]:
    """``current`` with each of ``new`` put in: a project already there is re-pinned in place."""
    result = list(current)
    for requirement in new:
        name = canonical(_name(requirement))
        for index, existing in enumerate(result):
            if canonical(_name(existing)) == name:
                result[index] = requirement
                break
        else:
            result.append(requirement)
    return result[:MAX_REQUIREMENTS]


def removed(current: list[str], name: str) -> list[str]:
    return [item for item in current if canonical(_name(item)) != canonical(name)]


def _name(requirement: str) -> str:
    match = REQUIREMENT.fullmatch(requirement)
    return match["name"] if match else requirement
