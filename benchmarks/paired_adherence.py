"""Two bundles on the same clips and seeds, clip by clip: how many clips each one gets right that the other misses.

A quality run's colour and material columns are shares of 100 or 200 clips; between two bundles that differ a
little, many clips change their verdict both ways, so a gap of a few points can be noise. This pairs the per-clip
verdicts of `avgen eval`'s eval_metrics.csv (what `benchmarks/quality.py` writes beside each side's clips) and
reports, for each side against the first: the clips it wins and loses, the exact two-sided sign test on them,
and the per-clip difference in the share of frames whose colour is right (`colour_frames_ok`) with its
standard error, a finer reading of the same question.

    python benchmarks/paired_adherence.py --side shipped=work/qv2_ship/clips/generate \\
        --side 'continuation=work/qv2_c0/clips/generate' --out benchmarks/results/paired_val2.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
from pathlib import Path

VERDICTS = ("colour_ok", "material_ok")


def sign_test_p(wins: int, losses: int) -> float:
    """Exact two-sided sign test: the chance of a split at least this uneven among wins + losses fair coin flips."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def read_verdicts(folder: Path) -> dict[str, dict[str, float]]:
    """{file: {column: value}} from FOLDER/eval_metrics.csv, empty cells left out."""
    path = folder / "eval_metrics.csv"
    if not path.is_file():
        raise SystemExit(f"error: {path}: no eval_metrics.csv (run benchmarks/quality.py or avgen eval on it first)")
    with path.open(newline="", encoding="utf-8") as f:
        return {r["file"]: {k: float(v) for k, v in r.items() if k != "file" and v not in ("", None)}
                for r in csv.DictReader(f)}


def compare(base: dict[str, dict[str, float]], other: dict[str, dict[str, float]]) -> dict:
    """Per verdict: shares on the clips both have, wins / losses of `other`, sign-test p; and the mean per-clip
    difference of colour_frames_ok with its standard error."""
    common = sorted(set(base) & set(other))
    out: dict = {"clips": len(common)}
    for col in VERDICTS:
        pairs = [(base[f][col], other[f][col]) for f in common if col in base[f] and col in other[f]]
        if not pairs:
            continue
        wins = sum(1 for a, b in pairs if b > a)
        losses = sum(1 for a, b in pairs if b < a)
        out[col] = {"n": len(pairs), "base": sum(a for a, _ in pairs) / len(pairs),
                    "other": sum(b for _, b in pairs) / len(pairs), "wins": wins, "losses": losses,
                    "p": sign_test_p(wins, losses)}
    d = [other[f]["colour_frames_ok"] - base[f]["colour_frames_ok"] for f in common
         if "colour_frames_ok" in base[f] and "colour_frames_ok" in other[f]]
    if len(d) > 1:
        m = sum(d) / len(d)
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1))
        out["colour_frames_ok"] = {"n": len(d), "diff": m, "stderr": sd / math.sqrt(len(d))}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", action="append", required=True, metavar="NAME=DIR",
                    help="A folder with eval_metrics.csv; the first is the base the others are paired with.")
    ap.add_argument("--clips", default="", help="Words for the clip set in the report (e.g. 'validation clips').")
    ap.add_argument("--out", type=Path, required=True, help="JSON to write.")
    args = ap.parse_args(argv)
    sides = []
    for s in args.side:
        name, sep, folder = s.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"error: --side wants NAME=DIR, got {s!r}")
        sides.append((name, Path(folder)))
    if len(sides) < 2:
        raise SystemExit("error: give at least two --side (the first is the base)")
    (base_name, base_dir), rest = sides[0], sides[1:]
    base = read_verdicts(base_dir)
    rows = []
    for name, folder in rest:
        r = {"name": name, "folder": str(folder), **compare(base, read_verdicts(folder))}
        rows.append(r)
        c, m, fr = r.get("colour_ok", {}), r.get("material_ok", {}), r.get("colour_frames_ok", {})
        print(f"{name}: colour {c.get('base', 0):.1%} -> {c.get('other', 0):.1%} (+{c.get('wins')} -{c.get('losses')}, "
              f"p {c.get('p', 1):.2f}); material {m.get('base', 0):.1%} -> {m.get('other', 0):.1%} "
              f"(+{m.get('wins')} -{m.get('losses')}, p {m.get('p', 1):.2f}); frames {fr.get('diff', 0):+.3f} "
              f"+- {fr.get('stderr', 0):.3f}")
    res = {"command": "python benchmarks/paired_adherence.py " + " ".join(shlex.quote(a) for a in
                                                                          (argv if argv is not None else sys.argv[1:])),
           "clips": args.clips, "base": {"name": base_name, "folder": str(base_dir)}, "rows": rows}
    from avcli.media.ffmpeg import atomic_path

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out, overwrite=True) as tmp:  # a results file is rewritten, never left half-written
        Path(tmp).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
