"""benchmarks/paired_adherence.py: per-clip verdicts paired by file name, wins and losses counted in the right
direction, the sign test against scipy's binomial test, the frame-share difference against numpy."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

_spec = importlib.util.spec_from_file_location(
    "paired_adherence", Path(__file__).parents[1] / "benchmarks" / "paired_adherence.py")
pa = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pa)

COLS = ["file", "contact_f1", "colour_ok", "colour_frames_ok", "material_ok"]


def _write(folder: Path, rows):
    folder.mkdir(parents=True)
    with (folder / "eval_metrics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLS)
        w.writerows(rows)
    return folder


@pytest.mark.parametrize("wins,losses", [(0, 0), (1, 0), (8, 2), (13, 7), (3, 11), (50, 50), (0, 9)])
def test_sign_test_matches_scipy(wins, losses):
    want = 1.0 if wins + losses == 0 else binomtest(wins, wins + losses, 0.5).pvalue
    assert pa.sign_test_p(wins, losses) == pytest.approx(want, rel=1e-9)


def test_paired_counts_and_frames(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    a_col, b_col = rng.integers(0, 2, n), rng.integers(0, 2, n)
    a_mat, b_mat = rng.integers(0, 2, n), rng.integers(0, 2, n)
    a_fr, b_fr = rng.random(n), rng.random(n)
    names = [f"clip_{i:05d}.mp4" for i in range(n)]
    base = _write(tmp_path / "a", [[f, 0.5, a_col[i], a_fr[i], a_mat[i]] for i, f in enumerate(names)])
    # the other side lists its clips in another order, has one extra clip and one material cell empty
    rows = [[f, 0.1, b_col[i], b_fr[i], "" if i == 4 else b_mat[i]] for i, f in enumerate(names)][::-1]
    other = _write(tmp_path / "b", rows + [["clip_99999.mp4", 0, 1, 1.0, 1]])
    out = tmp_path / "paired.json"
    pa.main(["--side", f"base={base}", "--side", f"other={other}", "--out", str(out)])
    r = json.loads(out.read_text())["rows"][0]
    assert r["clips"] == n
    assert r["colour_ok"]["wins"] == int(((b_col == 1) & (a_col == 0)).sum())
    assert r["colour_ok"]["losses"] == int(((b_col == 0) & (a_col == 1)).sum())
    assert r["colour_ok"]["base"] == pytest.approx(a_col.mean())
    assert r["colour_ok"]["other"] == pytest.approx(b_col.mean())
    keep = np.arange(n) != 4
    assert r["material_ok"]["n"] == n - 1
    assert r["material_ok"]["wins"] == int(((b_mat == 1) & (a_mat == 0))[keep].sum())
    d = b_fr - a_fr
    assert r["colour_frames_ok"]["diff"] == pytest.approx(d.mean())
    assert r["colour_frames_ok"]["stderr"] == pytest.approx(d.std(ddof=1) / np.sqrt(n))


def test_missing_csv_is_one_line(tmp_path):
    base = _write(tmp_path / "a", [["clip_00000.mp4", 0, 1, 1.0, 1]])
    with pytest.raises(SystemExit, match="no eval_metrics.csv"):
        pa.main(["--side", f"a={base}", "--side", f"b={tmp_path / 'none'}", "--out", str(tmp_path / "o.json")])
    with pytest.raises(SystemExit, match="NAME=DIR"):
        pa.main(["--side", str(base), "--side", f"b={base}", "--out", str(tmp_path / "o.json")])
