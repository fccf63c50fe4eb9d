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
MAX_SOURCE = 1_000_000          # characters in a cell
MAX_OPS_COMPONENTS = 100_000    # retain/insert/delete components in one edit
MAX_STREAM_TEXT = 1_000_000     # characters in one streamAppended
MAX_OUTPUT_BYTES = 4_000_000    # one output (serialized JSON), e.g. a PNG in base64
MAX_METADATA_BYTES = 64_000     # one metadata value (serialized JSON)
MAX_TRACEBACK_LINES = 1_000
MAX_JSON_DEPTH = 32
MAX_LEASE_SECONDS = 3_600.0
MIN_LEASE_SECONDS = 0.5
MAX_EXECUTION_COUNT = 2**31 - 1
