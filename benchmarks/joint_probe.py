"""Has joint training taught the model cross-modal timing? A paired-loss probe.

For a set of cached training windows (the latent cache `avgen train joint` writes), each U-Net's denoising loss is
measured three ways at fixed local timesteps, with the same noise:

- matched:    the other modality's connector sees the *same* clip (what training optimises);
- mismatched: it sees another clip of the batch (rolled by one);
- zeroed:     the cross-modal features are zero (the bases alone, up to the blocks' own biases).

If the connectors and CMC-PE blocks carry timing, matched < mismatched (the relative gap is the "gain"). A gain of
0 means the model ignores which clip the other modality comes from, whatever its loss curve says.

    .venv/bin/python benchmarks/joint_probe.py --bundle work/bundle --cache work/cache/latents --n 64 \
        [--checkpoint work/runs/joint/ckpt.safetensors] [--json benchmarks/results/joint_probe.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def probe(model, entries: list[dict[str, torch.Tensor]], t_audio: list[int], t_video: list[int], seed: int = 0):
    from avcli.sampling.schedules import NoiseSchedule
    from avcli.training.objective import add_noise

    cat = lambda k: torch.cat([e[k] for e in entries]).float()  # noqa: E731
    v0, a0, tv, ta = cat("video"), cat("audio"), cat("text_video"), cat("text_audio")
    b = len(entries)
    sv = NoiseSchedule.from_dict(model.manifest["video"]["schedule"])
    sa = NoiseSchedule.from_dict(model.manifest["audio"]["schedule"])
    abar_v, abar_a = sv.alphas_cumprod(), sa.alphas_cumprod()
    gen = torch.Generator().manual_seed(seed)
    rows = []
    with torch.no_grad():
        for t_a in t_audio:
            for t_v in t_video:
                bv = add_noise(v0, sv, abar_v, t=torch.full((b,), t_v), noise=torch.randn(v0.shape, generator=gen))
                ba = add_noise(a0, sa, abar_a, t=torch.full((b,), t_a), noise=torch.randn(a0.shape, generator=gen))
                xv, xa = bv.x_t, ba.x_t
                fv = model.video_connector(latent=xv, x0_hat=v0)  # self-conditioning on the clean estimate
                fa = model.audio_connector(latent=xa, x0_hat=a0)
                row = {"t_audio": t_a, "t_video": t_v}
                for name, unet, x, t, text, feats, target in (
                        ("audio", model.audio_unet, xa, t_a, ta, fv, ba.target),
                        ("video", model.video_unet, xv, t_v, tv, fa, bv.target)):
                    tt = torch.full((b,), t)
                    loss = lambda f: F.mse_loss(unet(sample=x, timestep=tt, text_embeds=text,  # noqa: E731
                                                     cross_features=f).float(), target).item()
                    m, mm, z = loss(feats), loss(feats.roll(1, 0)), loss(torch.zeros_like(feats))
                    row[name] = {"matched": m, "mismatched": mm, "zeroed": z, "gain_pct": 100.0 * (mm - m) / mm}
                rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle name or folder (default: the embedded default)")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a joint-training ckpt/ema .safetensors to load over the bundle's joint weights")
    ap.add_argument("--cache", type=Path, required=True, help="latent cache folder (WORK/cache/latents)")
    ap.add_argument("--n", type=int, default=64, help="windows to use (the last N files of the cache, sorted)")
    ap.add_argument("--t-audio", type=int, nargs="*", default=[300, 500, 700])
    ap.add_argument("--t-video", type=int, nargs="*", default=[0, 300])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from safetensors.torch import load_file

    from avcli.models.bundle import load_bundle

    model = load_bundle(args.bundle).float().eval()
    if args.checkpoint is not None:
        res = model.load_state_dict(load_file(str(args.checkpoint)), strict=False)
        if res.unexpected_keys:
            raise SystemExit(f"{args.checkpoint}: {len(res.unexpected_keys)} keys do not belong to this model")
    files = sorted(args.cache.glob("*.safetensors"))[-args.n:]
    if len(files) < 2:
        raise SystemExit(f"{args.cache}: needs at least 2 cached windows, found {len(files)}")
    rows = probe(model, [load_file(str(f)) for f in files], args.t_audio, args.t_video)
    print(f"{'t_a':>5} {'t_v':>5} | audio loss matched / mismatched / zeroed (gain) | video loss ... (gain)")
    for r in rows:
        a, v = r["audio"], r["video"]
        print(f"{r['t_audio']:5d} {r['t_video']:5d} | {a['matched']:.5f} / {a['mismatched']:.5f} / {a['zeroed']:.5f} "
              f"({a['gain_pct']:+.2f} %) | {v['matched']:.5f} / {v['mismatched']:.5f} / {v['zeroed']:.5f} "
              f"({v['gain_pct']:+.2f} %)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"bundle": str(model.bundle_path), "checkpoint": str(args.checkpoint),
                                         "windows": len(files), "rows": rows,
                                         "command": "python benchmarks/joint_probe.py " + " ".join(sys.argv[1:])},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
