"""Record tables: one transaction per write, a full map grows instead of failing."""

from __future__ import annotations

from pathlib import Path

from storage.records import RecordTables


def test_a_full_map_grows_and_nothing_is_lost(tmp_path: Path) -> None:
    tables = RecordTables(tmp_path / "t", ("a", "b"), map_size=64 << 10)
    for index in range(40):  # ~1.2 MiB into a 64 KiB map
        tables.put("a", f"k{index}", {"blob": bytes([index]) * 30_000})
    assert tables.put("b", "only", 1) and not tables.put("b", "only", 2, overwrite=False)
    tables.close()
    reopened = RecordTables(tmp_path / "t", ("a", "b"))
    assert len(reopened.values("a")) == 40 and reopened.get("a", "k39")["blob"][:1] == b"\x27"
    assert reopened.get("b", "only") == 1 and reopened.get("b", "missing") is None
    reopened.close()
