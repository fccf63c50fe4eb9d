"""Size limits every party enforces, so a bad client cannot bloat a notebook.

They are generous for real notebooks and small enough that one event never
strains the relay, a browser or a kernel. The relay's own request limits
(body size, batch length) live in its configuration.
"""

MAX_ID = 64
MAX_TITLE = 256
MAX_LABEL = 128
MAX_KEY = 128
MAX_REASON = 1_000
MAX_SOURCE = 1_000_000  # characters in a cell
MAX_OPS_COMPONENTS = 100_000  # retain/insert/delete components in one edit
#: Rebasing an edit over the edits that landed after its base revision costs,
#: per landed edit, its components, the edit's own, and REBASE_STEP_COST for
#: the step itself. An edit over MAX_REBASE_WORK is refused by the relay and
#: ignored by every fold (~60 ms of CPython at most), so no edit, however
#: stale, stalls a relay or a browser. An honest client rebases its buffered
#: edit as the log arrives and sends it a revision or two behind.
MAX_REBASE_WORK = 80_000
REBASE_STEP_COST = 8
#: The same, summed over the edits of one push.
MAX_BATCH_REBASE_WORK = 400_000
MAX_STREAM_TEXT = 1_000_000  # characters in one streamAppended
MAX_OUTPUT_BYTES = 4_000_000  # one output (serialized JSON), e.g. a PNG in base64
MAX_METADATA_BYTES = 64_000  # one metadata value (serialized JSON)
MAX_TRACEBACK_LINES = 1_000
#: Outputs one imported cell may bring (``cellImported``).
MAX_IMPORTED_OUTPUTS = 1_000
#: Keys of one metadata object or attachment set in one event.
MAX_KEYS = 1_000
MAX_JSON_DEPTH = 32
MAX_LEASE_SECONDS = 3_600.0
MIN_LEASE_SECONDS = 0.5
MAX_EXECUTION_COUNT = 2**31 - 1
