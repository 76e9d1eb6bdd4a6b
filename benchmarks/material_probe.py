"""Does the picture carry the material? Linear probes for the surface's material (5 classes) on what foley's audio
U-Net is conditioned by: the clean video latent (time-averaged) and the video connector's features on it
(time-averaged), fitted on the training clips and scored on held-out ones. Reference points: chance (the share of
the held-out clips' most common material), the
audio material classifier on the real sound (the quality table's 92 %), and foley's material adherence.

    python benchmarks/material_probe.py --train work/v2/hits --test work/v2/hits-test --cache work/probe/cache \
        --json benchmarks/results/material_probe.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch


def true_materials(folder: Path) -> dict[str, int]:
    """Each clip's material class from the synthesizer's own record (events.jsonl attrs), not from its caption."""
    from avcli.data.synth import MATERIALS
    from avcli.jsonl import read_file_rows

    rows = read_file_rows(folder / "events.jsonl", "events")
    return {r["file"]: MATERIALS.index(r["attrs"]["material"]) for r in rows}


@torch.no_grad()
def features(model, folder: Path, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from avcli.data.folder import read_folder
    from avcli.training.latents import cached_latents

    items = read_folder(folder)
    data = cached_latents(model, items, model.geometry(), cache, progress=False)
    v = data.video  # (N, C, F, h, w)
    con = torch.cat([model.video_connector(latent=v[i:i + 32], x0_hat=v[i:i + 32]) for i in range(0, len(v), 32)])
    truth = true_materials(folder)
    y = np.array([truth[Path(it.path).name] for it in items])[data.owner.numpy()]
    return v.mean(2).flatten(1).numpy(), con.mean(1).numpy(), y  # latent: time mean; connector (N, F, D): time mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="default: the embedded hits-demo")
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path("work/probe/cache"), help="latent cache (encoded once)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/material_probe.json"))
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from avcli.models.bundle import load_bundle

    torch.manual_seed(0)
    model = load_bundle(args.bundle, verify=False).eval()
    tr, te = features(model, args.train, args.cache), features(model, args.test, args.cache / "test")
    res = {"command": shlex.join(["python", "benchmarks/material_probe.py", *sys.argv[1:]]),
           "bundle": str(model.bundle_path), "train_windows": len(tr[2]), "test_windows": len(te[2]),
           "chance": float(np.bincount(te[2]).max() / len(te[2])), "probes": {}}
    for i, name in enumerate(("video latent, time mean", "video connector features, time mean")):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(tr[i], tr[2])
        res["probes"][name] = {"dims": int(tr[i].shape[1]), "accuracy": float((clf.predict(te[i]) == te[2]).mean())}
        print(f"{name}: {res['probes'][name]['accuracy']:.0%}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
