"""`avgen info`: versions, usable backends and devices, and the default bundle."""

from __future__ import annotations

import importlib.metadata as md
import platform

import typer
from rich.table import Table

from avcli import __version__
from avcli.cli.common import print_json, stdout


def register(app: typer.Typer) -> None:
    app.command("info", short_help="Versions, backends, default bundle.", help="Show versions, usable backends/devices and the default bundle.\n\n"
                             "Example:\n\n  avgen info --json")(info_cmd)


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _backends() -> dict[str, tuple[bool, str]]:
    try:
        from engines.registry import available_backends
    except ModuleNotFoundError:
        return {"torch": (True, "eager PyTorch")}
    return available_backends()


def _bundle() -> dict:
    from avcli.errors import BundleError
    from avcli.models.bundle import read_manifest, resolve_bundle

    try:
        path = resolve_bundle(None)
        m = read_manifest(path)
    except BundleError as exc:
        return {"path": None, "error": str(exc)}
    size = sum(f.stat().st_size for f in path.iterdir())
    media = m["media"]
    return {"path": str(path), "name": m["name"], "bytes": size, "fps": media["fps"],
            "frame_size": media["frame_size"], "duration": media["duration"], "sample_rate": media["sample_rate"],
            "mode": m["joint"]["mode"], "gamma": m["sampling"]["gamma"]}


def info_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    import torch

    versions = {d: _version(d) for d in ("torch", "diffusers", "transformers", "onnx", "onnxruntime",
                                         "onnxruntime-gpu", "tensorrt", "numpy")}
    devices = ["cpu"] + [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    backends = {k: {"usable": ok, "reason": why} for k, (ok, why) in _backends().items()}
    info = {"avgen": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(), "versions": versions, "devices": devices,
            "backends": backends, "default_bundle": _bundle()}
    if json_out:
        print_json(info)
        return
    t = Table(title=f"avgen {__version__}", show_header=False)
    t.add_row("python", info["python"])
    t.add_row("platform", info["platform"])
    t.add_row("devices", ", ".join(devices))
    for k, v in versions.items():
        t.add_row(k, v)
    stdout.print(t)
    b = Table(title="backends")
    b.add_column("backend")
    b.add_column("usable")
    b.add_column("why")
    for k, v in backends.items():
        b.add_row(k, "yes" if v["usable"] else "no", v["reason"])
    stdout.print(b)
    bd = info["default_bundle"]
    stdout.print(f"default bundle: {bd.get('path') or bd.get('error')}")
