"""`avgen import`: diffusers AnimateDiff (or Stable Diffusion + motion adapter) and AudioLDM folders -> a bundle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from avcli.cli.common import console, print_json, stdout, warn

EXAMPLES = """
Examples:

  avgen import --video ~/models/animatediff --audio ~/models/audioldm-s-full-v2 -o bundles/ad-audioldm

  avgen import --video HUB/models--runwayml--stable-diffusion-v1-5 --motion-adapter HUB/models--guoyww--animatediff-motion-adapter-v1-5-2 --audio HUB/models--cvssp--audioldm-s-full-v2 -o bundles/sd15-audioldm

  avgen import --video animatediff/ --video-unet tuned_unet.safetensors --audio audioldm/ --connectors trained/ -o mine --dtype float16


""" + ("A PATH is a diffusers pipeline folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/, and motion_adapter/ "
       "or vocoder/) or a Hugging Face cache folder (HUB = ~/.cache/huggingface/hub; models--org--name or one of its "
       "snapshots/<hash>). --video-unet / --audio-unet take one U-Net weights file in diffusers key format. Pickled "
       "weights (.ckpt .bin .pt .pth) are refused unless --allow-pickle, and then read with "
       "torch.load(weights_only=True).")


def register(app: typer.Typer) -> None:
    app.command("import", short_help="Bring real AnimateDiff + AudioLDM checkpoints in as a bundle.",
                help="Join a diffusers video model (AnimateDiff) and audio model (AudioLDM) into one bundle, with "
                     "fresh zero-output connectors (the joined model then generates exactly what its two bases "
                     "do) or trained ones from --connectors." + EXAMPLES)(import_cmd)


def import_cmd(
    video: Path = typer.Option(..., "--video", help="AnimateDiff (or Stable Diffusion) pipeline / HF-cache folder."),
    audio: Path = typer.Option(..., "--audio", help="AudioLDM pipeline / HF-cache folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Bundle folder to write."),
    motion_adapter: Optional[Path] = typer.Option(None, "--motion-adapter",
                                                  help="MotionAdapter folder, for a Stable Diffusion --video folder."),
    connectors: Optional[Path] = typer.Option(None, "--connectors",
                                              help="Trained connectors + cross-modal blocks: a bundle folder or a "
                                                   ".safetensors file (default: fresh, zero output)."),
    video_unet: Optional[Path] = typer.Option(None, "--video-unet", help="Single U-Net weights file replacing "
                                              "the --video folder's U-Net (diffusers key names)."),
    video_config: Optional[Path] = typer.Option(None, "--video-config", help="config.json of --video-unet "
                                                "(default: the folder's unet/config.json)."),
    audio_unet: Optional[Path] = typer.Option(None, "--audio-unet", help="Single U-Net weights file replacing "
                                              "the --audio folder's U-Net."),
    audio_config: Optional[Path] = typer.Option(None, "--audio-config", help="config.json of --audio-unet."),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Read pickled weights (.ckpt .bin .pt .pth) "
                                      "with torch.load(weights_only=True)."),
    mode: Optional[str] = typer.Option(None, help="Cross-modal blocks: cmcpe (default) or xattn."),
    duration: Optional[float] = typer.Option(None, help="Native clip length in seconds (default 2: 16 frames)."),
    fps: Optional[float] = typer.Option(None, help="Native frame rate (default 8, as AnimateDiff was trained)."),
    dtype: str = typer.Option("float32", help="Weights precision in the bundle: float32 or float16."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (for scripts)."),
) -> None:
    from avcli.errors import UsageError

    t0 = time.perf_counter()
    if dtype not in ("float32", "float16"):
        raise UsageError(f"--dtype must be float32 or float16, got {dtype!r}")
    if mode is not None and mode not in ("cmcpe", "xattn"):
        raise UsageError(f"--mode must be cmcpe or xattn, got {mode!r}")
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise UsageError(f"{output}: already exists (use --overwrite to replace it)")
    if output.resolve() in (video.resolve(), audio.resolve()):
        raise UsageError(f"{output}: the bundle cannot replace its own source folder")

    from avcli.models.bundle import save_bundle
    from avcli.models.importer import ImportOptions, import_checkpoints

    opts = ImportOptions(video=video, audio=audio, motion_adapter=motion_adapter, video_unet=video_unet,
                         video_config=video_config, audio_unet=audio_unet, audio_config=audio_config,
                         connectors=connectors, allow_pickle=allow_pickle, mode=mode, duration=duration, fps=fps,
                         name=output.name)
    with console.status("reading checkpoints", spinner="dots"):
        result = import_checkpoints(opts)
        path = save_bundle(result.model, output, dtype=dtype, folders=result.folders)
    m = result.model.manifest
    summary = {"bundle": str(path), "dtype": dtype, "components": result.rows, "warnings": result.warnings,
               "parameters": sum(r["parameters"] for r in result.rows),
               "media": {k: m["media"][k] for k in ("fps", "frame_size", "duration", "max_duration", "sample_rate")},
               "schedules": {"video": m["video"]["schedule"], "audio": m["audio"]["schedule"]},
               "joint": m["joint"], "sources": m["imported"], "wall_s": round(time.perf_counter() - t0, 3)}
    if json_out:
        print_json(summary)
        return
    _print(summary)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def _short(source: str, sources: dict) -> str:
    for side in ("video", "audio"):
        if sources.get(side):
            source = source.replace(sources[side].rstrip("/") + "/", f"{side}:")
    return source


def _print(s: dict) -> None:
    stdout.print(f"video: {s['sources']['video']}\naudio: {s['sources']['audio']}")
    table = Table(title=f"avgen import -> {escape(str(s['bundle']))} ({s['dtype']})")
    table.add_column("component", no_wrap=True)
    table.add_column("class")
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("from", overflow="fold")
    for r in s["components"]:
        table.add_row(r["component"], r["class"], _count(r["parameters"]), _short(r["source"], s["sources"]))
    table.add_row("total", "", _count(s["parameters"]), "", style="bold")
    stdout.print(table)
    media, joint = s["media"], s["joint"]
    stdout.print(f"clip: {media['duration']:g} s at {media['fps']:g} fps (max {media['max_duration']:g} s), "
                 f"{media['frame_size'][1]}x{media['frame_size'][0]}, audio {media['sample_rate']} Hz; "
                 f"joint: {joint['mode']}, connector dim {joint['connector_dim']}")
    for side in ("video", "audio"):
        sc = s["schedules"][side]
        stdout.print(f"{side} schedule: {sc['beta_schedule']} {sc['beta_start']:g}..{sc['beta_end']:g}, "
                     f"T={sc['num_train_timesteps']}, {sc['prediction_type']}, {sc['timestep_spacing']} spacing")
    for w in s["warnings"]:
        warn(w)
