"""The one exception the schema raises: an event that does not fit."""

from __future__ import annotations


class SchemaError(ValueError):
    """An event or argument that does not match the schema.

    ``code`` is a stable machine-readable word (the relay puts it in its JSON
    error); ``path`` points at the offending part, e.g. ``events[3].args.cell_id``.
    """

    def __init__(self, code: str, detail: str, path: str = "") -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.code = code
        self.detail = detail
        self.path = path

    def at(self, prefix: str) -> SchemaError:
        """The same error, located under ``prefix`` (for nested validation)."""
        joint = "" if self.path.startswith("[") else "."
        path = f"{prefix}{joint}{self.path}" if self.path else prefix
        return SchemaError(self.code, self.detail, path)
