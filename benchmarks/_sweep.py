"""The row loop that the quality sweeps share (steps_sweep.py, guidance_sweep.py, gamma_sweep.py).

Each row of a sweep is one `benchmarks/quality.py` run into `WORK/LABEL/clips` (its quality.json beside it) on the
same clips, with the row's own flags and seed offset. A row whose quality.json exists is kept, so a sweep resumes
where it stopped; the partial result is written after every row.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

QUALITY = Path(__file__).resolve().parent / "quality.py"


def add_sweep_args(ap) -> None:
    """The options every sweep takes: the bundle, the training clips (for the adherence classifiers), the clips to
    score, how many, and the work folder the rows' clips go to."""
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--train", type=Path, required=True, help="training clips (for the adherence classifiers)")
    ap.add_argument("--test", type=Path, required=True, help="the clips to score (captions, videos, events)")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--work", type=Path, required=True)


def run_rows(res: dict, rows: list[dict], *, work: Path, train: Path, test: Path, n: int,
             flags: Callable[[dict], list[str]], summarize: Callable[[dict], dict], out: Path,
             bundle: Callable[[dict], str | None] = lambda row: None, adherence: Path | None = None,
             redo: tuple[str, ...] | list[str] = (), reuse: dict[str, str] | None = None,
             quality: Path = QUALITY) -> dict:
    """Run (or keep) every row, append its summary to res["rows"] and write res to `out` after each.

    `flags(row)`: the row's own quality.py options; `bundle(row)`: its bundle (None: the shipped one). One
    adherence model serves every row (`adherence`, default WORK/adherence.safetensors: the first row fits it).
    `redo`: labels whose folders are made again. `reuse`: LABEL -> a quality.py --out folder whose generated clips
    are that row's (same clips, seeds and settings), copied in before the run so only the scoring is redone."""
    adherence = adherence or work / "adherence.safetensors"
    for row in rows:
        folder = work / row["label"]
        if row["label"] in redo and folder.exists():
            shutil.rmtree(folder)
        qjson = folder / "quality.json"
        if not qjson.exists():
            src = (reuse or {}).get(row["label"])
            if src and not (folder / "clips" / "generate").exists():
                (folder / "clips").mkdir(parents=True, exist_ok=True)
                shutil.copytree(Path(src) / "generate", folder / "clips" / "generate")
            cmd = [sys.executable, str(quality), "--train", str(train), "--test", str(test), "--n", str(n),
                   "--out", str(folder / "clips"), "--seed-offset", str(row["seed_offset"]),
                   "--adherence-model", str(adherence), *flags(row)]
            if bundle(row):
                cmd += ["--bundle", str(bundle(row))]
            print(f"== {row['label']}", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        row.update(summarize(json.loads(qjson.read_text())))
        res["rows"].append(row)
        out.write_text(json.dumps(res, indent=1) + "\n")  # a partial sweep is kept as it goes
    return res
