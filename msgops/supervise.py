"""`msgops serve` keeps the embedded PostgreSQL it started running: when the server dies (a crash,
a `kill -9`), it is started again on the same port, so the service's pool reconnects by itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from msgops.embedded import EmbeddedPostgres
from msgops.errors import UserError

log = logging.getLogger("msgops.serve")


class EmbeddedSupervisor:
    def __init__(self, embedded: EmbeddedPostgres, report: Callable[[str], None], interval_s: float = 0.5) -> None:
        self.embedded = embedded
        self.report = report
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-postgres-supervisor", daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            if self.embedded.running():
                continue
            self.report(f"embedded PostgreSQL (port {self.embedded.port}) is not running; restarting it")
            try:
                self.embedded.restart()
            except UserError as exc:
                self.report(f"embedded PostgreSQL did not restart: {exc}")
                continue
            self.restarts += 1
            self.report(f"embedded PostgreSQL restarted on port {self.embedded.port}")
