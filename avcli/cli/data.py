"""`avgen data ...`: make the synthetic "hits" data set (the folder format training reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from avcli.cli.common import human_duration, human_size, stdout

data_app = typer.Typer(help="Data sets: synthesize the 'hits' sounding-video domain.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data", short_help="Make training/evaluation data.")


@data_app.command("synth", help="Synthesize N clips of objects striking surfaces (mp4 H.264 + AAC) with "
                                "captions.jsonl and events.jsonl (true impact times). Resumable: existing clips are "
                                "kept.\n\nExamples:\n\n  avgen data synth --n 400 -o data/hits\n\n"
                                "  avgen data synth --n 100 -o data/hits-test --seed 1\n\n"
                                "  avgen data synth --n 800 -o data/hits --impact-fps 8 --motion-blur 0.5   "
                                "(contacts on the 8 fps grid a demo model sees)")
def synth_cmd(
    n: int = typer.Option(..., "--n", min=1, help="Number of clips."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder to write."),
    seed: int = typer.Option(0, help="Data seed (clip i uses a seed derived from it)."),
    duration: float = typer.Option(4.0, min=0.5, max=60, help="Seconds per clip."),
    fps: float = typer.Option(16, min=1, max=60, help="Frames per second."),
    size: int = typer.Option(128, min=16, max=1024, help="Frame width and height in pixels."),
    sample_rate: int = typer.Option(16000, "--sample-rate", min=8000, max=48000, help="Audio sample rate."),
    impact_fps: Optional[float] = typer.Option(None, "--impact-fps", min=1, max=60,
                                               help="Frame grid the impacts lie on (default: --fps); a rate that "
                                                    "divides --fps keeps every contact visible at both rates."),
    motion_blur: float = typer.Option(0.0, "--motion-blur", min=0.0, max=1.0,
                                      help="Shutter as a fraction of the frame interval (0: sharp; 0.5: 180 deg)."),
    jitter: bool = typer.Option(True, "--jitter/--no-jitter", help="Small camera wobble on every frame."),
) -> None:
    from avcli.data.synth import write_dataset

    names = write_dataset(output, n, seed, duration=duration, fps=fps, size=(size, size), sample_rate=sample_rate,
                          impact_fps=impact_fps, motion_blur=motion_blur, jitter=jitter)
    total = sum((output / f).stat().st_size for f in names)
    t = Table(title="avgen data synth")
    for c in ("folder", "clips", "total duration", "size on disk"):
        t.add_column(c)
    seconds = len(names) * round(duration * fps) / fps
    t.add_row(escape(str(output)), str(len(names)), human_duration(seconds), human_size(total))
    stdout.print(t)


@data_app.command("weight", help="Up- or down-weight files of a data folder for `avgen train joint`, `unet-video` and "
                                 "`unet-audio`: each video file gets the weight of the first --match whose regex "
                                 "matches its caption as whole words "
                                 "(case-insensitive), the others weight 1. Training then draws a file's windows in "
                                 "proportion to its weight. Rewrites DIR/captions.jsonl in place (atomically; only "
                                 "the \"weight\" fields change); --dry-run only counts.\n\nExamples:\n\n"
                                 "  avgen data weight data/hits --match 'metal|metallic|steel=3' --dry-run\n\n"
                                 "  avgen data weight clips/ --match 'gong|cymbal=4' --match 'speech=0.5'\n\n"
                                 "  avgen data weight clips/   (no --match: every weight back to 1)")
def weight_cmd(
    folder: Path = typer.Argument(..., help="Data folder (video files + captions.jsonl)."),
    match: list[str] = typer.Option([], "--match", help="REGEX=WEIGHT; repeatable, the first match wins."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count the files each rule matches; write nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print the counts as JSON."),
) -> None:
    from avcli.cli.common import print_json
    from avcli.data.folder import parse_weight_rule, set_weights

    rules = [parse_weight_rule(m) for m in match]
    counts = set_weights(folder, rules, dry_run=dry_run)
    if json_out:
        print_json({"folder": str(folder), "written": not dry_run, "rules": counts})
        return
    t = Table(title="avgen data weight" + (" (dry run: nothing written)" if dry_run else ""))
    for c in ("match", "weight", "files"):
        t.add_column(c)
    for r in counts:
        t.add_row(escape(r["match"]) if r["match"] is not None else "(no match)", f"{r['weight']:g}", str(r["files"]))
    stdout.print(t)
