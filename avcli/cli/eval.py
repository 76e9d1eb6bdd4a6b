"""`avgen eval`: alignment and quality metrics over a folder of generated clips."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from avcli.cli.common import console, print_json, stdout, warn
from avcli.errors import UsageError

HELP = (
    "Score every video file in GENERATED_DIR (mp4 mov mkv webm avi m4v mpg mpeg; audio from the file's own track, or a same-stem .wav): AV-Align (seed000, official, "
    "legacy variants), AA-Align, beat hit rate (+-100/500 ms), onset accuracy vs ground-truth events, Fréchet "
    "distances on offline features (FD-logmel, FD-colourflow; not FAD/FVD), caption adherence, and seed 002's "
    "RelSync / AlignSync.\n\n"
    "Writes a per-file CSV and prints mean/std/n per metric.\n\n"
    "Examples:\n\n"
    "  avgen eval out/ --variant all\n\n"
    "  avgen eval out/ --reference data/test --truth data/test/events.jsonl --csv scores.csv\n\n"
    "  avgen eval out/ --metrics av_align,onsets --truth events.jsonl --json\n\n"
    "  avgen eval animated/ --reference real/ --metrics relsync,alignsync --fit-sync train/ --sync-model sync.safetensors"
)


def register(app: typer.Typer) -> None:
    app.command("eval", short_help="Alignment and quality metrics for generated clips.", help=HELP)(eval_cmd)


def _parse_metrics(text: str | None, has_ref: bool, has_truth: bool, has_model: bool,
                   has_sync: bool = False) -> tuple[str, ...]:
    from avcli.metrics.evaluate import METRICS

    if text is None:  # everything the given inputs allow
        auto = ["av_align"] + (["aa_align", "beats", "fd"] if has_ref else []) + (["onsets"] if has_truth else [])
        return tuple(auto + (["adherence"] if has_model else []) + (["relsync"] if has_sync and has_ref else []))
    # (alignsync is asked for by name: it needs the sync model's image-audio part)
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise UsageError(f"--metrics: unknown metric {bad[0] if bad else text!r}; choose from {','.join(METRICS)}")
    return names


def _parse_variants(text: str) -> tuple[str, ...]:
    from avcli.metrics.av_align import VARIANTS

    if text == "all":
        return VARIANTS
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise UsageError(f"--variant: unknown AV-Align variant {bad[0] if bad else text!r}; "
                         f"choose from {'|'.join(VARIANTS)}|all")
    return names


def _write_csv(path: Path, result) -> None:
    cols = result.columns()
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: folder for --csv does not exist")
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="")
        w.writeheader()
        for r in result.rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    tmp.replace(path)


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def eval_cmd(
    generated_dir: Path = typer.Argument(..., help="Folder with the generated video files (.mp4 and the other containers foley reads)."),
    reference: Path = typer.Option(None, "--reference", "-r",
                                   help="Folder of real clips paired by file name (the same name, a same-stem .wav, or a same-stem video in any container)."),
    truth: Path = typer.Option(None, "--truth",
                               help="events.jsonl: one JSON object per line with file and events (seconds)."),
    metrics: str = typer.Option(None, "--metrics",
                                help="Comma list of av_align,aa_align,beats,onsets,fd,adherence,relsync,alignsync, "
                                     "and for the synthetic hits domain contact (sound onsets vs contacts seen in "
                                     "the frames) and floor (noise floor before the first impact) "
                                     "[default: all the given inputs allow, hits-only ones left out]."),
    variant: str = typer.Option("seed000", "--variant", help="AV-Align variant: seed000|official|legacy|all."),
    fps: float = typer.Option(8.0, "--fps", min=0.1, help="Frame rate the video is resampled to for flow peaks."),
    tolerance_ms: float = typer.Option(50.0, "--onset-tolerance-ms", min=0.1,
                                       help="Matching tolerance for onset accuracy."),
    resolution_aware: bool = typer.Option(False, "--resolution-aware",
                                          help="Scale the flow-peak threshold by frame width / 256."),
    csv_path: Path = typer.Option(None, "--csv", help="Per-file CSV [default: GENERATED_DIR/eval_metrics.csv]."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON (rows, summary, set metrics) on stdout."),
    adherence_model: Path = typer.Option(None, "--adherence-model",
                                         help="Adherence classifiers (.safetensors); needs captions.jsonl."),
    fit_adherence: Path = typer.Option(None, "--fit-adherence",
                                       help="First train the adherence classifiers on this labelled folder "
                                            "(events.jsonl with colour/material attrs, e.g. from avgen data synth) "
                                            "and save them to --adherence-model."),
    sync_model: Path = typer.Option(None, "--sync-model", help="Sync classifier (.safetensors) for RelSync "
                                    "(seed 002): generated videos against the --reference videos of the same audio."),
    fit_sync: Path = typer.Option(None, "--fit-sync", help="First train the sync classifier on this folder of real "
                                  "clips (shifted pairs of the same clip) and, for AlignSync, an image-audio "
                                  "contrastive model (the stand-in for ImageBind); both go to --sync-model."),
    sync_steps: int = typer.Option(1500, "--sync-steps", min=1, help="Training steps for --fit-sync."),
    align_steps: int = typer.Option(600, "--align-steps", min=0, help="Training steps of the image-audio model "
                                    "for --fit-sync (0: none, no AlignSync)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing per-file CSV, and an existing "
                                   "--adherence-model or --sync-model file when fitting."),
) -> None:
    from avcli.metrics.evaluate import EvalConfig, evaluate_folder, list_clips

    list_clips(generated_dir)  # fail fast, before heavy imports
    if fit_adherence is not None and adherence_model is None:
        raise UsageError("--fit-adherence needs --adherence-model FILE (where the classifiers are saved)")
    if fit_sync is not None and sync_model is None:
        raise UsageError("--fit-sync needs --sync-model FILE (where the classifier is saved)")
    if fit_sync is not None and sync_model.exists() and not overwrite:
        raise UsageError(f"{sync_model}: already exists (use --overwrite to replace it)")
    names = _parse_metrics(metrics, reference is not None, truth is not None, adherence_model is not None,
                           sync_model is not None)
    if "alignsync" in names and fit_sync is not None and align_steps == 0:
        raise UsageError("metric alignsync needs the image-audio model: --align-steps must be > 0 with --fit-sync")
    out = csv_path or Path(generated_dir) / "eval_metrics.csv"
    if out.exists() and not overwrite:  # before any fitting or scoring
        raise UsageError(f"{out}: already exists (use --overwrite to replace it, or --csv another file)")
    model = None
    if fit_adherence is not None:
        from avcli.metrics.adherence import fit_from_folder

        if not adherence_model.parent.is_dir():
            raise UsageError(f"{adherence_model.parent}: folder for --adherence-model does not exist")
        if adherence_model.exists() and not overwrite:  # before the minutes of fitting
            raise UsageError(f"{adherence_model}: already exists (use --overwrite to replace it)")
        with console.status("training adherence classifiers") as status:
            model = fit_from_folder(fit_adherence, fps, on_file=lambda n: status.update(f"features of {n}"))
        model.save(adherence_model, overwrite=overwrite)
        console.print(f"adherence classifiers: {escape(str(adherence_model))}")
    elif adherence_model is not None:
        from avcli.metrics.adherence import AdherenceModel

        model = AdherenceModel.load(adherence_model)
    sync = None
    if fit_sync is not None:
        from avcli.metrics.sync import fit_from_folder as fit_sync_folder

        with console.status("training the sync classifier") as status:
            sync, sync_report = fit_sync_folder(fit_sync, steps=sync_steps, align_steps=align_steps,
                                                on_file=lambda n: status.update(f"features of {n}"))
        sync.save(sync_model, overwrite=overwrite)
        console.print(f"sync classifier: {escape(str(sync_model))}; held-out shift accuracy "
                      f"{sync_report['accuracy']:.2f} (chance {sync_report['chance']:.2f}, "
                      f"{sync_report['clips']} clips)")
        if "align" in sync_report:
            al = sync_report["align"]
            console.print(f"image-audio model: held-out audio -> image top-1 {al['accuracy']:.2f} "
                          f"(chance {al['chance']:.2f}, {al['clips']} clips)")
    elif sync_model is not None:
        from avcli.metrics.sync import SyncClassifier

        sync = SyncClassifier.load(sync_model)
    cfg = EvalConfig(metrics=names, variants=_parse_variants(variant), fps=fps,
                     onset_tolerance=tolerance_ms / 1000.0, resolution_aware=resolution_aware)
    with console.status("evaluating") as status:
        result = evaluate_folder(generated_dir, cfg, reference=reference, truth=truth, adherence_model=model,
                                 on_file=lambda n: status.update(f"evaluating {n}"), sync_model=sync)
    _write_csv(out, result)
    for w in result.warnings:
        warn(w)
    summary = result.summary()
    if json_out:
        print_json({"files": result.rows, "summary": summary, "set_metrics": result.set_metrics,
                    "csv": str(out), "warnings": result.warnings})
        return
    t = Table(title=f"avgen eval: {len(result.rows)} clips in {escape(str(generated_dir))}")
    for c in ("metric", "mean", "std", "n"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for k, s in summary.items():
        t.add_row(k, _fmt(s["mean"]), _fmt(s["std"]), str(s["n"]))
    for k, s in result.set_metrics.items():
        t.add_row(k, _fmt(s["value"]), "", str(s["n"]))
    stdout.print(t)
    console.print(f"per-file scores: {escape(str(out))}")
