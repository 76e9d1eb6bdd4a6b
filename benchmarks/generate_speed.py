"""`avgen generate` with its defaults, as a user runs it, now against an earlier commit: issue 13's "no slower than
today" target, measured side by side in one run.

Each row is a version of avgen: `NAME=REF` runs the code *and* the embedded bundle of git commit REF (checked out
once into a detached worktree under --work), `NAME=.` runs this checkout, and `NAME=REF:FOLDER` runs REF's code on
another bundle folder (for example the bundle of one commit on the code of another). Every run is a fresh process
(`python -m avcli generate --prompt P -o OUT --json`, so imports and model load are included), the rows interleaved
(A B C A B C ...) so that a slow minute of the machine falls on every row alike, after one untimed warm-up run per
row (the page cache). Wall clock is measured outside the process; the stage times (load, denoise, decode, vocode,
...) come from each run's --json.

    .venv/bin/python benchmarks/generate_speed.py --threads 2 --repeat 5 \\
        --row "at filing (a1c9fe2)=a1c9fe2" --row "small vocoder (af723ae)=af723ae" --row "now=."

Writes benchmarks/results/generate_speed.json (rows: name, ref, bundle, median wall and stage seconds, all runs,
ratio of the median wall to the first row's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "generate_speed.json"
PROMPTS = ("a red ball bouncing on a metal plate", "a blue block dropped on a wooden floor",
           "a green stick striking a glass surface", "a yellow ball bouncing on a drum")


def parse_row(spec: str) -> dict:
    name, sep, target = spec.partition("=")
    if not sep or not name or not target:
        raise SystemExit(f"--row {spec!r}: expected NAME=REF, NAME=. or NAME=REF:BUNDLE_FOLDER")
    ref, _, bundle = target.partition(":")
    return {"name": name, "ref": ref, "bundle": bundle or None}


def checkout(ref: str, work: Path) -> Path:
    """The source tree of `ref`: this checkout for '.', else a detached worktree made once under `work`."""
    if ref == ".":
        return ROOT
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", ref + "^{commit}"], check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = work / sha[:12]
    if not (tree / "avcli").is_dir():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), sha], check=True,
                       capture_output=True)
    return tree


def run_once(tree: Path, bundle: str | None, prompt: str, out: Path, env: dict) -> dict:
    args = [sys.executable, "-m", "avcli", "generate", "--prompt", prompt, "-o", str(out), "--json", "--overwrite"]
    if bundle:
        args += ["--bundle", bundle]
    run_env = dict(env, PYTHONPATH=str(tree))  # this tree's avcli, not the editable install's
    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=tree, capture_output=True, text=True, env=run_env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{tree}: avgen generate failed: {r.stderr[-800:]}")
    doc = json.loads(r.stdout)
    return {"wall_s": wall, "stages_s": doc.get("timings_s", {}), "bundle": doc.get("bundle"),
            "sampling": doc.get("sampling")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--row", action="append", required=True, help="NAME=REF, NAME=. or NAME=REF:BUNDLE_FOLDER")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per row")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every run")
    ap.add_argument("--work", type=Path, default=ROOT / "work" / "generate_speed", help="worktrees of the refs")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = [parse_row(s) for s in args.row]
    env = dict(os.environ)
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads))
    for r in rows:
        r["tree"] = checkout(r["ref"], args.work)
        if r["ref"] != ".":
            r["commit"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", r["ref"]], check=True,
                                         capture_output=True, text=True).stdout.strip()
    runs: dict[str, list[dict]] = {r["name"]: [] for r in rows}
    with tempfile.TemporaryDirectory(prefix="avgen-speed-") as td:
        out = Path(td) / "clip.mp4"
        for r in rows:  # warm-up
            r["seen"] = run_once(r["tree"], r["bundle"], PROMPTS[0], out, env)
        for i in range(args.repeat):
            for r in rows:
                res = run_once(r["tree"], r["bundle"], PROMPTS[i % len(PROMPTS)], out, env)
                runs[r["name"]].append(res)
                print(f"{r['name']}: {res['wall_s']:.2f} s", file=sys.stderr)
    result_rows = []
    for r in rows:
        rs = runs[r["name"]]
        stages = sorted({k for x in rs for k in x["stages_s"]})
        result_rows.append({
            "name": r["name"], "ref": r["ref"], "commit": r.get("commit"), "bundle": r["seen"]["bundle"],
            "sampling": r["seen"]["sampling"],
            "wall_s_median": statistics.median(x["wall_s"] for x in rs),
            "wall_s_all": [round(x["wall_s"], 3) for x in rs],
            "stages_s_median": {k: statistics.median(x["stages_s"].get(k, 0.0) for x in rs) for k in stages},
        })
    base = result_rows[0]["wall_s_median"]
    for rr in result_rows:
        rr["vs_first"] = rr["wall_s_median"] / base
    doc = {"command": "python benchmarks/generate_speed.py " + shlex.join(sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
           "threads": args.threads, "repeat": args.repeat, "rows": result_rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for rr in result_rows:
        st = rr["stages_s_median"]
        print(f"{rr['name']:40s} {rr['wall_s_median']:6.2f} s  {rr['vs_first']:.2f}x  "
              f"denoise {st.get('denoise', 0):.2f}  vocode {st.get('vocode', 0):.3f}")


if __name__ == "__main__":
    main()
