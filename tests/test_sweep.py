"""benchmarks/_sweep.py: the row loop of the quality sweeps, run against a stand-in for quality.py that records
how it was called (the real one generates and scores clips, minutes a row)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _sweep import run_rows  # noqa: E402

STUB = '''import json, sys
from pathlib import Path
a = sys.argv[1:]
out = Path(a[a.index("--out") + 1])
with open(Path(__file__).with_name("calls.jsonl"), "a") as f:
    f.write(json.dumps(a) + "\\n")
had = (out / "generate" / "clip_00000.mp4").exists()
out.mkdir(parents=True, exist_ok=True)
(out.parent / "quality.json").write_text(json.dumps({"argv": a, "had_clips": had}))
'''


def _rows():
    return [{"label": "g1.5", "gamma": 1.5, "seed_offset": 0, "connector": "cmcpe"},
            {"label": "xattn-g1", "gamma": 1.0, "seed_offset": 0, "connector": "xattn"},
            {"label": "g1.5-seeds1000", "gamma": 1.5, "seed_offset": 1000, "connector": "cmcpe", "noise_run": True}]


def _run(tmp: Path, **kw) -> dict:
    res = {"rows": []}
    return run_rows(res, _rows(), work=tmp / "w", train=tmp / "train", test=tmp / "test", n=7,
                    flags=lambda r: ["--gamma", f"{r['gamma']:g}"],
                    summarize=lambda q: {"argv": q["argv"], "had_clips": q["had_clips"]},
                    bundle=lambda r: {"cmcpe": None, "xattn": "X"}[r["connector"]], out=tmp / "res.json",
                    quality=tmp / "quality_stub.py", **kw)


def test_rows_run_once_with_their_flags_and_resume(tmp_path):
    (tmp_path / "quality_stub.py").write_text(STUB)
    calls = tmp_path / "calls.jsonl"
    res = _run(tmp_path)
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(argv) == 3 and [r["label"] for r in res["rows"]] == ["g1.5", "xattn-g1", "g1.5-seeds1000"]
    get = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    assert [get(a, "--gamma") for a in argv] == ["1.5", "1", "1.5"]
    assert [get(a, "--seed-offset") for a in argv] == ["0", "0", "1000"]
    assert [("--bundle" in a) and get(a, "--bundle") for a in argv] == [False, "X", False]
    assert {get(a, "--adherence-model") for a in argv} == {str(tmp_path / "w" / "adherence.safetensors")}
    assert get(argv[1], "--out") == str(tmp_path / "w" / "xattn-g1" / "clips") and get(argv[0], "--n") == "7"
    assert json.loads((tmp_path / "res.json").read_text())["rows"][2]["noise_run"]
    # a second run keeps every finished row (no call), and --redo makes only that row again
    _run(tmp_path)
    assert len(calls.read_text().splitlines()) == 3
    _run(tmp_path, redo=["xattn-g1"])
    assert len(calls.read_text().splitlines()) == 4


def test_reused_clips_are_copied_in_before_the_run(tmp_path):
    (tmp_path / "quality_stub.py").write_text(STUB)
    src = tmp_path / "earlier" / "generate"
    src.mkdir(parents=True)
    (src / "clip_00000.mp4").write_bytes(b"x")
    res = _run(tmp_path, reuse={"g1.5": str(tmp_path / "earlier")}, adherence=tmp_path / "adh.safetensors")
    assert [r["had_clips"] for r in res["rows"]] == [True, False, False]
    assert (tmp_path / "w" / "g1.5" / "clips" / "generate" / "clip_00000.mp4").read_bytes() == b"x"
    assert all(a[a.index("--adherence-model") + 1] == str(tmp_path / "adh.safetensors") for a in
               (json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()))


def test_guidance_interval_rows_say_what_they_change_and_what_they_cost():
    import pytest

    import guidance_interval as gi

    a = gi.parse_row("a5-0:0.6", (4.0, 2.5))
    assert (a["cfg_video"], a["cfg_audio"]) == (4.0, 5.0)
    assert a["cfg_video_interval"] == [0.0, 1.0] and a["cfg_audio_interval"] == [0.0, 0.6]
    assert gi.flags(a)[-12:-8] == ["--cfg-video-interval", "0:1", "--cfg-audio-interval", "0:0.6"]
    ag = gi.parse_row("default+ag4", (4.0, 2.5))
    assert ag["audio_guidance"] == 4.0 and gi.flags(ag)[-8:-4] == ["--audio-guidance", "4",
                                                                    "--audio-guidance-interval", "0:1"]
    assert gi.unet_calls(ag, 25) == (100, 50)  # each video step also runs on null audio
    turns = gi.parse_row("v-0:0.4+ag4@0.4:1", (4.0, 2.5))
    assert turns["cfg_video_interval"] == [0.0, 0.4] and turns["audio_guidance_interval"] == [0.4, 1.0]
    assert gi.flags(turns)[-6:-4] == ["--audio-guidance-interval", "0.4:1"]
    assert gi.unet_calls(turns, 25) == (50, 50)  # text guidance, then audio guidance: two passes a step, always
    both = gi.parse_row("both-0:0.6", (4.0, 2.5))
    assert both["cfg_video_interval"] == both["cfg_audio_interval"] == [0.0, 0.6]
    # 25 steps: 15 guided (batch 2) + 10 not (batch 1) = 40 U-Net batch rows per side, against 50 when all guided
    assert gi.unet_calls(both, 25) == (40, 40) and gi.unet_calls(gi.parse_row("default", (4, 2.5)), 25) == (50, 50)
    # seed 004's guidance over the picture on the audio U-Net, after the audio guidance
    vg = gi.parse_row("v6a1-v-0:0.6+ag12@0.6:1+vg3@0:0.5", (4.0, 2.5))
    assert (vg["cfg_video"], vg["cfg_audio"], vg["audio_guidance"], vg["video_guidance"]) == (6.0, 1.0, 12.0, 3.0)
    assert vg["audio_guidance_interval"] == [0.6, 1.0] and vg["video_guidance_interval"] == [0.0, 0.5]
    assert gi.flags(vg)[-4:] == ["--video-guidance", "3", "--video-guidance-interval", "0:0.5"]
    # audio text guidance 1: one audio pass a step, two (null picture, picture) on the 13 of 25 steps with k/K < 0.5
    assert gi.unet_calls(vg, 25) == (50, 38)
    for bad in ("0:0.6", "a5-x", "both", "default+ag4@x:1", "default+vgx"):
        with pytest.raises(SystemExit):
            gi.parse_row(bad, (4.0, 2.5))
