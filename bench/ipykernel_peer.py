"""The peer for the kernel round trip: a local ipykernel, spoken to as Jupyter does.

    request -> first output = ``execute("print(1)")`` sent on the shell channel
                              -> its ``stream`` message read on IOPub

jupyter_client starts ipykernel as a process on this machine and talks ZMQ
to it, which is what JupyterLab's server does for every cell. Nothing is
stored on the way (Anode's round trip goes through the durable log twice:
the request and the output are both committed before anyone sees them).
``ipykernel`` and ``jupyter_client`` are bench-only dependencies
(``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import time
from typing import Any


def ipykernel_latencies(runs: int, warmup: int) -> list[float] | str:
    """Seconds from ``execute`` to the first ``stream`` output, per run; or why not."""
    try:
        from jupyter_client.manager import start_new_kernel
    except ImportError:
        return "ipykernel is not installed (pip install -e '.[bench]')"
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        latencies = []
        for index in range(warmup + runs):
            sent = time.perf_counter()
            msg_id = client.execute("print(1)")
            _first_stream(client, msg_id)
            if index >= warmup:
                latencies.append(time.perf_counter() - sent)
            _wait_idle(client, msg_id)
            time.sleep(0.005)  # a pause, as between two presses of Run (as for Anode)
        return latencies
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def _first_stream(client: Any, msg_id: str) -> None:
    while True:
        message = client.get_iopub_msg(timeout=10)
        if message["parent_header"].get("msg_id") == msg_id and message["msg_type"] == "stream":
            return


def _wait_idle(client: Any, msg_id: str) -> None:
    while True:
        message = client.get_iopub_msg(timeout=10)
        if (
            message["parent_header"].get("msg_id") == msg_id
            and message["msg_type"] == "status"
            and message["content"]["execution_state"] == "idle"
        ):
            return
