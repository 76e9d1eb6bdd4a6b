"""Memory plan of the joined AnimateDiff + AudioLDM model at real scale (the numbers of docs/memory_plan.md).

    .venv/bin/python benchmarks/memory_plan.py [--audio s|m|l] [--lengths 2,4,8,16] [--json out.json]

Parameters: every network is built from its published diffusers/transformers config on the meta device (no
weights, no memory) and counted exactly; connectors and CMC-PE blocks are sized as `avgen import` sizes them.

Activations: one denoising step (inference, no grad, CFG batch) and one joint training step (our objective:
noising, the self-conditioning pass, both U-Nets, loss, backward) run on the meta device at full size. A
TorchDispatchMode adds up the bytes of every tensor an op allocates and subtracts them when the tensor dies, so its
peak is the peak of live activation memory (saved-for-backward tensors stay alive until backward frees them).
Attention goes through a stand-in that keeps only what FlashAttention keeps (q, k, v, output, log-sum-exp), as
PyTorch's fused SDPA kernels do on GPU; the math fallback would add the (L x L) score matrices. Networks run in
16-bit (fp16 inference, bf16 training with frozen bases held in bf16). Minutes on CPU; no GPU needed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import types
import weakref
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import (ClapTextConfig, ClapTextModelWithProjection, CLIPTextConfig, CLIPTextModel, SpeechT5HifiGan,
                          SpeechT5HifiGanConfig)

from avcli.models.components import AudioVAEDecoder, VideoVAEDecoder
from avcli.models.connectors import AudioConnector, VideoConnector
from avcli.models.joint_unet import JointAudioUNet, JointVideoUNet
from avcli.sampling.schedules import NoiseSchedule
from avcli.training.objective import add_noise, joint_predict

GiB = 2 ** 30
# runwayml/stable-diffusion-v1-5 unet/config.json
SD15_UNET = dict(act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280],
                 center_input_sample=False, cross_attention_dim=768,
                 down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], downsample_padding=1,
                 flip_sin_to_cos=True, freq_shift=0, in_channels=4, layers_per_block=2, mid_block_scale_factor=1,
                 norm_eps=1e-5, norm_num_groups=32, out_channels=4, sample_size=64,
                 up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
# guoyww/animatediff-motion-adapter-v1-5-2 config.json (keys diffusers 0.42 still reads)
MOTION_ADAPTER = dict(block_out_channels=[320, 640, 1280, 1280], motion_layers_per_block=2,
                      motion_max_seq_length=32, motion_mid_block_layers_per_block=1, motion_norm_num_groups=32,
                      motion_num_attention_heads=8, use_motion_mid_block=True)
# stable-diffusion-v1-5 vae (AutoencoderKL) and text_encoder (CLIP ViT-L/14 text tower) configs
SD_VAE = dict(in_channels=3, out_channels=3, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
              latent_channels=4, norm_num_groups=32, down_block_types=["DownEncoderBlock2D"] * 4,
              up_block_types=["UpDecoderBlock2D"] * 4, sample_size=512)
CLIP_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
# AudioLDM (audioldm/utils.py default_audioldm_config; diffusers scripts/convert_original_audioldm_to_diffusers.py):
# model_channels 128 (s) / 192 (m) / 256 (l), channel_mult [1, 2, 3, 5], attention at down-factors 2, 4, 8,
# 2 res blocks, FiLM text conditioning (512-d CLAP embedding, concatenated to the time embedding)
AUDIOLDM_CHANNELS = {"s": 128, "m": 192, "l": 256}
AUDIOLDM_VAE = dict(in_channels=1, out_channels=1, block_out_channels=[128, 256, 512], layers_per_block=2,
                    latent_channels=8, down_block_types=["DownEncoderBlock2D"] * 3,
                    up_block_types=["UpDecoderBlock2D"] * 3, sample_size=512)
AUDIOLDM_VOCODER = dict(model_in_dim=64, sampling_rate=16000, upsample_initial_channel=1024,
                        upsample_rates=[5, 4, 2, 2, 2], upsample_kernel_sizes=[16, 16, 8, 4, 4],
                        resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3,
                        normalize_before=False)
# laion/clap-htsat-unfused text tower, as AudioLDM's text_encoder (ClapTextModelWithProjection)
CLAP_TEXT = dict(vocab_size=50265, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=514, type_vocab_size=1, projection_dim=512)
FPS, LATENT_HW, MEL_PER_S = 8, 64, 100  # AnimateDiff at 512x512, 8 fps; AudioLDM 16 kHz, hop 160
GPUS = {"24 GB": 23.5, "80 GB": 79.0, "141 GB": 139.0}  # usable GiB (what the driver leaves)
OVERHEAD_GIB, ACT_MARGIN = 1.5, 1.1  # CUDA context + workspaces; allocator fragmentation on activations


def audioldm_unet(ch: int) -> dict:
    return dict(sample_size=128, in_channels=8, out_channels=8, layers_per_block=2,
                block_out_channels=[ch, 2 * ch, 3 * ch, 5 * ch],
                down_block_types=["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 3,
                up_block_types=["CrossAttnUpBlock2D"] * 3 + ["UpBlock2D"],
                cross_attention_dim=[ch, 2 * ch, 3 * ch, 5 * ch], class_embed_type="simple_projection",
                projection_class_embeddings_input_dim=512, class_embeddings_concat=True)


def build(audio: str, max_frames: int) -> dict[str, nn.Module]:
    ch = AUDIOLDM_CHANNELS[audio]
    dim = min(256, SD15_UNET["block_out_channels"][0], ch)  # connector width, as avgen import picks it
    with torch.device("meta"):
        video = UNetMotionModel.from_unet2d(UNet2DConditionModel(**SD15_UNET), MotionAdapter(
            **{**MOTION_ADAPTER, "motion_max_seq_length": max(32, max_frames)}))  # the table is a buffer
        return {
            "video_unet": JointVideoUNet(video, dim, "cmcpe", 8),
            "audio_unet": JointAudioUNet(UNet2DConditionModel(**audioldm_unet(ch)), dim, "cmcpe", 8,
                                         "class_embedding"),
            "video_connector": VideoConnector(4, dim, dim), "audio_connector": AudioConnector(8, dim, dim),
            "video_vae": AutoencoderKL(**SD_VAE), "audio_vae": AutoencoderKL(**AUDIOLDM_VAE),
            "vocoder": SpeechT5HifiGan(SpeechT5HifiGanConfig(**AUDIOLDM_VOCODER)),
            "text_encoder_video": CLIPTextModel(CLIPTextConfig(**CLIP_TEXT)),
            "text_encoder_audio": ClapTextModelWithProjection(ClapTextConfig(**CLAP_TEXT)),
        }


def _n(params) -> int:
    return sum(p.numel() for p in params)


def parameter_counts(parts: dict[str, nn.Module]) -> dict[str, int]:
    v, a = parts["video_unet"], parts["audio_unet"]
    motion = _n(v.motion_parameters())
    return {"video_unet_base (SD-1.5)": _n(v.unet.parameters()) - motion, "motion_modules (v1-5-2)": motion,
            "audio_unet_base (AudioLDM)": _n(a.unet.parameters()),
            "cmcpe_video": _n(v.cross_blocks.parameters()), "cmcpe_audio": _n(a.cross_blocks.parameters()),
            "video_connector": _n(parts["video_connector"].parameters()),
            "audio_connector": _n(parts["audio_connector"].parameters()),
            "video_vae_decoder": _n(parts["video_vae"].decoder.parameters()) + _n(
                parts["video_vae"].post_quant_conv.parameters()),
            "audio_vae_decoder": _n(parts["audio_vae"].decoder.parameters()) + _n(
                parts["audio_vae"].post_quant_conv.parameters()),
            "vocoder": _n(parts["vocoder"].parameters()),
            "text_encoder_video (CLIP)": _n(parts["text_encoder_video"].parameters()),
            "text_encoder_audio (CLAP)": _n(parts["text_encoder_audio"].parameters())}


class LiveBytes(TorchDispatchMode):
    """Peak bytes of tensors alive at once, counting each storage once and freeing it when its tensor dies."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.seen: set[int] = set()

    def _free(self, key: int, n: int) -> None:
        self.live -= n
        self.seen.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and not t._is_view():
                key, n = t.untyped_storage()._cdata, t.untyped_storage().nbytes()
                if key not in self.seen:
                    self.seen.add(key)
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, key, n)
        return out


class _FlashLike(torch.autograd.Function):
    """Shapes of scaled_dot_product_attention, keeping for backward only what FlashAttention keeps."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = q.new_empty(q.shape[:-1] + v.shape[-1:])
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))  # + log-sum-exp
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


@contextmanager
def flash_attention_accounting():
    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = lambda q, k, v, *a, **kw: _FlashLike.apply(q, k, v)
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def half(module: nn.Module, dtype=torch.bfloat16) -> nn.Module:
    """Weights in 16 bit and floating inputs cast on entry, as autocast does for the matmuls and convolutions."""
    def cast(_, args, kwargs):
        c = lambda x: x.to(dtype) if torch.is_tensor(x) and x.is_floating_point() else x
        return tuple(map(c, args)), {k: c(v) for k, v in kwargs.items()}

    module.to(dtype).register_forward_pre_hook(cast, with_kwargs=True)
    return module


def latent_shapes(seconds: float, batch: int) -> tuple[tuple, tuple, int]:
    frames = int(round(seconds * FPS))
    mel = math.ceil(seconds * MEL_PER_S / 32) * 32  # through the VAE (x4) and the U-Net (x8)
    return (batch, 4, frames, LATENT_HW, LATENT_HW), (batch, 8, mel // 4, 16), mel


def _meta(*shape, dtype=torch.bfloat16):
    return torch.empty(shape, device="meta", dtype=dtype)


def _schedules():
    common = {"num_train_timesteps": 1000, "prediction_type": "epsilon"}
    return (NoiseSchedule.from_dict({**common, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                                     "beta_end": 0.012}),
            NoiseSchedule.from_dict({**common, "beta_schedule": "linear", "beta_start": 0.0015, "beta_end": 0.0195}))


def measure(fn) -> float:
    with flash_attention_accounting(), LiveBytes() as live:
        fn()
    return live.peak / GiB


def inference_step(parts, seconds: float, batch: int) -> float:
    """One denoising step with CFG (2 x batch), the two U-Nets one after the other, as the torch backend runs them."""
    vshape, ashape, _ = latent_shapes(seconds, 2 * batch)
    b = vshape[0]
    t = torch.full((b,), 500, device="meta")

    @torch.no_grad()
    def step():
        xv, xa = _meta(*vshape), _meta(*ashape)
        f_a = parts["audio_connector"](latent=xa, x0_hat=xa)
        f_v = parts["video_connector"](latent=xv, x0_hat=xv)
        parts["video_unet"](sample=xv, timestep=t, text_embeds=_meta(b, 77, 768), cross_features=f_a)
        parts["audio_unet"](sample=xa, timestep=t, text_embeds=_meta(b, 1, 512), cross_features=f_v)
    return measure(step)


def training_step(parts, seconds: float, batch: int, unfreeze_motion: bool) -> float:
    """Our joint objective: noising, the self-conditioning pass (p = 1, the worst case), both U-Nets, backward."""
    vshape, ashape, _ = latent_shapes(seconds, batch)
    for m in parts.values():
        m.requires_grad_(False)
    trainable = [parts["video_connector"], parts["audio_connector"], parts["video_unet"].cross_blocks,
                 parts["audio_unet"].cross_blocks]
    for m in trainable:
        m.requires_grad_(True)
    if unfreeze_motion:
        for p in parts["video_unet"].motion_parameters():
            p.requires_grad_(True)
    sv, sa = _schedules()
    model = types.SimpleNamespace(**{k: parts[k] for k in ("video_connector", "audio_connector", "video_unet",
                                                         "audio_unet")})

    def step():
        gen = torch.Generator().manual_seed(0)
        nv = add_noise(_meta(*vshape, dtype=torch.float32), sv, sv.alphas_cumprod(), gen)
        na = add_noise(_meta(*ashape, dtype=torch.float32), sa, sa.alphas_cumprod(), gen)
        pv, pa = joint_predict(model, nv, na, _meta(batch, 77, 768), _meta(batch, 1, 512), sv, sa, gen, 1.0)
        loss = F.mse_loss(pv.float(), nv.target) + F.mse_loss(pa.float(), na.target)
        loss.backward()
    return measure(step)


def decode_peaks(parts, seconds: float) -> dict[str, float]:
    """Decoding after sampling: one video frame through the VAE decoder; the whole clip's audio + vocoder."""
    _, ashape, mel = latent_shapes(seconds, 1)
    vdec, adec = VideoVAEDecoder(parts["video_vae"]), AudioVAEDecoder(parts["audio_vae"])

    def audio():
        adec(latent=_meta(*ashape))
        parts["vocoder"](_meta(1, mel, 64))

    with torch.no_grad():
        return {"video_vae_decode_per_frame": measure(lambda: vdec(latent=_meta(1, 4, 1, LATENT_HW, LATENT_HW))),
                "audio_vae_decode_and_vocoder": measure(audio)}


def budgets(counts: dict[str, int], act: dict, lengths, batches) -> dict:
    """GiB per (clip length, batch): parameters and optimizer state + margin x activations + fixed overhead."""
    total = sum(counts.values())
    trainable = counts["cmcpe_video"] + counts["cmcpe_audio"] + counts["video_connector"] + counts["audio_connector"]
    motion = counts["motion_modules (v1-5-2)"]
    unets = counts["video_unet_base (SD-1.5)"] + motion + counts["audio_unet_base (AudioLDM)"]
    # fp32 weights + fp32 grads + AdamW m, v + EMA = 20 bytes per trained parameter; frozen ones in bf16
    train_static = {False: (2 * unets + 20 * trainable) / GiB,
                    True: (2 * (unets - motion) + 20 * (trainable + motion)) / GiB}
    out = {"inference_fp16": {}, "train_connectors_bf16": {}, "train_with_motion_bf16": {}}
    for s in lengths:
        for b in batches:
            key = f"{s}s_b{b}"
            out["inference_fp16"][key] = 2 * total / GiB + ACT_MARGIN * b * act["inference"][s] + OVERHEAD_GIB
            for name, unfreeze in (("train_connectors_bf16", False), ("train_with_motion_bf16", True)):
                out[name][key] = train_static[unfreeze] + ACT_MARGIN * b * act[name][s] + OVERHEAD_GIB
    return out


def smallest_gpu(gib: float) -> str:
    for name, cap in GPUS.items():
        if gib <= cap:
            return name
    return "none"


def markdown(table: dict, lengths, batches, title: str) -> str:
    lines = [f"**{title}** (GiB; the smallest GPU it fits)", "",
             "| clip | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "| --- | " + " | ".join("---" for _ in batches) + " |"]
    for s in lengths:
        cells = [f"{table[f'{s}s_b{b}']:.1f} · {smallest_gpu(table[f'{s}s_b{b}'])}" for b in batches]
        lines.append(f"| {s:g} s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", default="m", choices=sorted(AUDIOLDM_CHANNELS))
    ap.add_argument("--lengths", default="2,4,8,16")
    ap.add_argument("--batches", default="1,2,4,8")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/memory_plan.json"))
    args = ap.parse_args()
    lengths = [float(x) for x in args.lengths.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    t0 = time.perf_counter()
    parts = build(args.audio, int(max(lengths) * FPS))
    counts = parameter_counts(parts)
    for name in ("video_unet", "audio_unet", "video_connector", "audio_connector", "video_vae", "audio_vae",
                 "vocoder"):
        half(parts[name])
    act = {"inference": {}, "train_connectors_bf16": {}, "train_with_motion_bf16": {}}
    for s in lengths:  # activations are per sample: measured at batch 1, scaled by the batch (checked below)
        act["inference"][s] = inference_step(parts, s, 1)
        act["train_connectors_bf16"][s] = training_step(parts, s, 1, unfreeze_motion=False)
        act["train_with_motion_bf16"][s] = training_step(parts, s, 1, unfreeze_motion=True)
        print(f"{s:g} s: " + ", ".join(f"{k} {v[s]:.2f} GiB" for k, v in act.items()), flush=True)
    check = training_step(parts, lengths[0], 2, unfreeze_motion=False)
    linearity = check / (2 * act["train_connectors_bf16"][lengths[0]])
    decode = {s: decode_peaks(parts, s) for s in lengths}
    table = budgets(counts, act, lengths, batches)
    result = {"audio_unet": f"audioldm-{args.audio}", "parameters": counts, "activations_gib_batch1": act,
              "batch2_over_2x_batch1": linearity, "decode_gib": decode, "budgets_gib": table,
              "assumptions": {"gpus_usable_gib": GPUS, "overhead_gib": OVERHEAD_GIB, "activation_margin": ACT_MARGIN,
                              "fps": FPS, "frame_size": 8 * LATENT_HW, "mel_frames_per_s": MEL_PER_S},
              "seconds": time.perf_counter() - t0}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print("\n| component | parameters |\n| --- | ---: |")
    for k, v in counts.items():
        print(f"| {k} | {v / 1e6:.1f} M |")
    print(f"| **total** | **{sum(counts.values()) / 1e6:.1f} M** |\n")
    print(f"batch 2 / (2 x batch 1) activations at {lengths[0]:g} s: {linearity:.3f}")
    print("decode peaks (GiB):", json.dumps(decode), "\n")
    for name, title in (("inference_fp16", "Inference (fp16, CFG: both U-Nets at 2 x batch)"),
                        ("train_connectors_bf16", "Connector + CMC-PE training (bf16, bases frozen)"),
                        ("train_with_motion_bf16", "Training with the motion layers unfrozen (seed 000 A.2)")):
        print(markdown(table[name], lengths, batches, title), "\n")
    print(f"({result['seconds']:.0f} s; JSON: {args.json})")


if __name__ == "__main__":
    main()
