"""Slow, not run in CI: the exporter at real scale, through the same path a user takes.

1. builds an AnimateDiff pipeline (SD 1.5 U-Net + motion adapter v1-5-2 layout, SD VAE, CLIP text tower) and an
   AudioLDM pipeline (AudioLDM-S/M/L U-Net, its VAE, CLAP text tower, SpeechT5HifiGan) with random weights from
   the published configs (benchmarks/memory_plan.py), saved with `save_pretrained` (nothing is downloaded);
2. `avgen import`s them into a bundle (fresh CMC-PE blocks and connectors, sized as for real checkpoints);
3. exports the joint video and audio U-Nets (CMC-PE blocks included) with avgen's exporter: ONNX with external
   data past 2 GB, checker and shape inference on the file, validation against PyTorch at the description's
   shapes; writes what happened (sizes, seconds, errors, peak RSS) to benchmarks/results/real_scale_export.json.

    .venv/bin/python benchmarks/real_scale_export.py --work /tmp/real_scale            # tens of minutes, ~20 GB RAM
    .venv/bin/python benchmarks/real_scale_export.py --work /tmp/rs --scale tiny      # the same path in a minute

Frames are 256 x 256 (32 x 32 latents) and 1 s at 8 fps by default so validation finishes on a CPU; the weights,
which decide the >2 GB path, are full size whatever the frame size.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _configs(scale: str, audio: str) -> dict:
    import memory_plan as mp

    if scale == "real":
        return {"unet": mp.SD15_UNET, "adapter": mp.MOTION_ADAPTER, "vae": mp.SD_VAE, "clip": mp.CLIP_TEXT,
                "audio_unet": mp.audioldm_unet(mp.AUDIOLDM_CHANNELS[audio]), "audio_vae": mp.AUDIOLDM_VAE,
                "clap": mp.CLAP_TEXT, "vocoder": mp.AUDIOLDM_VOCODER}
    return {  # the same classes and block layouts, a few channels wide
        "unet": {**mp.SD15_UNET, "block_out_channels": [32, 32, 64, 64], "norm_num_groups": 8,
                 "cross_attention_dim": 32},
        "adapter": {**mp.MOTION_ADAPTER, "block_out_channels": [32, 32, 64, 64], "motion_norm_num_groups": 8,
                    "motion_num_attention_heads": 2},
        "vae": {**mp.SD_VAE, "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 8, "layers_per_block": 1},
        "clip": {**mp.CLIP_TEXT, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "projection_dim": 32},
        "audio_unet": {**mp.audioldm_unet(8), "norm_num_groups": 8},
        "audio_vae": {**mp.AUDIOLDM_VAE, "block_out_channels": [8, 8, 16], "norm_num_groups": 8,
                      "layers_per_block": 1},
        "clap": {**mp.CLAP_TEXT, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
                 "num_attention_heads": 2, "projection_dim": 512},
        "vocoder": {**mp.AUDIOLDM_VOCODER, "upsample_initial_channel": 32},
    }


def build_pipelines(cfg: dict, root: Path, size: int) -> tuple[Path, Path]:
    from diffusers import (AnimateDiffPipeline, AudioLDMPipeline, AutoencoderKL, DDIMScheduler, MotionAdapter,
                           UNet2DConditionModel)
    from transformers import (ClapTextConfig, ClapTextModelWithProjection, CLIPTextConfig, CLIPTextModel,
                              SpeechT5HifiGan, SpeechT5HifiGanConfig)

    from avcli.testing import clip_tokenizer, roberta_tokenizer

    video_dir, audio_dir = root / "animatediff", root / "audioldm"
    torch.manual_seed(0)
    if not (video_dir / "model_index.json").exists():
        unet = UNet2DConditionModel(**{**cfg["unet"], "sample_size": size // 8})
        pipe = AnimateDiffPipeline(
            vae=AutoencoderKL(**cfg["vae"]),
            text_encoder=CLIPTextModel(CLIPTextConfig(**cfg["clip"], bos_token_id=0, eos_token_id=1, pad_token_id=1)),
            tokenizer=clip_tokenizer(77), unet=unet, motion_adapter=MotionAdapter(**cfg["adapter"]),
            scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="linear", clip_sample=False,
                                    set_alpha_to_one=False, steps_offset=1))
        pipe.save_pretrained(video_dir)
        del pipe, unet
    if not (audio_dir / "model_index.json").exists():
        pipe = AudioLDMPipeline(
            vae=AutoencoderKL(**cfg["audio_vae"]),
            text_encoder=ClapTextModelWithProjection(ClapTextConfig(**cfg["clap"], bos_token_id=0, eos_token_id=2,
                                                                    pad_token_id=1)),
            tokenizer=roberta_tokenizer(77), unet=UNet2DConditionModel(**cfg["audio_unet"]),
            vocoder=SpeechT5HifiGan(SpeechT5HifiGanConfig(**cfg["vocoder"])),
            scheduler=DDIMScheduler(beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear",
                                    clip_sample=False, set_alpha_to_one=False, steps_offset=1))
        pipe.save_pretrained(audio_dir)
        del pipe
    return video_dir, audio_dir


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for the pipelines, the bundle and the ONNX files")
    ap.add_argument("--scale", choices=("real", "tiny"), default="real")
    ap.add_argument("--audio", choices=("s", "m", "l"), default="s", help="AudioLDM size")
    ap.add_argument("--size", type=int, default=256, help="frame size in pixels (latents: size / 8)")
    ap.add_argument("--components", default="audio_unet,video_unet")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "real_scale_export.json")
    args = ap.parse_args()
    from avcli.models.importer import ImportOptions, import_checkpoints
    from export.onnx_export import ExportError, export_component

    report: dict = {"scale": args.scale, "audio": args.audio, "size": args.size,
                    "command": "python benchmarks/real_scale_export.py " + " ".join(sys.argv[1:]), "components": {}}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        video_dir, audio_dir = build_pipelines(_configs(args.scale, args.audio), args.work / "pipelines", args.size)
    report["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = import_checkpoints(ImportOptions(video=video_dir, audio=audio_dir, duration=1.0, fps=8.0,
                                              name=f"real-scale-{args.scale}"))
    model = result.model.eval()
    report["import_s"] = time.perf_counter() - t0
    report["params_m"] = {r["component"]: round(r["parameters"] / 1e6, 1) for r in result.rows if "parameters" in r}
    print(f"imported in {report['import_s']:.0f} s; peak RSS {peak_rss_gb():.1f} GB", file=sys.stderr, flush=True)
    for name in [c.strip() for c in args.components.split(",") if c.strip()]:
        t0 = time.perf_counter()
        try:
            rec = export_component(model, name, args.work / "onnx", force=True)
            entry = {"status": rec.status, "bytes": rec.size, "external_data": rec.external_data,
                     "max_error": rec.max_error, "validation": rec.validation}
        except ExportError as exc:
            entry = {"status": f"failed: {exc}"}
        entry.update(seconds=round(time.perf_counter() - t0, 1), peak_rss_gb=round(peak_rss_gb(), 2),
                     params_m=round(sum(p.numel() for p in getattr(model, name).parameters()) / 1e6, 1))
        report["components"][name] = entry
        print(f"{name}: {entry['status']} in {entry['seconds']} s, peak RSS {entry['peak_rss_gb']} GB",
              file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
