"""The joint model: every component of a bundle built from its manifest, as torch modules.

The component attributes carry the names used everywhere (DESIGN.md). `sampler_components()` gives the four
callables the joint sampler needs.
"""

from __future__ import annotations

import os

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel, UNetMotionModel
from torch import nn
from transformers import (BertConfig, BertModel, ClapTextConfig, ClapTextModelWithProjection, CLIPTextConfig,
                          CLIPTextModel, SpeechT5HifiGan, SpeechT5HifiGanConfig)

from avcli.models.components import (AudioVAEDecoder, AudioVAEEncoder, TextEncoder, VideoVAEDecoder,
                                     VideoVAEEncoder, Vocoder)
from avcli.models.connectors import AudioConnector, VideoConnector
from avcli.models.joint_unet import JointAudioUNet, JointVideoUNet
from avcli.manifest import package_dir, tokenizer_dir  # noqa: F401  (tokenizer_dir re-exported)
from avcli.models.mel import LogMel
from export.geometry import Geometry, geometry  # noqa: F401  (re-exported: one source for the geometry)

# Which side of the joint model a joint leg trains (JointModel.joint_parameters).
TRAIN_SIDES = ("both", "audio", "video")
# Only these classes can be named in a manifest: nothing is imported by name from user data.
DIFFUSERS_CLASSES = {"diffusers.AutoencoderKL": AutoencoderKL, "diffusers.UNetMotionModel": UNetMotionModel,
                     "diffusers.UNet2DConditionModel": UNet2DConditionModel}
# Text encoders a bundle may carry (config class, model class, default output of TextEncoder).
TEXT_CLASSES = {"transformers.BertModel": (BertConfig, BertModel, "last_hidden_state"),
                "transformers.CLIPTextModel": (CLIPTextConfig, CLIPTextModel, "last_hidden_state"),
                "transformers.ClapTextModelWithProjection": (ClapTextConfig, ClapTextModelWithProjection,
                                                             "text_embeds_normalized")}


def build_text_encoder(spec: dict) -> nn.Module:
    """A TextEncoder from a manifest text spec: 'package' (weights from an installed package) or 'bundle'
    (architecture from the spec's config, weights from the bundle); classes only from TEXT_CLASSES."""
    source = spec.get("source")
    if source == "package":
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the checkpoint's unused pooler weights are expected, not news
        hf_logging.disable_progress_bar()
        model = BertModel.from_pretrained(str(package_dir(spec["package"], spec.get("subdir", "model"))),
                                          add_pooling_layer=False)
        return TextEncoder(model.eval())
    if source != "bundle":
        raise ValueError(f"unknown text encoder source {source!r}")
    name = spec.get("class", "transformers.BertModel")
    if name not in TEXT_CLASSES:
        raise ValueError(f"unknown text encoder class {name!r}; expected one of {', '.join(TEXT_CLASSES)}")
    config_cls, model_cls, output = TEXT_CLASSES[name]
    if model_cls is BertModel:
        model = BertModel(BertConfig(**spec["config"]), add_pooling_layer=False)
    else:
        model = model_cls(config_cls.from_dict(spec["config"]))
    return TextEncoder(model.eval(), spec.get("output", output), spec.get("use_attention_mask", True))


def build_vocoder(spec: dict, media: dict) -> Vocoder:
    """The bundle's vocoder on the bundle's mel: a SpeechT5HifiGan, or an ISTFTVocoder (avgen.ISTFTVocoder,
    spectrum + inverse STFT). Where the spec names the vocoder's own mel front end (`front_end`, e.g. the pretrained
    HiFi-GAN universal's), the SpeechT5HifiGan runs behind a MelAdapter."""
    if spec["class"] == "avgen.ISTFTVocoder":
        from avcli.models.istft_vocoder import ISTFTVocoder, ISTFTVocoderConfig

        if spec.get("front_end"):
            raise ValueError("an avgen.ISTFTVocoder runs on the bundle's own mel; it takes no front_end")
        return Vocoder(ISTFTVocoder(ISTFTVocoderConfig(**spec["config"])))
    hifigan = SpeechT5HifiGan(SpeechT5HifiGanConfig(**spec["config"]))
    front = spec.get("front_end")
    if not front:
        return Vocoder(hifigan)
    from avcli.models.mel_adapter import MelAdapter

    return Vocoder(hifigan, MelAdapter(media, front))


class JointModel(nn.Module):
    def __init__(self, manifest: dict):
        super().__init__()
        self.manifest = manifest
        comps, joint, media = manifest["components"], manifest["joint"], manifest["media"]
        text = manifest["text"]
        self.text_encoder_video = build_text_encoder(text["video"])
        if text["audio"].get("shared_with") == "text_encoder_video":
            self.text_encoder_audio = self.text_encoder_video
        else:
            self.text_encoder_audio = build_text_encoder(text["audio"])

        self.video_vae = AutoencoderKL.from_config(comps["video_vae"]["config"])
        self.audio_vae = AutoencoderKL.from_config(comps["audio_vae"]["config"])
        self.video_vae_encoder, self.video_vae_decoder = VideoVAEEncoder(self.video_vae), VideoVAEDecoder(self.video_vae)
        self.audio_vae_encoder, self.audio_vae_decoder = AudioVAEEncoder(self.audio_vae), AudioVAEDecoder(self.audio_vae)
        self.vocoder = build_vocoder(comps["vocoder"], media)

        vcfg, acfg = comps["video_unet"]["config"], comps["audio_unet"]["config"]
        dim, hidden, heads, mode = joint["connector_dim"], joint["connector_hidden"], joint["heads"], joint["mode"]
        grid = int(joint.get("video_grid", 0))
        if grid:  # the connector's feature map is the latent after one stride-2 convolution
            _, _, lh, lw = geometry(manifest).video_latent
            fh, fw = (lh + 1) // 2, (lw + 1) // 2
            if grid < 0 or fh % grid or fw % grid:
                raise ValueError(f"joint.video_grid {grid} must divide the video connector's {fh}x{fw} feature map "
                                 f"(or be 0 for a global mean)")
        self.video_connector = VideoConnector(vcfg["in_channels"], hidden, dim, grid,
                                              bool(joint.get("video_global_pool", False)))
        self.audio_connector = AudioConnector(acfg["in_channels"], hidden, dim)
        self.video_unet = JointVideoUNet(DIFFUSERS_CLASSES[comps["video_unet"]["class"]].from_config(vcfg),
                                         dim, mode, heads, bool(joint.get("video_first_frame_attn", False)),
                                         bool(joint.get("video_first_frame_conv", False)))
        self.audio_unet = JointAudioUNet(DIFFUSERS_CLASSES[comps["audio_unet"]["class"]].from_config(acfg),
                                         dim, mode, heads, comps["audio_unet"].get("text_mode", "cross_attention"))
        self.logmel = LogMel(media["sample_rate"], media["n_fft"], media["hop_length"], media["win_length"],
                             media["n_mels"], media.get("f_min", 0.0), media.get("f_max"),
                             media.get("mel_scale", "htk"), media.get("log_floor", 1e-5))
        self.eval()

    # --- groups of parameters -------------------------------------------------------------------------------
    def joint_parameters(self, side: str = "both"):
        """What joint training optimises: connectors and the cross-modal blocks (bases stay frozen).

        side 'audio' keeps only what carries the video into the audio U-Net's prediction (the video connector and
        the audio U-Net's cross-modal blocks); 'video' the mirror (the audio connector and the video U-Net's
        cross-modal blocks). The order of 'both' is the one checkpoints were written with."""
        if side not in TRAIN_SIDES:
            raise ValueError(f"unknown side {side!r}; expected one of {', '.join(TRAIN_SIDES)}")
        if side != "video":
            yield from self.video_connector.parameters()
        if side != "audio":
            yield from self.audio_connector.parameters()
            yield from self.video_unet.joint_parameters()
        if side != "video":
            yield from self.audio_unet.joint_parameters()

    def freeze_bases(self, unfreeze_motion: bool = False, unfreeze_audio: bool = False,
                     unfreeze_video: bool = False, side: str = "both") -> list[nn.Parameter]:
        """Freeze everything but the joint parameters of `side` (see `joint_parameters`); unfreeze_motion adds
        the video U-Net's motion layers, unfreeze_audio the whole audio base U-Net (so that it can learn to read
        what the connectors hand it), unfreeze_video the whole video base U-Net (motion layers included). A base
        of the side that stays frozen cannot be unfrozen."""
        if side == "audio" and (unfreeze_video or unfreeze_motion):
            raise ValueError("training the audio side only leaves the video U-Net frozen; drop --unfreeze-video "
                             "and --unfreeze-motion")
        if side == "video" and unfreeze_audio:
            raise ValueError("training the video side only leaves the audio U-Net frozen; drop --unfreeze-audio")
        for p in self.parameters():
            p.requires_grad_(False)
        trainable = list(self.joint_parameters(side))
        if unfreeze_motion:
            trainable += list(self.video_unet.motion_parameters())
        if unfreeze_audio:
            trainable += list(self.audio_unet.unet.parameters())
        if unfreeze_video:
            trainable += list(self.video_unet.unet.parameters())
        for p in trainable:
            p.requires_grad_(True)
        return trainable

    def sampler_components(self) -> dict:
        return {"video_connector": self.video_connector, "audio_connector": self.audio_connector,
                "video_unet": self.video_unet, "audio_unet": self.audio_unet}

    def geometry(self, duration: float | None = None, fps: float | None = None) -> Geometry:
        return geometry(self.manifest, duration, fps)

    # --- mel normalisation shared by training and inference -------------------------------------------------
    def normalize_mel(self, logmel: torch.Tensor) -> torch.Tensor:
        m = self.manifest["media"]
        return (logmel - m["mel_mean"]) / m["mel_std"]

    def denormalize_mel(self, mel: torch.Tensor) -> torch.Tensor:
        m = self.manifest["media"]
        return mel * m["mel_std"] + m["mel_mean"]


def rejoin(model: JointModel, mode: str | None = None, **joint_overrides) -> JointModel:
    """The same bases (VAEs, vocoder, text encoders, base U-Nets) with fresh, zero-output connectors and
    cross-modal blocks, e.g. to train the cross-attention baseline beside CMC-PE on identical bases."""
    import copy

    manifest = copy.deepcopy(model.manifest)
    if mode is not None:
        manifest["joint"]["mode"] = mode
    manifest["joint"].update(joint_overrides)
    fresh = JointModel(manifest)
    fresh.video_vae.load_state_dict(model.video_vae.state_dict())
    fresh.audio_vae.load_state_dict(model.audio_vae.state_dict())
    fresh.vocoder.load_state_dict(model.vocoder.state_dict())
    fresh.text_encoder_video.load_state_dict(model.text_encoder_video.state_dict())
    fresh.text_encoder_audio.load_state_dict(model.text_encoder_audio.state_dict())
    fresh.video_unet.unet.load_state_dict(model.video_unet.unet.state_dict())
    fresh.audio_unet.unet.load_state_dict(model.audio_unet.unet.state_dict())
    if getattr(model, "bundle_path", None) is not None:  # where its tokenizer folders are, for save_bundle
        fresh.bundle_path = model.bundle_path
    return fresh.eval()


def with_fresh_video_unet(model: JointModel, overrides: dict) -> JointModel:
    """The same bundle with a fresh video U-Net (its base and its cross-modal blocks, zero-output) whose config is
    the old one updated by `overrides` (e.g. {"block_out_channels": [64, 128]}): the VAEs, vocoder, text encoders,
    the audio U-Net with its cross-modal blocks and both connectors keep their trained weights. The connectors read
    latents, not U-Net features, so the audio side is untouched by the change; train the new video U-Net with
    `train unet-video`, then its cross-modal blocks with `train joint --train-side video`."""
    import copy

    manifest = copy.deepcopy(model.manifest)
    manifest["components"]["video_unet"]["config"].update(overrides)
    fresh = JointModel(manifest)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith("video_unet.")}
    missing, unexpected = fresh.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith("video_unet.") for k in missing):  # pragma: no cover - a model change
        raise ValueError(f"state does not carry over: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if getattr(model, "bundle_path", None) is not None:  # where its tokenizer folders are, for save_bundle
        fresh.bundle_path = model.bundle_path
    return fresh.eval()
