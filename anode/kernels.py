"""Kernels on demand for ``anode serve --kernels auto``.

When a notebook has executions waiting and no live kernel, start a Node
kernel for it; when it has had nothing to do for ``idle_seconds``, stop it
(it ends its session cleanly). A kernel that dies is replaced the next time
work is waiting — the relay has meanwhile expired its lease, so what it had
claimed is pending again. Nobody has to start a kernel by hand.

When the relay checks credentials (``services.tokens`` is a token store),
each kernel gets its own ``kernel`` token for its notebook, and the token is
revoked as soon as that kernel is gone: a token never outlives its kernel.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from kernel_headless.launch import KernelSpec, LaunchError
from kernel_headless.launch.node import start_node_kernel
from kernel_headless.launch.sandbox import DEFAULT_MEMORY_MB
from relay.notebooks import OpenNotebook
from relay.services import Services
from relay.tokens import TokenStore
from shared_schema.events import KernelSessionEnded
from shared_schema.ids import SessionId

log = logging.getLogger("anode.kernels")


@dataclass
class ManagedKernel:
    notebook: str
    process: subprocess.Popen
    session_id: SessionId
    last_busy: float = field(default_factory=time.monotonic)
    #: The id of the kernel token issued for it (None when the relay has no auth).
    token_id: str | None = None


class KernelManager:
    def __init__(
        self,
        relay_url: str,
        *,
        pyodide_packages: str | None = None,
        idle_seconds: float = 300.0,
        lease_seconds: float = 5.0,
        check_seconds: float = 0.25,
        sandbox: str = "auto",
        memory_mb: int = DEFAULT_MEMORY_MB,
    ) -> None:
        self.relay_url = relay_url
        self.pyodide_packages = pyodide_packages
        self.sandbox = sandbox
        self.memory_mb = memory_mb
        self.idle_seconds = idle_seconds
        self.lease_seconds = lease_seconds
        self.check_seconds = check_seconds
        self.kernels: dict[str, ManagedKernel] = {}
        self._warned = False

    @asynccontextmanager
    async def running(self, services: Services) -> AsyncIterator[None]:
        """The ``create_app`` extension: watch while the relay serves."""
        task = asyncio.create_task(self._watch(services), name="anode-kernel-manager")
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await self.stop_all(services)

    async def _watch(self, services: Services) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            try:
                for opened in services.notebooks.loaded():
                    await self._tend(opened, services.tokens, may_start=services.cluster.on_duty)
            except Exception:  # one bad turn must not end the manager
                log.exception("kernel manager failed")

    async def _tend(
        self, opened: OpenNotebook, tokens: TokenStore | None = None, *, may_start: bool = True
    ) -> None:
        """Reap an exited kernel, stop an idle one, start one for waiting work. With several
        relays only the one on duty starts kernels (``relay/cluster.py``): one per notebook."""
        now = time.monotonic()
        managed = self.kernels.get(opened.id)
        if managed is not None and managed.process.poll() is not None:
            code = managed.process.returncode
            (log.info if code == 0 else log.warning)(
                "the kernel for %s exited with %s", opened.id, code
            )
            del self.kernels[opened.id]
            await _revoke(tokens, managed)
            managed = None
        busy = bool(opened.state.queue)
        if managed is not None:
            if busy:
                managed.last_busy = now
            elif now - managed.last_busy > self.idle_seconds:
                log.info("stopping the idle kernel of %s", opened.id)
                managed.process.terminate()  # it ends its session, then exits
            return
        state = opened.state
        # Work asked of a tab is a tab's; a tab kernel serves only its own person.
        waiting = any(run.runner is None for run in state.pending())
        served = any(session.host != "tab" for session in state.live_kernels())
        if may_start and waiting and not served:
            await self._start(opened.id, tokens)

    async def _start(self, notebook: str, tokens: TokenStore | None = None) -> None:
        record, token = (None, None)
        if tokens is not None:
            record, token = await tokens.issue(
                notebook, "kernel", expires_in=None, label="auto kernel"
            )
        spec = KernelSpec(
            relay=self.relay_url,
            notebook=notebook,
            lease_seconds=self.lease_seconds,
            label="auto",
            pyodide_packages=self.pyodide_packages,
            token=token,
            sandbox=self.sandbox,
            memory_mb=self.memory_mb,
        )
        try:
            process = start_node_kernel(spec, stdout=subprocess.DEVNULL)
        except LaunchError as error:
            if tokens is not None and record is not None:
                await tokens.revoke(record.id)
            if not self._warned:
                log.error("cannot start a kernel: %s", error)
                self._warned = True
            return
        log.info("started kernel %s for %s", spec.session_id, notebook)
        token_id = record.id if record is not None else None
        self.kernels[notebook] = ManagedKernel(
            notebook, process, spec.session_id, token_id=token_id
        )

    async def stop_all(self, services: Services, timeout: float = 5.0) -> None:
        """Stop every kernel as the relay shuts down, ending its session in the log.

        By now uvicorn accepts no connections, so a kernel could not push its
        own ``kernelSessionEnded``: told to stop, it would retry for seconds,
        give up, and leave its session ``live`` until its lease ran out after
        the next start (holding off a new kernel meanwhile). The services are
        still up, so the manager writes the end for it, then stops the process.
        """
        for managed in self.kernels.values():
            await self._end_session(services, managed)
            if managed.process.poll() is None:
                managed.process.kill()  # it has nothing left to say to a relay that is gone
        deadline = time.monotonic() + timeout
        for managed in self.kernels.values():
            while managed.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await _revoke(services.tokens, managed)
        self.kernels.clear()

    async def _end_session(self, services: Services, managed: ManagedKernel) -> None:
        try:
            opened = await services.notebooks.open(managed.notebook)
            session = opened.state.kernels.get(managed.session_id)
            if session is not None and session.status == "live":
                ended = KernelSessionEnded(
                    session_id=managed.session_id, reason="the relay shut down"
                )
                await services.notebooks.append_as_relay(managed.notebook, ended)
        except Exception:  # the store may be failing too; the lease then decides
            log.exception("could not end the session of the kernel for %s", managed.notebook)


async def _revoke(tokens: TokenStore | None, managed: ManagedKernel) -> None:
    """Revoke the token of a kernel that is gone (it must not outlive its kernel)."""
    if tokens is None or managed.token_id is None:
        return
    try:
        await tokens.revoke(managed.token_id)
    except Exception:  # the store may be failing; the token still dies with the data dir
        log.exception("could not revoke the token of the kernel for %s", managed.notebook)
    managed.token_id = None
