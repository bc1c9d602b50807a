"""The dev store of AuditEvents: a bounded JSON-lines file, written by a background thread.

Outside Azure (``make run``, tests) the per-tenant export reads from here; in Azure it reads Log
Analytics (``loganalytics.py``) and this store is refused, like the local secret store.

- ``put`` never blocks: events wait in a queue of ``QUEUE_SIZE``; when it is full the event is
  dropped and counted (``dropped``), so a stuck disk cannot stall requests.
- One thread appends what is queued, one line per event (``{"tenant", "event"}``), and flushes.
- The file is bounded: past ``max_bytes`` it becomes ``<name>.1`` (replacing the previous one)
  and a new file starts, so at most twice ``max_bytes`` are kept. Created owner-only (0600):
  AuditEvents name patients.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.auditevents.query import AuditQuery

QUEUE_SIZE = 10_000
MAX_BYTES = 20 * 1024 * 1024


class LocalAuditStore:
    """AuditEvents in a local file, by tenant; thread-safe."""

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = MAX_BYTES) -> None:
        self.path = Path(path)
        self._max_bytes = max_bytes
        self._queue: queue.Queue[tuple[str | None, dict[str, Any]]] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self.dropped = 0
        self._writer = threading.Thread(target=self._drain, name="audit-store", daemon=True)
        self._writer.start()

    def put(self, tenant_id: str | None, event: dict[str, Any]) -> None:
        """Queue one event for the file (dropped and counted when the queue is full)."""
        try:
            self._queue.put_nowait((tenant_id, event))
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def flush(self) -> None:
        """Wait until every queued event is in the file."""
        self._queue.join()

    def read(self, query: AuditQuery) -> list[dict[str, Any]]:
        """The tenant's events in the query's window, oldest first, at most ``limit + 1``."""
        self.flush()
        found = [
            event
            for tenant, event in self._lines()
            if tenant == query.tenant_id and query.admits(event["recorded"], event["id"])
        ]
        found.sort(key=lambda event: (event["recorded"], event["id"]))
        return found[: query.limit + 1]

    def _lines(self) -> Iterator[tuple[str | None, dict[str, Any]]]:
        for path in (self.path.with_name(self.path.name + ".1"), self.path):
            try:
                with path.open(encoding="utf-8") as lines:
                    for line in lines:
                        try:
                            item = json.loads(line)
                        except ValueError:
                            continue  # a line cut short by a crash
                        yield item.get("tenant"), item["event"]
            except FileNotFoundError:
                continue

    def _drain(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except OSError:
                with self._lock:
                    self.dropped += len(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list[tuple[str | None, dict[str, Any]]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size >= self._max_bytes:
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as out:
            for tenant, event in batch:
                out.write(json.dumps({"tenant": tenant, "event": event}, separators=(",", ":")))
                out.write("\n")
