"""A workload for synchronous callers: its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from testbed.workload.knobs import Knobs
from testbed.workload.service import Workload


class WorkloadThread:
    """A `Workload` on its own event loop in a background thread, for synchronous callers."""

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="workload",
                                        daemon=True)

    @property
    def knobs(self) -> Knobs:
        return self.workload.knobs

    def call(self, coroutine: Any, timeout: float = 120.0) -> Any:
        """Run a coroutine on the workload's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, **kwargs: Any) -> WorkloadThread:
        self._thread.start()
        self.call(self.workload.start(**kwargs))
        return self

    def stop(self, drain: float = 15.0) -> None:
        try:
            self.call(self.workload.stop(drain=drain), timeout=drain + 60.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def stop_projector(self) -> None:
        self.call(self.workload.stop_projector())

    def start_projector(self) -> None:
        self._loop.call_soon_threadsafe(self.workload.start_projector)
