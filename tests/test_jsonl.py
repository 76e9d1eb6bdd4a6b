"""avcli.jsonl, the one JSON Lines reader: errors name file and line, blank (and # where asked) lines skip, a
tolerant read skips what an interrupted run left half written, and every per-clip reader goes through it."""

from __future__ import annotations

import pytest

from avcli.errors import UsageError
from avcli.jsonl import parse_jsonl, read_file_rows


def test_errors_name_the_line_and_blank_or_comment_lines_skip(tmp_path):
    assert parse_jsonl('{"a": 1}\n\n# note\n{"b": 2}\n', "f", comments=True) == [(1, {"a": 1}), (4, {"b": 2})]
    with pytest.raises(UsageError, match=r"^f:3: not valid JSON"):
        parse_jsonl('{"a": 1}\n\n# note\n', "f")
    with pytest.raises(UsageError, match=r"^f:2: each line must be a JSON object"):
        parse_jsonl('{"a": 1}\n[1, 2]\n', "f")
    assert parse_jsonl('{"a": 1}\n{"b": \n[3]\n', "f", tolerant=True) == [(1, {"a": 1})]


def test_per_clip_rows_need_a_file_key_and_a_missing_file_is_named(tmp_path):
    p = tmp_path / "events.jsonl"
    with pytest.raises(UsageError, match="events file not found"):
        read_file_rows(p, "events")
    assert read_file_rows(p, "events", missing_ok=True) == []
    p.write_text('{"file": "a.mp4", "events": [1.0]}\n{"events": []}\n')
    with pytest.raises(UsageError, match="events.jsonl:2: .*\"file\" key"):
        read_file_rows(p, "events")
    assert read_file_rows(p, "events", tolerant=True) == [{"file": "a.mp4", "events": [1.0]}]


def test_the_data_folder_and_eval_read_through_it(tmp_path):
    from avcli.data.folder import read_folder
    from avcli.metrics.evaluate import load_truth

    (tmp_path / "a.mpg").write_bytes(b"x")  # MPEG-PS footage is a video file of a data folder too
    (tmp_path / "events.jsonl").write_text('{"file": "a.mpg", "events": [0.5]}\n{"file": 3\n')
    with pytest.raises(UsageError, match="events.jsonl:2: not valid JSON"):
        read_folder(tmp_path)
    with pytest.raises(UsageError, match="events.jsonl:2: not valid JSON"):
        load_truth(tmp_path / "events.jsonl")
    (tmp_path / "events.jsonl").write_text('{"file": "a.mpg", "events": [0.5]}\n')
    items = read_folder(tmp_path)
    assert [i.path.name for i in items] == ["a.mpg"] and items[0].events == [0.5]
