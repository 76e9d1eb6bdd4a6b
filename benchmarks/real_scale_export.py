"""Slow, not run in CI: export real-sized random-weight U-Nets (AudioLDM-sized audio U-Net, AnimateDiff-sized
motion U-Net) to ONNX with external data, to check the exporter, the >2 GB path and export times at real scale.

    .venv/bin/python benchmarks/real_scale_export.py --out /tmp/real_scale --which audio,video

Needs tens of GB of RAM and many minutes on CPU. Configs follow the public AudioLDM (S) and SD-1.5 + AnimateDiff
motion-module layouts; weights are random (nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch

AUDIOLDM_UNET = {"sample_size": 128, "in_channels": 8, "out_channels": 8, "layers_per_block": 2,
                 "block_out_channels": [128, 256, 384, 640],
                 "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                      "CrossAttnDownBlock2D"],
                 "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                 "cross_attention_dim": 512, "attention_head_dim": 8, "norm_num_groups": 32}
ANIMATEDIFF_UNET = {"sample_size": 64, "in_channels": 4, "out_channels": 4, "layers_per_block": 2,
                    "block_out_channels": [320, 640, 1280, 1280],
                    "down_block_types": ["CrossAttnDownBlockMotion"] * 3 + ["DownBlockMotion"],
                    "up_block_types": ["UpBlockMotion"] + ["CrossAttnUpBlockMotion"] * 3,
                    "cross_attention_dim": 768, "num_attention_heads": 8, "motion_max_seq_length": 32,
                    "motion_num_attention_heads": 8, "norm_num_groups": 32}


class _VideoWrap(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, text_embeds):
        frames = sample.shape[2]
        return self.unet(sample, timestep, encoder_hidden_states=text_embeds.repeat_interleave(frames, 0)).sample


class _AudioWrap(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, text_embeds):
        return self.unet(sample, timestep, encoder_hidden_states=text_embeds).sample


def export_big(module, args: tuple, names: list[str], dynamic: dict, path: Path, opset: int) -> dict:
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names, output_names=["noise_pred"],
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    model = onnx.load(str(path))  # loads external data the exporter wrote for > 2 GB graphs
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=1024)
    onnx.checker.check_model(str(path))  # path form: works past 2 GB
    size = path.stat().st_size + (path.parent / (path.name + ".data")).stat().st_size
    return {"file": str(path), "bytes": size, "export_s": time.perf_counter() - t0,
            "params": sum(p.numel() for p in module.parameters())}


def main() -> None:
    from diffusers import UNet2DConditionModel, UNetMotionModel

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--which", default="audio,video")
    ap.add_argument("--opset", type=int, default=18)
    args = ap.parse_args()
    report = {}
    if "audio" in args.which:
        unet = _AudioWrap(UNet2DConditionModel(**AUDIOLDM_UNET).eval())
        x = (torch.randn(2, 8, 256, 16), torch.tensor([10, 10]), torch.randn(2, 8, 512))
        dyn = {"sample": {0: "batch", 2: "time"}, "timestep": {0: "batch"}, "text_embeds": {0: "batch", 1: "len"}}
        report["audio_unet"] = export_big(unet, x, ["sample", "timestep", "text_embeds"], dyn,
                                          args.out / "audio_unet.onnx", args.opset)
    if "video" in args.which:
        unet = _VideoWrap(UNetMotionModel(**ANIMATEDIFF_UNET).eval())
        x = (torch.randn(2, 4, 16, 64, 64), torch.tensor([10, 10]), torch.randn(2, 77, 768))
        dyn = {"sample": {0: "batch", 2: "frames"}, "timestep": {0: "batch"}, "text_embeds": {0: "batch"}}
        report["video_unet"] = export_big(unet, x, ["sample", "timestep", "text_embeds"], dyn,
                                          args.out / "video_unet.onnx", args.opset)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
