"""Triggers in LMDB record tables: specs, cursors and every invocation's signed receipt.

An invocation commits in one transaction: its receipt and the cursor that moves past the
entries it consumed. A crash before that commit leaves the cursor where it was, so the
batch runs again after a restart (and only the committed receipt names those entries);
a crash after it cannot run them again. Blocking (LMDB): call from a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.triggers.model import Cursor, TriggerSpec
from storage.records import RecordTables, Writer


def _receipt_key(name: str, invocation: int) -> str:
    return f"{name}/{invocation:020d}"


class TriggerStore:
    def __init__(self, path: Path) -> None:
        self._tables = RecordTables(path, ("specs", "cursors", "receipts"))

    def specs(self) -> list[TriggerSpec]:
        return [TriggerSpec.from_record(record) for record in self._tables.values("specs")]

    def spec(self, name: str) -> TriggerSpec | None:
        record = self._tables.get("specs", name)
        return None if record is None else TriggerSpec.from_record(record)

    def cursor(self, name: str) -> Cursor:
        record = self._tables.get("cursors", name)
        return Cursor() if record is None else Cursor.from_record(record)

    def deploy(self, spec: TriggerSpec) -> Cursor:
        """Store ``spec``; a redeploy of the same name keeps its cursor (the stream goes on where it was)."""

        def change(w: Writer) -> Cursor:
            w.put("specs", spec.name, spec.record())
            held = w.get("cursors", spec.name)
            if held is not None:
                return Cursor.from_record(held)
            cursor = Cursor(state=spec.state)
            w.put("cursors", spec.name, cursor.record())
            return cursor

        return self._tables.write(change)

    def remove(self, name: str) -> bool:
        """Forget the trigger, its cursor and its receipts (a new trigger of that name starts afresh)."""

        def change(w: Writer) -> bool:
            held = w.get("cursors", name)
            for invocation in range(1, (held["invocations"] if held else 0) + 1):
                w.delete("receipts", _receipt_key(name, invocation))
            w.delete("cursors", name)
            return w.delete("specs", name)

        return self._tables.write(change)

    def commit(self, name: str, receipt: bytes, cursor: Cursor) -> None:
        """The invocation's receipt and the cursor past it, all or none."""

        def change(w: Writer) -> None:
            w.put("receipts", _receipt_key(name, cursor.invocations), receipt)
            w.put("cursors", name, cursor.record())

        self._tables.write(change)

    def put_cursor(self, name: str, cursor: Cursor) -> None:
        """A cursor change that no receipt comes with (a takeover, a fence)."""
        self._tables.write(lambda w: w.put("cursors", name, cursor.record()))

    def receipts(self, name: str, after: int, limit: int) -> list[tuple[int, bytes]]:
        """(invocation number, signed receipt) after ``after``, oldest first."""
        found: list[tuple[int, bytes]] = []
        for invocation in range(after + 1, after + 1 + limit):
            raw: Any = self._tables.get("receipts", _receipt_key(name, invocation))
            if raw is None:
                break
            found.append((invocation, raw))
        return found

    def close(self) -> None:
        self._tables.close()
