"""The contract of Anode: events, their validation, and ``state = fold(events)``.

Pure standard-library Python, so the same files load in the relay (CPython),
the browser client and the kernels (Pyodide).
"""

from .envelope import PushedEvent, StoredEvent, parse_pushed, stored, stored_from_json
from .errors import SchemaError
from .events import REGISTRY, Event, decode
from .materializer import advance, fold, fold_all
from .state import NotebookState

SCHEMA_VERSION = 1

__all__ = [
    "REGISTRY",
    "SCHEMA_VERSION",
    "Event",
    "NotebookState",
    "PushedEvent",
    "SchemaError",
    "StoredEvent",
    "advance",
    "decode",
    "fold",
    "fold_all",
    "parse_pushed",
    "stored",
    "stored_from_json",
]
