"""A worker thread that processes only the newest item: what a node slower than its input needs.

`submit(item)` replaces whatever was waiting (counted in `dropped`), so a slow detector, lifter or model never
builds a queue of stale frames; `process(item)` runs on the worker thread and an exception in it is handed to
`on_error` instead of killing the thread. No ROS here: nodes own one and stop it in `destroy_node`.
"""

from __future__ import annotations

import threading


class LatestWorker:
    def __init__(self, process, on_error, name: str):
        self._process = process
        self._on_error = on_error
        self._latest = None
        self._wake = threading.Condition()
        self._running = True
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item) -> None:
        with self._wake:
            if self._latest is not None:
                self.dropped += 1
            self._latest = item
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._latest is None and self._running:
                    self._wake.wait(0.5)
                if not self._running:
                    return
                item, self._latest = self._latest, None
            try:
                self._process(item)
            except Exception as err:  # noqa: BLE001 - one bad item must not stop the worker
                self._on_error(err)

    def stop(self, timeout_s: float = 5.0) -> None:
        with self._wake:
            self._running = False
            self._wake.notify()
        self._thread.join(timeout=timeout_s)
