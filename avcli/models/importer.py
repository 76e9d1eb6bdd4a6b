"""`avgen import`: a diffusers AnimateDiff (or Stable Diffusion + motion adapter) folder and an AudioLDM folder ->
one joint model, ready for save_bundle.

Configs are read first and turned into a manifest; the joint model is built from it (fresh zero-output connectors
and cross-modal blocks sized from the U-Nets, or trained ones from --connectors) and each base component's weights
are then copied in one at a time, so peak memory is about the joint model plus its largest component. Weights are
read through avcli.models.checkpoints (safetensors; pickles only on request and with weights_only=True).

Supported inputs per side: a pipeline folder (model_index.json with unet/, vae/, text_encoder/, tokenizer/,
scheduler/, and motion_adapter/ for AnimateDiff or vocoder/ for AudioLDM), a Hugging Face cache folder
(models--org--name or one of its snapshots), and optionally a single U-Net weights file in diffusers key format
(--video-unet/--audio-unet, with its config.json if its architecture differs) replacing the folder's U-Net.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avcli.errors import UsageError
from avcli.models.checkpoints import load_into, load_weights, read_json, refuse_pickle, resolve_folder, weight_files
from avcli.models.connector_io import load_connectors, read_connectors
from avcli.models.joint import TEXT_CLASSES, JointModel
from avcli.models.presets import MANIFEST_FORMAT, MANIFEST_VERSION
from avcli.sampling.schedules import BETA_SCHEDULES, SPACINGS

TEXT_CLASS_BY_CONFIG = {"CLIPTextModel": "transformers.CLIPTextModel", "clip_text_model": "transformers.CLIPTextModel",
                        "ClapTextModelWithProjection": "transformers.ClapTextModelWithProjection",
                        "clap_text_model": "transformers.ClapTextModelWithProjection"}
# AudioLDM's mel front end (16 kHz): STFT 1024 / hop 160 / window 1024, 64 slaney mels over 0-8 kHz, natural log
AUDIOLDM_MEL = {"n_fft": 1024, "win_length": 1024, "f_min": 0.0, "f_max": 8000.0, "mel_scale": "slaney"}


@dataclass(frozen=True)
class ImportOptions:
    video: Path
    audio: Path
    motion_adapter: Path | None = None
    video_unet: Path | None = None  # a single U-Net weights file replacing the video folder's U-Net
    video_config: Path | None = None  # its config.json (default: the folder's unet/config.json)
    audio_unet: Path | None = None
    audio_config: Path | None = None
    connectors: Path | None = None
    allow_pickle: bool = False
    mode: str | None = None
    duration: float | None = None
    fps: float | None = None
    name: str = "imported"


@dataclass
class Part:
    """One base component to load: the joint model attribute path, where it came from, its weight files."""

    name: str
    cls: str
    source: str
    files: list[Path]


@dataclass
class ImportResult:
    model: JointModel
    folders: dict[str, Path]  # tokenizer folders to carry into the bundle
    rows: list[dict] = field(default_factory=list)  # component, class, source, parameters
    warnings: list[str] = field(default_factory=list)


def _clean(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _folder(path: Path, flag: str) -> Path:
    root = resolve_folder(path)
    if root.is_file():
        raise UsageError(f"{root}: a single file holds only a U-Net; pass the pipeline folder as --{flag} and this "
                         f"file as --{flag}-unet (with --{flag}-config if its architecture differs)")
    return root


def _require(root: Path, parts: list[str], kind: str, hint: str = "") -> None:
    for sub in parts:
        if not (root / sub).is_dir():
            raise UsageError(f"{root}: no {sub}/ ({kind} pipelines have one{hint})")


def _unet(root: Path, file: Path | None, config: Path | None, allow_pickle: bool) -> tuple[dict, list[Path], str]:
    cfg_path = Path(config) if config else root / "unet" / "config.json"
    if file is not None:
        if not Path(file).is_file():
            raise UsageError(f"{file}: no such U-Net weights file")
        refuse_pickle(Path(file), allow_pickle)
        return read_json(cfg_path), [Path(file)], str(file)
    return read_json(cfg_path), weight_files(root / "unet", allow_pickle), str(root / "unet")


def _motion_config(unet_cfg: dict, adapter_cfg: dict) -> dict:
    """The UNetMotionModel config diffusers' from_unet2d derives (computed on the meta device: no memory)."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    if adapter_cfg.get("conv_in_channels"):
        raise UsageError("PIA motion adapters (conv_in_channels) are not supported")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(_clean(unet_cfg))
        adapter = MotionAdapter.from_config(_clean(adapter_cfg))
        try:
            motion = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
        except ValueError as exc:
            raise UsageError(f"motion adapter does not fit the U-Net: {exc}") from None
    return _clean(dict(motion.config))


def _max_length(tokenizer: Path, positions: int, clip: bool) -> int:
    """What the pipelines pad to: the tokenizer's model_max_length (else what the position table allows)."""
    tok_cfg = tokenizer / "tokenizer_config.json"
    n = read_json(tok_cfg).get("model_max_length") if tok_cfg.is_file() else None
    if isinstance(n, int) and 0 < n <= 100_000:
        return n
    return positions if clip else positions - 2  # RoBERTa-style positions start after the padding index


def _text(root: Path, modality: str, allow_pickle: bool) -> tuple[dict, Part]:
    cfg_path = root / "text_encoder" / "config.json"
    cfg = read_json(cfg_path)
    keys = list(cfg.get("architectures") or []) + [cfg.get("model_type", "")]
    cls = next((TEXT_CLASS_BY_CONFIG[k] for k in keys if k in TEXT_CLASS_BY_CONFIG), None)
    if cls is None:
        raise UsageError(f"{cfg_path}: text encoder {keys[0] or '?'} is not supported "
                         f"(CLIPTextModel or ClapTextModelWithProjection)")
    clip = cls.endswith("CLIPTextModel")
    config = TEXT_CLASSES[cls][0].from_dict(_clean(cfg))  # defaults for keys older configs leave out
    spec = {"source": "bundle", "class": cls, "config": _clean(cfg), "tokenizer": f"tokenizer_{modality}",
            "max_length": _max_length(root / "tokenizer", int(config.max_position_embeddings), clip),
            "dim": int(config.hidden_size if clip else config.projection_dim),
            # diffusers' SD/AnimateDiff pipelines pass CLIP no attention mask; AudioLDM passes CLAP one
            "use_attention_mask": bool(cfg.get("use_attention_mask", False)) if clip else True,
            "output": "last_hidden_state" if clip else "text_embeds_normalized"}
    part = Part(f"text_encoder_{modality}", cls.split(".")[1], str(root / "text_encoder"),
                weight_files(root / "text_encoder", allow_pickle))
    return spec, part


def _schedule(root: Path, warnings: list[str], side: str) -> dict:
    path = root / "scheduler" / "scheduler_config.json"
    cfg = read_json(path)
    if cfg.get("trained_betas") is not None:
        raise UsageError(f"{path}: trained_betas are not supported (only {', '.join(BETA_SCHEDULES)})")
    if cfg.get("beta_schedule", "linear") not in BETA_SCHEDULES:
        raise UsageError(f"{path}: beta_schedule {cfg['beta_schedule']!r} is not supported")
    if cfg.get("timestep_spacing", "leading") not in SPACINGS:
        raise UsageError(f"{path}: timestep_spacing {cfg['timestep_spacing']!r} is not supported")
    if cfg.get("thresholding"):
        warnings.append(f"{side} scheduler: thresholding=True is ignored (avgen's solvers clip, never threshold)")
    ddim = cfg.get("_class_name") == "DDIMScheduler"
    clip = {"clip_sample": True, "clip_sample_range": float(cfg.get("clip_sample_range", 1.0))} \
        if ddim and cfg.get("clip_sample") else {}  # DDIM's default is True; other schedulers' configs lack it
    return {"beta_schedule": cfg.get("beta_schedule", "linear"), "beta_start": float(cfg.get("beta_start", 0.0001)),
            "beta_end": float(cfg.get("beta_end", 0.02)),
            "num_train_timesteps": int(cfg.get("num_train_timesteps", 1000)),
            "prediction_type": cfg.get("prediction_type", "epsilon"),
            "set_alpha_to_one": bool(cfg.get("set_alpha_to_one", ddim)),
            "timestep_spacing": cfg.get("timestep_spacing", "leading"), "steps_offset": int(cfg.get("steps_offset", 0)),
            **clip}


def _read_video(opts: ImportOptions, warnings: list[str]) -> tuple[dict, list[Part]]:
    root = _folder(opts.video, "video")
    _require(root, ["vae", "text_encoder", "tokenizer", "scheduler"] + ([] if opts.video_unet else ["unet"]),
             "AnimateDiff")
    ucfg, ufiles, usource = _unet(root, opts.video_unet, opts.video_config, opts.allow_pickle)
    cls = ucfg.get("_class_name", "UNet2DConditionModel")
    if cls == "UNetMotionModel":
        if opts.motion_adapter:
            raise UsageError(f"{usource}: this U-Net already has motion modules; --motion-adapter goes with a "
                             f"Stable Diffusion (UNet2DConditionModel) U-Net")
        mcfg, files, label = _clean(ucfg), ufiles, "UNetMotionModel"
    elif cls == "UNet2DConditionModel":
        adapter = resolve_folder(opts.motion_adapter) if opts.motion_adapter else root / "motion_adapter"
        if not adapter.is_dir():
            raise UsageError(f"{root}: no motion_adapter/ (AnimateDiff pipelines have one; for a Stable Diffusion "
                             f"folder pass --motion-adapter)")
        mcfg = _motion_config(ucfg, read_json(adapter / "config.json"))
        files, label = ufiles + weight_files(adapter, opts.allow_pickle), "UNet2DConditionModel + MotionAdapter"
        usource += f" + {adapter}"
    else:
        raise UsageError(f"video U-Net class {cls} is not supported (UNet2DConditionModel + motion adapter, "
                         f"or UNetMotionModel)")
    text, tpart = _text(root, "video", opts.allow_pickle)
    if not text["class"].endswith("CLIPTextModel") or text["dim"] != mcfg.get("cross_attention_dim"):
        raise UsageError(f"{root}: the video U-Net attends to {mcfg.get('cross_attention_dim')}-dim text, the text "
                         f"encoder gives {text['dim']}-dim {text['class'].split('.')[1]} tokens")
    vae = read_json(root / "vae" / "config.json")
    side = {"root": root, "unet": mcfg, "vae": _clean(vae), "text": text, "tokenizer": root / "tokenizer",
            "schedule": _schedule(root, warnings, "video")}
    parts = [Part("video_unet", label, usource, files),
             Part("video_vae", "AutoencoderKL", str(root / "vae"), weight_files(root / "vae", opts.allow_pickle)),
             tpart]
    return side, parts


def _read_audio(opts: ImportOptions, warnings: list[str]) -> tuple[dict, list[Part]]:
    root = _folder(opts.audio, "audio")
    _require(root, ["vae", "text_encoder", "tokenizer", "scheduler", "vocoder"] + ([] if opts.audio_unet else ["unet"]),
             "AudioLDM")
    ucfg, ufiles, usource = _unet(root, opts.audio_unet, opts.audio_config, opts.allow_pickle)
    if ucfg.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise UsageError(f"audio U-Net class {ucfg.get('_class_name')} is not supported (UNet2DConditionModel)")
    text, tpart = _text(root, "audio", opts.allow_pickle)
    embed = ucfg.get("class_embed_type")
    if embed == "simple_projection":  # AudioLDM: the CLAP embedding is a class label joined to the time embedding
        mode, want = "class_embedding", ucfg.get("projection_class_embeddings_input_dim")
        if text["output"] != "text_embeds_normalized":
            raise UsageError(f"{root}: the audio U-Net takes a CLAP embedding as class label; found {text['class']}")
    elif embed is None:
        mode, want = "cross_attention", ucfg.get("cross_attention_dim")
        text["output"] = "last_hidden_state"
        text["dim"] = int(TEXT_CLASSES[text["class"]][0].from_dict(text["config"]).hidden_size)
    else:
        raise UsageError(f"{root}: audio U-Net class_embed_type {embed!r} is not supported")
    if text["dim"] != want:
        raise UsageError(f"{root}: the audio U-Net expects {want}-dim text, the text encoder gives {text['dim']}")
    side = {"root": root, "unet": _clean(ucfg), "text_mode": mode, "text": text,
            "vae": _clean(read_json(root / "vae" / "config.json")),
            "vocoder": _clean(read_json(root / "vocoder" / "config.json")),
            "schedule": _schedule(root, warnings, "audio"), "tokenizer": root / "tokenizer"}
    parts = [Part("audio_unet", "UNet2DConditionModel", usource, ufiles),
             Part("audio_vae", "AutoencoderKL", str(root / "vae"), weight_files(root / "vae", opts.allow_pickle)),
             tpart, Part("vocoder", "SpeechT5HifiGan", str(root / "vocoder"),
                         weight_files(root / "vocoder", opts.allow_pickle))]
    return side, parts


def _media(video: dict, audio: dict, opts: ImportOptions) -> dict:
    fv = 2 ** (len(video["vae"]["block_out_channels"]) - 1)
    size = video["unet"].get("sample_size") or 64
    h, w = (size, size) if isinstance(size, int) else size
    fps = float(opts.fps or 8.0)  # AnimateDiff's motion modules were trained at 8 fps, 16 frames
    duration = float(opts.duration or 16 / 8.0)
    max_frames = int(video["unet"].get("motion_max_seq_length", 32))
    if fps <= 0 or duration <= 0 or duration * fps > max_frames:
        raise UsageError(f"--duration {duration:g} s at --fps {fps:g} is outside the motion model's "
                         f"1..{max_frames} frames")
    voc = audio["vocoder"]
    sr, hop = int(voc["sampling_rate"]), int(math.prod(voc["upsample_rates"]))
    mel = dict(AUDIOLDM_MEL) if (sr, hop) == (16000, 160) else {
        "n_fft": 2 ** math.ceil(math.log2(4 * hop)), "win_length": 2 ** math.ceil(math.log2(4 * hop)),
        "f_min": 0.0, "f_max": sr / 2, "mel_scale": "slaney"}
    # AudioLDM's VAE reads the natural-log mel as it is: no normalisation (mean 0, std 1)
    return {"fps": fps, "frame_size": [h * fv, w * fv], "duration": duration, "max_duration": max_frames / fps,
            "sample_rate": sr, "hop_length": hop, "n_mels": int(voc["model_in_dim"]), **mel,
            "mel_mean": 0.0, "mel_std": 1.0}


def _joint(video: dict, audio: dict, opts: ImportOptions, trained: dict | None) -> dict:
    if trained is not None:
        if opts.mode and opts.mode != trained.get("mode"):
            raise UsageError(f"--mode {opts.mode} does not match the connectors (trained as {trained.get('mode')})")
        return dict(trained)
    # connectors no wider than the narrower base: 256 for SD (320) + AudioLDM-l (256); the tiny test bases stay tiny
    dim = min(256, video["unet"]["block_out_channels"][0], audio["unet"]["block_out_channels"][0])
    return {"mode": opts.mode or "cmcpe", "connector_dim": dim, "connector_hidden": dim, "heads": 8}


def build_manifest(video: dict, audio: dict, opts: ImportOptions, joint: dict, sampling_hint: dict) -> dict:
    vsched, asched = video["schedule"], audio["schedule"]
    text = {"max_length": max(video["text"]["max_length"], audio["text"]["max_length"]),
            "video": video["text"], "audio": audio["text"]}
    sampling = {"steps": 25, "solver": "ddim", "eta": 0.0, "gamma": float(sampling_hint.get("gamma", 1.0)),
                "cfg_video": 7.5, "cfg_audio": 2.5}  # AnimateDiff's and AudioLDM's default guidance
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "name": opts.name,
        "media": _media(video, audio, opts),
        "video": {"schedule": vsched}, "audio": {"schedule": asched}, "joint": joint, "sampling": sampling,
        "text": text,
        "components": {
            "video_vae": {"class": "diffusers.AutoencoderKL", "config": video["vae"]},
            "audio_vae": {"class": "diffusers.AutoencoderKL", "config": audio["vae"]},
            "video_unet": {"class": "diffusers.UNetMotionModel", "config": video["unet"]},
            "audio_unet": {"class": "diffusers.UNet2DConditionModel", "config": audio["unet"],
                           "text_mode": audio["text_mode"]},
            "vocoder": {"class": "transformers.SpeechT5HifiGan", "config": audio["vocoder"]},
            "video_connector": {"class": "avgen.VideoConnector", "config": {}},
            "audio_connector": {"class": "avgen.AudioConnector", "config": {}},
        },
        "imported": {"video": str(video["root"]), "audio": str(audio["root"]),
                     "motion_adapter": str(opts.motion_adapter) if opts.motion_adapter else None,
                     "connectors": str(opts.connectors) if opts.connectors else None},
    }


def _target(model: JointModel, name: str) -> torch.nn.Module:
    return {"video_unet": model.video_unet.unet, "audio_unet": model.audio_unet.unet,
            "text_encoder_video": model.text_encoder_video.model, "text_encoder_audio": model.text_encoder_audio.model,
            "vocoder": model.vocoder.model, "video_vae": model.video_vae, "audio_vae": model.audio_vae}[name]


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def import_checkpoints(opts: ImportOptions) -> ImportResult:
    warnings: list[str] = []
    video, vparts = _read_video(opts, warnings)
    audio, aparts = _read_audio(opts, warnings)
    if (video["schedule"]["timestep_spacing"], video["schedule"]["steps_offset"]) != \
            (audio["schedule"]["timestep_spacing"], audio["schedule"]["steps_offset"]):
        warnings.append("both U-Nets step on the video scheduler's timestep spacing "
                        f"({video['schedule']['timestep_spacing']}, offset {video['schedule']['steps_offset']}); "
                        "the audio pipeline's own differs")
    tensors, trained, hint = (read_connectors(opts.connectors, opts.allow_pickle) if opts.connectors
                              else (None, None, {}))
    manifest = build_manifest(video, audio, opts, _joint(video, audio, opts, trained), hint)
    manifest["imported"]["warnings"] = warnings
    try:
        model = JointModel(manifest)
    except (TypeError, ValueError, KeyError) as exc:
        raise UsageError(f"the imported configs do not build ({type(exc).__name__}: {exc})") from None
    rows = []
    for part in vparts + aparts:  # one component's tensors in memory at a time
        target = _target(model, part.name)
        load_into(target, load_weights(part.files, opts.allow_pickle), f"{part.name} ({part.source})")
        rows.append({"component": part.name, "class": part.cls, "source": part.source, "parameters": _params(target)})
    origin = str(opts.connectors) if opts.connectors else "fresh (zero output)"
    if tensors is not None:
        load_connectors(model, tensors, str(opts.connectors))
    mode = manifest["joint"]["mode"]
    for name, module, cls in (("video_connector", model.video_connector, "VideoConnector"),
                              ("audio_connector", model.audio_connector, "AudioConnector"),
                              ("video_unet.cross_blocks", model.video_unet.cross_blocks, f"{mode} x4"),
                              ("audio_unet.cross_blocks", model.audio_unet.cross_blocks, f"{mode} x4")):
        rows.append({"component": name, "class": cls, "source": origin, "parameters": _params(module)})
    folders = {"tokenizer_video": video["tokenizer"], "tokenizer_audio": audio["tokenizer"]}
    return ImportResult(model.eval(), folders, rows, warnings)
