"""The run's jsonl records."""

import json

from vader_core.run.records import read_jsonl, write_jsonl


def test_rewriting_records_never_shows_a_reader_a_truncated_file(tmp_path):
    """A resumed run's main process rewrites `metrics.jsonl` and `validation.jsonl` up to its step while the
    other processes read them: it writes aside and renames, so a reader holds the old records or the new ones
    (truncating in place let a process replay no validation at all, and take other decisions than the rest)."""
    path = tmp_path / "validation.jsonl"
    rows = [{"step": s, "reward": 0.1 * s} for s in range(4)]
    write_jsonl(path, rows)
    with path.open() as reader:  # opened before the rewrite, read after it
        write_jsonl(path, rows[:2])
        assert [r["step"] for r in map(json.loads, reader.read().splitlines())] == [0, 1, 2, 3]
    assert read_jsonl(path) == rows[:2]
    assert [p.name for p in tmp_path.iterdir()] == ["validation.jsonl"]  # nothing left aside
