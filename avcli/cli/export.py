"""`avgen export`: every network of a bundle as validated ONNX (optionally fp16), then TensorRT engines."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from avcli.cli.common import console, human_size, print_json, stdout
from avcli.errors import BackendUnavailable, UsageError

HELP = ("Export every network of a bundle to ONNX (validated against PyTorch at two dynamic shapes), optionally "
        "fp16, then build TensorRT engines. The output folder is self-contained (graphs, tokenizer, bundle.json): "
        "`--bundle OUT` runs it on ONNX Runtime or TensorRT without torch weights, diffusers or transformers."
        "\n\nExamples:\n\n  avgen export --out engines/ && avgen generate --bundle engines/ -p \"a red ball\"\n\n"
        "  avgen export --components video_unet,audio_unet --fp16 --trt")


def register(app: typer.Typer) -> None:
    app.command("export", short_help="Export networks to ONNX / TensorRT.", help=HELP)(export_cmd)


def parse_components(value: str | None) -> list[str]:
    from export.descriptions import COMPONENTS

    if not value:
        return list(COMPONENTS)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        raise UsageError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(COMPONENTS)}")
    return names


def _check_trt() -> None:
    from engines.registry import available_backends

    usable, reason = available_backends()["trt"]
    if not usable:
        raise BackendUnavailable(f"--trt: TensorRT is unavailable: {reason}")


def export_cmd(
    bundle: str = typer.Option(None, "--bundle", "-b", help="Bundle name or folder (default: $AVGEN_BUNDLE or "
                                                           "the embedded default)."),
    components: str = typer.Option(None, "--components", "-c", help="Comma-separated component names (default: all)."),
    onnx: bool = typer.Option(True, "--onnx/--no-onnx", help="Export ONNX (--no-onnx: reuse files in --out)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also fp16 (norms, softmax, timestep embedding stay fp32)."),
    trt: bool = typer.Option(False, "--trt", help="Build TensorRT engines (needs tensorrt and a CUDA GPU)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: the bundle's export cache)."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (>= 17)."),
    force: bool = typer.Option(False, "--force", help="Re-export and rebuild even when cached."),
    json_out: bool = typer.Option(False, "--json", help="Print the records as JSON on stdout."),
) -> None:
    names = parse_components(components)
    if opset < 17:
        raise UsageError(f"--opset must be >= 17, got {opset}")
    if trt:
        _check_trt()  # fail before minutes of ONNX export
    from avcli.manifest import is_engine_folder, resolve_bundle
    from avcli.models.bundle import load_bundle
    from avcli.pipelines.backends import default_export_dir, graph_names, write_engine_folder
    from export.onnx_export import export_all, onnx_path, read_manifest

    if is_engine_folder(resolve_bundle(bundle)):
        raise UsageError(f"{bundle}: is already an exported engine folder; export from the weights bundle")
    model = load_bundle(bundle)
    names = graph_names(model.manifest, names)  # a shared text encoder is one graph
    out = out or default_export_dir(model)
    out.mkdir(parents=True, exist_ok=True)
    extra = {"bundle": str(getattr(model, "bundle_path", "")), "bundle_name": model.manifest.get("name")}
    records = []
    if onnx:
        for precision in (["fp32", "fp16"] if fp16 else ["fp32"]):
            records += export_all(model, out, names, opset=opset, fp16=precision == "fp16", force=force, extra=extra,
                                  on_component=lambda n, p=precision: console.print(f"exporting {n} ({p})"))
    else:
        missing = [n for n in names if not onnx_path(out, n).exists()]
        if missing:
            raise UsageError(f"--no-onnx: {out} lacks {', '.join(m + '.onnx' for m in missing)}")
    if not records or all(str(r.status).startswith(("ok", "cached")) for r in records):
        write_engine_folder(model, out)
    rows = [_row(r.__dict__) for r in records] or [
        _row(v) for v in read_manifest(out).get("components", {}).values() if v["component"] in names]
    if trt:
        rows += _build_engines(model, names, out, fp16, force)
    if json_out:
        print_json({"out": str(out), "components": rows})
    else:
        _table(rows, out)
    failed = [r for r in rows if not str(r["status"]).startswith(("ok", "cached", "built"))]
    if failed:
        raise UsageError(f"{len(failed)} export(s) failed, first: {failed[0]['component']}: {failed[0]['status']}")


def _row(rec: dict) -> dict:
    return {"component": rec["component"], "file": rec["file"], "size": rec.get("size", 0),
            "precision": rec.get("precision", "fp32"), "export_s": rec.get("export_seconds", 0.0),
            "max_err": rec.get("max_error", float("nan")), "status": rec.get("status", "")}


def _build_engines(model, names, out: Path, fp16: bool, force: bool) -> list[dict]:
    from export.descriptions import descriptions
    from export.onnx_export import onnx_path
    from export.trt_build import TrtBuildError, TrtUnavailable, build_engine

    descs, rows = descriptions(model.manifest), []
    for n in names:
        console.print(f"building TensorRT engine {n}")
        try:
            # fp16: strongly typed from the fp16 graph (norms/softmax kept fp32 there)
            res = build_engine(onnx_path(out, n, "fp16" if fp16 else "fp32"), n, descs[n].profile(model.manifest),
                               out / "trt", fp16=fp16, force=force)
        except TrtUnavailable as exc:
            raise BackendUnavailable(f"--trt: {exc}") from None
        except TrtBuildError as exc:
            rows.append({"component": n, "file": "", "size": 0, "precision": "trt", "export_s": 0.0,
                         "max_err": float("nan"), "status": f"failed: {exc}"})
            continue
        rows.append({"component": n, "file": f"trt/{res.plan.name}", "size": res.plan.stat().st_size,
                     "precision": "trt-fp16" if fp16 else "trt-fp32", "export_s": round(res.seconds, 2),
                     "max_err": float("nan"), "status": "built" if res.built else "cached"})
    return rows


def _fmt_err(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"


def _table(rows: list[dict], out: Path) -> None:
    table = Table(title=f"export -> {escape(str(out))}")
    for col, just in (("component", "left"), ("file", "left"), ("size", "right"), ("export s", "right"),
                      ("max err", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        style = "" if str(r["status"]).startswith(("ok", "cached", "built")) else "red"
        label = r["component"] if r["precision"] == "fp32" else f"{r['component']} ({r['precision']})"
        table.add_row(label, escape(r["file"]), human_size(r["size"]), f"{r['export_s']:.1f}", _fmt_err(r["max_err"]),
                      str(r["status"]), style=style)
    stdout.print(table)
