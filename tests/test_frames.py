"""SSE frames the relay encodes itself are the ones sse-starlette would write.

The relay encodes each message once and sends every subscriber the same
bytes (sse-starlette passes ``bytes`` through), so the format is ours to
keep equal to ``ServerSentEvent.encode()``.
"""

from __future__ import annotations

import pytest
from sse_starlette import ServerSentEvent

from relay.frames import frame
from relay.hub import EventBatch, Hub, Signal


@pytest.mark.parametrize(
    "event, data, id",
    [
        ("events", '[{"seq":1,"args":{"text":"a\\nb \\u2028 é"}}]', "1"),
        ("presence", '{"client_id":"tab"}', None),
        ("resync", '{"after": 12}', None),
        ("odd", "two\nlines\r\nand\rthree", "7"),
        ("empty", "", None),
    ],
)
def test_a_frame_is_what_sse_starlette_writes(event: str, data: str, id: str | None) -> None:
    assert frame(event, data, id) == ServerSentEvent(data, event=event, id=id).encode()


def test_a_published_batch_is_encoded_once_for_every_subscriber() -> None:
    hub = Hub()
    subscribers = [hub.subscribe("nb") for _ in range(3)]
    batch = EventBatch((4, 5), ('{"seq":4}', '{"seq":5}'))
    hub.publish("nb", batch)
    hub.publish("nb", Signal('{"client_id":"x"}'))
    frames = [subscriber.queue.get_nowait().frame() for subscriber in subscribers]
    assert frames[0] == b'id: 5\r\nevent: events\r\ndata: [{"seq":4},{"seq":5}]\r\n\r\n'
    assert all(item is frames[0] for item in frames)  # the same bytes object
    signals = [subscriber.queue.get_nowait().frame() for subscriber in subscribers]
    assert all(item is signals[0] for item in signals)
    assert batch.after(4).frame() == b'id: 5\r\nevent: events\r\ndata: [{"seq":5}]\r\n\r\n'
