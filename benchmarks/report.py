"""Render benchmark results into README.md: the performance, quality and ablation sections.

Each section lies between markers `<!-- NAME:begin -->` and `<!-- NAME:end -->` in the README and is rewritten
from the JSON files in benchmarks/results/ (nothing is typed by hand, so the README says what was measured):

    perf      benchmarks/results/<machine>.json   (benchmarks/run_benchmarks.py)
    quality   benchmarks/results/quality.json     (benchmarks/quality.py)
    ablation  benchmarks/results/ablation.json    (benchmarks/ablation.py)
    training  avcli/bundles/hits-demo/bundle.json  (the shipped bundle's training record)
    fastpath  benchmarks/results/fast_path.json   (benchmarks/fast_path.py)
    vocoder   benchmarks/results/vocoder_resynthesis.json (benchmarks/vocoder_resynthesis.py)
    noisefill benchmarks/results/noise_fill_generated.json (benchmarks/noise_fill_generated.py)
    animatesync benchmarks/results/animate_sync.json (benchmarks/animate_sync.py)
    raybatch  benchmarks/results/ray_batch.json    (benchmarks/ray_batch.py)
    v2compare benchmarks/results/quality_v2_shipped.json + quality_v2.json (benchmarks/quality.py, same clips)
    shipcheck benchmarks/results/quality_ship_*.json (benchmarks/quality.py: the shipped bundle against its parent)
    levers    benchmarks/results/levers_v2.json    (benchmarks/levers.py)
    stepsweep benchmarks/results/steps_sweep.json  (benchmarks/steps_sweep.py)
    orttuning benchmarks/results/ort_tuning.json   (benchmarks/ort_tuning.py)
    guidancesweep benchmarks/results/guidance_sweep.json (benchmarks/guidance_sweep.py)
    guidanceconfirm benchmarks/results/quality.json + quality_cfg_audio*.json (quality.py --cfg-audio, held out)
    leversreflected benchmarks/results/levers_reflected.json (benchmarks/levers.py, today's onset detector)
    unfreezeship benchmarks/results/quality_2026-12-05.json + quality_2026-12-06.json (before and after
              --unfreeze-audio)
    unfreezevideo / unfreezevideogen  quality_2026-12-06.json + quality_unfreeze_video*.json (--unfreeze-video)
    cfgaudioua benchmarks/results/quality_2026-12-06.json + quality_heldout_ua_a5i41.json (--cfg-audio 5)
    shipboth / shipbothgen  quality_2026-12-06.json + quality_unfreeze_audio1200.json + quality_unet_video3000.json
              + quality_2026-12-06b.json (the two legs of the bundle shipped later on 2026-12-06, alone and
              together) + quality_ship_then_joint400.json (a joint leg after them)
    sideship / sidegen  quality_2026-12-06b.json + quality_2026-12-06c.json + quality_ship_*.json (joint legs on the audio
              side only, ninth session)
    weightgen     quality_2026-12-06c.json + quality_ship_audio_side400x2.json + quality_ship_metal_weight{3,5}.json (metal
              clips weighted up in an audio-side joint leg, tenth session)
    vgintervalval / vgintervalheldout  quality_val_vg*.json / quality_heldout_vg*.json (generate's guidance over
              the picture on part of the steps, tenth session)
    vdgen     quality.json + quality_ship_audio_side400x2_vgi08.json + quality_ship_video_dropout02_vgi08.json
              + quality_ship_unet_audio600_metal3_vgi08.json (legs measured with the tenth session's default)
    colourgen quality_heldout_vgi08.json + quality_heldout_picture_without_sound.json + quality_heldout_cfg_video_rescale07.json
              + quality_heldout_unet_video1500_fg{0,8}.json (colour tries, eleventh session)
    agval / agheldout  quality_val_vgi08.json + quality_val_ag*.json / quality_heldout_vgi08.json +
              quality_heldout_ag*.json (seed 002's audio guidance on the picture lowered, eleventh session)
    adherenceconfusion benchmarks/results/adherence_confusion.json (benchmarks/adherence_confusion.py)
    colourframes benchmarks/results/colour_frames.json (benchmarks/colour_frames.py: colour per clip and per frame)
    colourframesvae benchmarks/results/colour_frames_vae_whole.json (the same with the video VAE fine-tuned whole)
    colourgen12 quality_heldout_vgi08.json + quality_heldout_picture_without_sound.json
              + quality_heldout_wide_video_unet_64_96_6000.json + quality_heldout_unet_video1500_fg0.json
              + quality_heldout_vae_video_whole2500*.json (colour tries, twelfth session)
    spacingval2 / spacingheldout / spacingship  quality_val2_*trailing.json, quality_heldout_*trailing.json,
              quality_2026-12-07.json + quality.json; pairedspacingval2 / pairedspacingheldout
              paired_{val2,heldout}_trailing.json (trailing timestep spacing, fifteenth session)
    leversmaterial benchmarks/results/levers_material.json (benchmarks/levers.py --adherence-model: foley's material)
    table1v2  benchmarks/results/table1_v2.json    (benchmarks/gamma_sweep.py --xattn: seed 000's Table 1 on v2)

    .venv/bin/python benchmarks/report.py [--machine NAME] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _f(x, spec=".1f", none="-") -> str:
    return none if x is None else format(x, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def perf_section(res: dict, png: Path | None) -> str:
    info = res.get("machine_info") or {}
    ver = info.get("versions", {})
    lines = [f"Measured on `{res['machine']}`: {info.get('cpu', '?')}, {info.get('cpu_count', '?')} logical CPUs, "
             f"{res.get('threads') or info.get('torch_threads', '?')} threads; torch {ver.get('torch')}, "
             f"onnxruntime {ver.get('onnxruntime')}; matmul peak {_f(res.get('matmul_peak_gflops'))} GFLOP/s. "
             f"Produced by `{res.get('command', 'python benchmarks/run_benchmarks.py')}`, rendered by "
             f"`python benchmarks/report.py`; raw numbers in `benchmarks/results/{res['machine']}.json`.", ""]
    tasks = res.get("tasks") or {}
    if tasks:
        rows = []
        gen = {b: r["step"]["ms_per_step"] for b, r in tasks.get("generate", {}).items() if "step" in r}
        for task, per in tasks.items():
            for b, r in per.items():
                if "error" in r:
                    rows.append([task, b, "error: " + r["error"][:60], "", "", "", "", ""])
                    continue
                st, e2e = r["step"], r.get("e2e")
                vs_gen = st["ms_per_step"] / gen[b] if task != "generate" and gen.get(b) else None
                t_ms = per.get("torch", {}).get("step", {}).get("ms_per_step")
                rows.append([task, b, _f(st["ms_per_step"]), _f(t_ms and t_ms / st["ms_per_step"], ".2f") + "x",
                             _f(vs_gen, ".2f"), f"{st['sampler_overhead_pct']:.2f} %",
                             _f(e2e and e2e["total_s"], ".2f"), _f(r.get("peak_rss_mb"), ".0f")])
        steps = next((r["config"]["steps"] for per in tasks.values() for r in per.values() if "config" in r), "?")
        lines += [f"**Joint sampling step** (ms per step, mean of {steps} steps after a warm-up run; CFG batched; "
                  "end to end = one whole clip at the bundle's default steps, model load and text included):", "",
                  _table(["task", "backend", "ms / step", "vs torch", "step vs generate", "sampler overhead",
                          "end to end (s)", "peak RSS (MB)"], rows), ""]
        g = tasks.get("generate", {})
        if g and all("components" in r for r in g.values()):
            bks = list(g)
            names = list(next(iter(g.values()))["components"])
            flops = next(iter(g.values())).get("flops", {})
            rows = []
            for n in names:
                row = [n, _f(flops.get(n) and flops[n] / 1e9, ".2f")]
                for b in bks:
                    c = g[b]["components"][n]
                    row += [_f(c["p50_ms"]), _f(c.get("utilisation_pct"), ".0f") + " %"]
                if "torch" in g:  # each backend ran in its own process: the ratio is taken here
                    t0 = g["torch"]["components"][n]["p50_ms"]
                    row += [_f(t0 / g[b]["components"][n]["p50_ms"], ".2f") + "x" for b in bks if b != "torch"]
                rows.append(row)
            head = ["component", "GFLOP"]
            for b in bks:
                head += [f"{b} p50 ms", f"{b} util"]
            head += [f"{b} vs torch" for b in bks if b != "torch" and "torch" in g]
            lines += ["**Per component** (generate, one call as the sampler makes it, CFG batch 2 for the U-Nets; "
                      "utilisation = achieved GFLOP/s over the matmul peak):", "", _table(head, rows), ""]
            stages = list(dict.fromkeys(k for r in g.values() if r.get("e2e") for k in r["e2e"]["stages_s"]))
            if stages:
                rows = [[b] + [_f(r["e2e"]["stages_s"].get(k), ".2f") for k in stages] + [_f(r["e2e"]["total_s"], ".2f")]
                        for b, r in g.items() if r.get("e2e")]
                lines += ["**End to end, generate, seconds per stage** (`load` includes building ONNX Runtime "
                          "sessions; a first ort run also exports the ONNX files once per bundle):", "",
                          _table(["backend", *stages, "total"], rows), ""]
    cli = res.get("cli") or {}
    if any(cli.get(k) for k in ("generate_default_s", "foley_4s_s", "foley_20s_s")):
        ratio = cli.get("foley_20s_over_4s")
        lines += [f"**Whole commands, wall clock** (fresh process each, torch backend, imports and model load included, "
                  f"best of {cli.get('repeat', 1)}; targets: generate <= 15 s, foley 4 s <= 8 s, 20 s <= 5x the 4 s "
                  "time):", "",
                  _table(["`avgen generate` (defaults)", "`avgen foley` 4 s clip", "`avgen foley` 20 s clip",
                          "20 s / 4 s"],
                         [[_f(cli.get("generate_default_s"), ".2f") + " s", _f(cli.get("foley_4s_s"), ".2f") + " s",
                           _f(cli.get("foley_20s_s"), ".2f") + " s", _f(ratio, ".2f") + "x"]]), ""]
    series = res.get("series") or {}
    if series:
        durs = res.get("durations") or []
        rows = []
        for b, pts in series.items():
            by = {p["duration"]: p for p in pts}
            rows.append([b] + [_f(by.get(d, {}).get("ms_per_step")) for d in durs]
                        + [_f(res["fits"][b]["k"], ".2f")])
        lines += [f"**Cost vs clip length** (ms per joint generate step; {res.get('sweep_preset')} architecture with "
                  "random weights, so it reaches 16 s; k = fitted exponent of cost ~ duration^k, 1.0 = linear):", "",
                  _table(["backend", *[f"{d:g} s" for d in durs], "k"], rows), ""]
        if png and png.exists():
            lines += [f"![latency and memory vs duration](benchmarks/results/{png.name})", ""]
    return "\n".join(lines).rstrip() + "\n"


def detector_note(*results: dict) -> str:
    """A line for tables whose onset scores predate `avcli.metrics.impact_onsets` (their JSON has no
    "onset_detector"): the zero-padded detector's edge onset costs every row precision, the real clips included."""
    if all(r.get("onset_detector") for r in results):
        return ""
    line = ("\nOnset scores here: seed 000's zero-padded detector (before 2026-12-02), with a false onset near 70 ms "
            "in nearly every clip")
    od = RESULTS / "onset_detector.json"
    if od.exists():
        real = json.loads(od.read_text())["sets"]["real"]
        old, new = real["zero_padded (seed 000)"]["f1"], real["reflected (impact_onsets)"]["f1"]
        line += f" (real clips: onset F1 {old:.3f} with it, {new:.3f} with today's)"
    return line + "; compare rows within the table.\n"


def quality_section(q: dict) -> str:
    al = lambda k: q.get(f"av_align_{k}", {})  # noqa: E731
    adh = lambda k, m: _f(q.get(f"adherence_{k}", {}).get(m), ".0%")  # noqa: E731
    contact = lambda k: _f((q.get(f"contact_{k}") or {}).get("f1"), ".3f")  # noqa: E731
    floor = lambda k: _f(q.get(f"noise_floor_db_{k}"), ".1f") + " / " + _f(q.get(f"buzz_{k}"), ".3f")  # noqa: E731
    rows = [["real held-out clips", _f(al("real").get("seed000"), ".3f"), _f(al("real").get("official"), ".3f"),
             adh("real", "colour"), adh("real", "material"), _f(q.get("onsets_real", {}).get("f1"), ".3f"),
             contact("real"), floor("real")],
            ["`avgen generate` (text only)", _f(al("generate").get("seed000"), ".3f"),
             _f(al("generate").get("official"), ".3f"), adh("generate", "colour"), adh("generate", "material"), "-",
             contact("generate"), floor("generate")],
            ["`avgen foley` (held-out videos)", _f(al("foley").get("seed000"), ".3f"),
             _f(al("foley").get("official"), ".3f"), "-", "-", _f(q.get("onsets_foley", {}).get("f1"), ".3f"), "-",
             floor("foley")]]
    text = [f"{q['n']} held-out captions/videos of the synthetic domain (never seen in training), default settings "
            f"of each command. Produced by `{q.get('command', 'python benchmarks/quality.py')}`.", "",
            _table(["clips", "AV-Align (seed 000)", "AV-Align (official)", "colour adherence", "material adherence",
                    "onset F1 vs true impacts", "onsets vs contacts seen in frames",
                    "noise floor (dBFS) / buzz"], rows), ""]
    ratios = []
    if al("real").get("seed000"):
        ratios.append(f"generated AV-Align {al('generate').get('seed000', 0) / al('real')['seed000']:.2f}x that of "
                      f"real clips")
    cr, cg = (q.get("contact_real") or {}).get("f1"), (q.get("contact_generate") or {}).get("f1")
    if cr and cg is not None:
        ratios.append(f"generated sound on the contacts seen in its own frames {cg / cr:.2f}x real clips")
    if ratios:
        text.append("Ratios (targets >= 0.7x): " + "; ".join(ratios) + ".")
    return "\n".join(text).rstrip() + "\n" + detector_note(q)


def onset_detector_section(d: dict) -> str:
    """benchmarks/onset_detector.py: the same clips scored with seed 000's zero-padded detector and with today's."""
    rows = [[label, det, _f(sc["precision"], ".3f"), _f(sc["recall"], ".3f"), _f(sc["f1"], ".3f"),
             f"{sc['edge']} / {d['n']}"] for label, dets in d["sets"].items() for det, sc in dets.items()]
    return "\n".join([f"{d['n']} held-out clips, onsets against the true impacts (+-{1000 * d['tolerance_s']:.0f} ms). "
                      f"Produced by `{d['command']}`.", "",
                      _table(["clips", "detector", "precision", "recall", "onset F1",
                              f"clips with an unmatched onset before {d['edge_s']:g} s"], rows)]) + "\n"


def ablation_section(a: dict) -> str:
    rows = []
    for r in a["settings"]:
        rows.append([r["mode"], f"{r['gamma']:g}", _f(r["av_align_seed000"], ".3f"), _f(r["av_align_official"], ".3f"),
                     _f(r["fd_logmel"], ".2f"), _f(r["fd_colourflow"], ".2f"), _f(r.get("foley_onset_f1"), ".3f"),
                     _f(r.get("foley_av_align_seed000"), ".3f")])
    real = a["real_test_clips"]
    rows.append(["real test clips", "-", _f(real["av_align_seed000"], ".3f"), _f(real["av_align_official"], ".3f"),
                 "0", "0", "-", "-"])
    first = a["settings"][0]
    return (f"{a['n_captions']} held-out captions per setting, same seeds in every row, {first['solver']} with "
            f"{first['steps']} steps. Produced by `{a.get('command', 'python benchmarks/ablation.py')}`.\n\n"
            + _table(["connector", "gamma", "AV-Align (seed 000)", "AV-Align (official)", "FD-logmel",
                      "FD-colourflow", "foley onset F1", "foley AV-Align"], rows) + "\n" + detector_note(a))


def training_section(manifest: dict) -> str:
    """How the shipped bundle was trained: its manifest's training record, stage by stage, as run."""
    rows, total = [], 0.0
    for r in manifest.get("training", []):
        secs = r.get("seconds") or 0.0
        total += secs
        keys = ("foreground_boost", "mixed_precision", "known_p", "high_noise_weight", "audio_dropout", "cfg_dropout",
                "heldout_f1", "heldout_f1_other_clip")
        extra = ", ".join([f"{k} {_f(r[k], '.3g') if isinstance(r[k], float) else r[k]}" for k in keys
                           if r.get(k) is not None] + [f"{m} base U-Net fine-tuned" for m in ("video", "audio")
                                                       if r.get(f"unfreeze_{m}")]
                          + ([f"{r['train_side']} side only"] if r.get("train_side", "both") != "both" else []))
        rows.append([r["stage"], str(r.get("steps_run", "")) + f" (to {r.get('step', r.get('steps'))})",
                     str(r.get("batch", "")), f"{r.get('lr', 0):g}", str(r.get("clips", "")),
                     f"{secs / 60:.1f}", _f(r.get("final_loss"), ".4f"), extra])
    return ("The shipped `hits-demo` bundle, as recorded in its `bundle.json` (`training`), oldest first, on this "
            "2-core CPU machine: the stages of `bash scripts/train_demo.sh` and `scripts/train_demo_v2.sh`, then the "
            "legs run by hand since 2026-12-05 (their commands are in \"Quality of the demo bundle\"). The base "
            "stages ran with one torch thread per process, two processes side by side (so wall minutes overlap), "
            "the onset and joint stages alone on two threads, except the legs of 2026-12-06, each at one thread "
            "beside another leg (the records do not store threads). A line whose steps run are fewer than its "
            "\"to\" count resumed a checkpoint under a longer schedule; any other further line for a stage is "
            f"another leg trained on top. Sum of stage wall times: {total / 3600:.1f} h.\n\n"
            + _table(["stage", "steps run", "batch", "lr", "clips", "wall (min)", "final loss", "notes"], rows)
            + "\n")


def fastpath_section(f: dict) -> str:
    """Whole commands in fresh processes (benchmarks/fast_path.py), against the targets of issue 14."""
    e, t, b = f["generate_engine_ort"]["median"], f["generate_torch"]["median"], f["batch"]
    m = f.get("machine", {})
    lines = [f"Measured on {m.get('cpu', '?')}, {m.get('cpu_count', '?')} logical CPUs; produced by "
             f"`{f['command']}` (`benchmarks/results/fast_path.json`), median of {f['repeat']} fresh processes "
             f"each, interleaved.", ""]
    stages = [k for k in ("import", "load", "text", "denoise", "decode", "vocode", "mux") if k in e]
    runs = [("engine folder, ort (`--bundle DIR`)", e)]
    if "generate_engine_ort_untuned" in f:
        runs.append(("engine folder, ort, untuned (plain graphs, one U-Net at a time)",
                     f["generate_engine_ort_untuned"]["median"]))
    runs.append(("weights bundle, torch", t))
    rows = [[name, *[_f(r.get(k), ".2f") for k in stages], _f(r["import_plus_load_s"], ".2f"),
             _f(r.get("outside_stages_s"), ".2f"), _f(r["wall_s"], ".2f")] for name, r in runs]
    lines.append(_table(["`avgen generate` (defaults)", *stages, "import + load", "outside stages", "wall (s)"],
                        rows))
    lines += ["", "`import` runs from the command's start to the sampler's libraries loaded (torch); `outside stages` "
              "is the wall clock no stage holds: the interpreter's start, the CLI's own imports and the exit."]
    ps = f["per_step"]
    lines += ["", _table(["measure", "measured", "target"], [
        ["generate wall, engine-only ort", f"{e['wall_s']:.2f} s", "<= 5 s"],
        ["import + load, engine-only ort", f"{e['import_plus_load_s']:.2f} s", "<= 1.5 s"],
        [f"per clip in a {b['prompts']}-prompt batch / single command", f"{b['per_clip_vs_single_command']:.2f}x "
         f"({b['per_clip_s']:.2f} s per clip" + (f", best of --batch-size {', '.join(b['by_batch_size'])}: "
                                                 f"{b['best_batch_size']}" if "by_batch_size" in b else "") + ")",
         "<= 0.4x"],
        ["ORT vs torch per joint generate step", f"{ps['ort']['speedup_vs_torch']:.2f}x "
         f"({ps['ort']['ms_per_step']:.0f} vs {ps['torch']['ms_per_step']:.0f} ms)", ">= 1.5x"],
        ["ORT vs torch end to end (whole command)", f"{f['generate_e2e_ort_vs_torch']:.2f}x", ">= 1.3x"],
        *([["CPU tuning (attention fusion + concurrent U-Nets) vs untuned, denoise / wall",
            f"{f['generate_tuned_vs_untuned']['denoise']:.2f}x / {f['generate_tuned_vs_untuned']['wall_s']:.2f}x",
            "-"]] if "generate_tuned_vs_untuned" in f else []),
        ["video_unet under ORT, share of the matmul peak", f"{ps['ort']['video_unet_util_pct']:.0f} % "
         f"(peak {f['matmul_peak_gflops']:.0f} GFLOP/s)", ">= 60 %"]])]
    return "\n".join(lines) + "\n"


def gpu_section(g: dict) -> str:
    """benchmarks/gpu_check.py on a lent GPU: the torch CUDA path of the shipped bundle beside that machine's CPU."""
    env, rows = g["environment"], g["rows"]
    pk = g.get("matmul_peak_tflops", {})
    v = env["versions"]
    lines = [f"Measured on {env['gpu']} ({env['cpu_count']} CPU cores beside it), torch {v['torch']} with CUDA "
             f"{env['cuda']}, diffusers {v['diffusers']}, transformers {v['transformers']}; produced by "
             "`bash scripts/gpu_check.sh` (`benchmarks/results/gpu_h200.json`), warm, median of "
             f"{g['repeat']}. Matmul peak there (n = 4096): fp32 {pk.get('fp32', 0):.0f}, tf32 "
             f"{pk.get('tf32', 0):.0f}, fp16 {pk.get('fp16', 0):.0f} TFLOP/s. Text encoder: {env['text_encoder']}.",
             ""]
    names = {"torch-cuda-fp32": "torch, cuda, fp32", "torch-cuda-fp16": "torch, cuda, fp16 (autocast)",
             "torch-cpu-fp32": f"torch, that machine's CPU ({g['cpu_threads']} threads), fp32"}
    body = []
    for key, r in rows.items():
        s, u, c = r["ms_per_step"], r["video_unet"], r["clip"]
        body.append([names.get(key, key), _f(c["wall_s"], ".2f"), _f(c["stages_s"]["denoise"], ".2f"),
                     " / ".join(_f(s[t], ".1f") for t in ("generate", "foley", "animate")),
                     f"{u['p50_ms']:.1f} ({u['achieved_tflops'] * 1e3:.0f} GFLOP/s)"])
    lines.append(_table(["`generate` clip (defaults, 25 steps)", "wall (s)", "denoise (s)",
                         "ms / step: generate / foley / animate", "video_unet p50 ms (CFG batch 2)"], body))
    bt = [[names.get(k, k), *[f"{r['batch_s_per_clip'][b]:.3f} s ({r['batch_s_per_clip'][b] / r['clip']['wall_s']:.2f}x)"
                              for b in ("1", "4", "16")]] for k, r in rows.items() if "batch_s_per_clip" in r]
    lines += ["", f"A {16}-prompt batch through `generate_batch` (model loaded once), seconds per clip and the ratio to "
              "one warm clip:", "", _table(["", "--batch-size 1", "--batch-size 4", "--batch-size 16"], bt)]
    par = [[k.replace("torch-", ""), f"{p['video_latent']['max_abs']:.1e} / {p['video_latent']['rel_l2']:.1e}",
            f"{p['audio_latent']['max_abs']:.1e} / {p['audio_latent']['rel_l2']:.1e}", f"{p['frames_psnr_db']:.1f}"]
           for k, p in g["parity"].items()]
    lines += ["", "Same seed, same noise (drawn on the CPU), final latents and decoded frames:", "",
              _table(["pair", "video latent max / rel L2", "audio latent max / rel L2", "frames PSNR (dB)"], par)]
    return "\n".join(lines) + "\n"


def vocoder_section(v: dict) -> str:
    material = any(r.get("material_kept") is not None for r in v["summary"].values())
    rows = [[name, _f(r["mr_stft"], ".3f"), _f(r["mel_l1"], ".3f"), _f(r["onset_f1"], ".3f"), _f(r["floor_db"], ".1f"),
             _f(r.get("buzz"), ".3f")] + ([_f(r.get("material_kept"), ".0%")] if material else [])
            for name, r in v["summary"].items()]
    return (f"Real audio of {v['clips']} held-out clips -> a mel -> the vocoder, scored at "
            f"16 kHz against the original (noise floor: the stretch before the first impact, {v['floor_clips']} "
            f"clips). Produced by `{v['command']}`.\n\n"
            + _table(["path", "MR-STFT distance", "mel L1", "onset F1 vs true impacts", "noise floor (dBFS)",
                      "buzz"] + (["material kept"] if material else []), rows)
            + "\n" + detector_note(v))


def vocoder_generated_section(v: dict) -> str:
    rows = [[name, _f(r["onset_f1"], ".3f"), _f(r["onsets"], ".1f"), _f(r["floor_db"], ".1f"), _f(r["buzz"], ".3f"),
             _f(r["between_impacts_db"], ".1f"), _f(r["material"], ".0%")] for name, r in v["summary"].items()]
    return (f"The mels `avgen foley` and `avgen generate` hand their vocoder on {v['clips']} held-out clips (seed = "
            f"index, bundle defaults), each rendered by every vocoder below. Real clips' level between impacts: "
            f"{v['real_between_impacts_db']:.1f} dB. Produced by `{v['command']}`.\n\n"
            + _table(["rendering", "foley onset F1", "onsets / clip", "floor (dBFS)", "buzz",
                      "between impacts (dB under peak)", "generate material"], rows) + "\n")


def video_guidance_section(v: dict) -> str:
    rows = [[r["bundle"], "-" if r["video_guidance"] is None else f"{r['video_guidance']:g}",
             f"{_f(r['onset_f1'], '.3f')} ({_f(r['onset_precision'], '.2f')})", _f(r["onsets_per_clip"], ".1f"),
             _f(r["between_impacts_db"], ".1f"), _f(r["floor_db"], ".1f"), _f(r["buzz"], ".3f"),
             _f(r["seconds_per_clip"], ".2f")] for r in v["rows"]]
    return (f"`avgen foley --video-guidance ETA` on {v['n']} clips of `{v['clips']}` (seed = index, no prompt, "
            f"{v['threads']} threads, {v['date']}). Produced by `{v['command']}`.\n\n"
            + _table(["bundle", "video guidance", "onset F1 (precision)", "onsets / clip",
                      "between impacts (dB under peak)", "floor (dBFS)", "buzz", "s / clip"], rows) + "\n")


def noise_fill_section(v: dict) -> str:
    rows = [[name, _f(r["onset_f1"], ".3f"), _f(r["floor_db"], ".1f"), _f(r["buzz"], ".3f"), _f(r["buzz_median"], ".3f")]
            for name, r in v["summary"].items()]
    prompt = "each clip's caption as the prompt" if v.get("prompt") else "no prompt"
    return (f"`avgen foley` on {v['clips']} held-out clips ({v['bundle'].split('/')[-1]}, {prompt}, seed = index), each "
            f"soundtrack scored as the "
            f"vocoder rendered it and noise-filled from the same generated mel (floor and buzz: the stretch before the "
            f"first impact, {v['floor_clips']} clips). Produced by `{v['command']}`.\n\n"
            + _table(["soundtrack", "onset F1 vs true impacts", "noise floor (dBFS)", "buzz (mean)", "buzz (median)"],
                     rows)
            + "\n" + detector_note(v))


def noise_fill_generate_section(v: dict) -> str:
    """benchmarks/noise_fill_generated.py --task generate: one generated mel per clip, a row per fill setting."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.0f} %"

    rows = [["real clips" if k == "real" else k, _f(r["contact_f1"], ".3f"), _f(r["floor_db"], ".1f"), _f(r["buzz"], ".3f"),
             _f(r["buzz_median"], ".3f"), str(r["buzz_over_0.3"]), pct(r.get("material"))]
            for k, r in v["summary"].items()]
    guidance = ""
    if v.get("cfg_audio") is not None:
        guidance = f" at audio text guidance {v['cfg_audio']:g}" + (
            f" on {v['cfg_audio_interval']}" if v.get("cfg_audio_interval") else "")
    return (f"`avgen generate` on {v['clips']} held-out captions{guidance} (seed = index), one generation per clip, "
            f"every row from the same generated mel (contacts: the sound's onsets against the contacts seen in the "
            f"generated frames, F1 +-1 frame; floor and buzz before the first contact seen, {v['floor_clips']} real "
            f"clips). Produced by `{v['command']}` (`benchmarks/results/noise_fill_generate.json`).\n\n"
            + _table(["soundtrack", "onsets vs contacts", "noise floor (dBFS)", "buzz (mean)", "buzz (median)",
                      "clips with buzz > 0.3", "material"], rows) + "\n")


def animate_sync_section(a: dict) -> str:
    c, ia = a["sync_classifier"], a["image_audio"]

    def fit(r):
        if not r["image"]:
            return "-"
        if not r.get("first_frame_fit_steps"):
            return "encoder"
        return f"fitted {r['first_frame_fit_steps']}" + ("" if r.get("first_frame_fit") else " (Adam)")

    current = a.get("sync_model_sha256")
    earlier = lambda r: current is not None and r.get("scored_with") != current  # noqa: E731
    rows = [[r["row"] + (" †" if earlier(r) else ""), "-" if r["eta"] is None else f"{r['eta']:g}",
             _f(r["relsync"], ".3f"),
             _f(r["p_align"], ".3f"), _f(r["alignsync"], ".3f"), _f(r.get("future_frames_psnr_db")),
             _f(r.get("colourflow_paired"), ".1f"), fit(r), _f(r["first_frame_psnr_db"])] for r in a["rows"]]
    rows.append(["real video (reference)", "-", "0.500", "-", "-", "-", "0.0", "-", "-"])
    return (f"Produced by `{a['command']}` (`benchmarks/results/animate_sync.json`): {a['clips']} held-out clips, "
            f"their real audio (and, with a first frame, their real first frame as a lossless PNG) animated with "
            f"default settings, seed = clip index. The sync classifier, trained on {c['train_clips']} real clips "
            f"({c['steps']} steps), picks the true alignment among {2 * 6 + 1} shifts (+-1 frame) on {c['clips']} "
            f"held-out clips with accuracy {c['accuracy']:.2f} (chance {c['chance']:.2f}). The image-audio model "
            f"(AlignSync's stand-in for ImageBind, {ia['steps']} steps) finds a held-out clip's picture from its "
            f"audio among {ia['clips']} with top-1 {ia['accuracy']:.2f} (chance {ia['chance']:.2f}). The picture "
            f"columns score the future frames (2..b, as seed 002 does) against the real clip's: PSNR, and the "
            f"paired distance of their colour/flow statistics (FD-colourflow's features; lower is closer). "
            f"First frame: the latent as the encoder gives it, or fitted through the decoder for N L-BFGS "
            f"iterations (animate's default since it landed; rows marked Adam or encoder were measured before, "
            f"those marked encoder with the picture given as a one-frame H.264 file, which cost nothing "
            f"measurable: the fit curve's 0-iteration point is the encoder latent of the lossless picture).\n\n"
            + _table(["animate", "eta", "RelSync (0.5 = as the real video)", "P_Align", "AlignSync",
                      "future frames PSNR (dB)", "colour/flow distance", "first latent", "first frame PSNR (dB)"],
                     rows) + "\n" + _earlier_note(a, any(earlier(r) for r in a["rows"]))
            + _fit_curve(a.get("first_frame_fit")))


def _earlier_note(a: dict, any_earlier: bool) -> str:
    if not any_earlier:
        return ""
    return ("\n† scored by an earlier training of the sync classifier and image-audio model (same recipe, "
            f"{a.get('earlier_classifier_note', 'an earlier run')}); RelSync depends on the classifier, so compare "
            "† rows with each other, not with the rest.\n")


def _fit_curve(fit: dict | None) -> str:
    if not fit:
        return ""
    pts = ", ".join(f"{r['iterations']} -> {r['psnr_db']:.1f} dB ({r['seconds']:.1f} s)" for r in fit["rows"])
    bundle = Path(fit["bundle"])
    bundle = bundle.relative_to(ROOT) if bundle.is_absolute() and bundle.is_relative_to(ROOT) else bundle
    return (f"\nFirst-frame fit (animate's L-BFGS on the decoded frame, the {bundle} bundle, the same "
            f"{fit['clips']} first frames; 0 = the encoder's latent; seconds per fit on this machine): {pts}.\n")


def ray_batch_section(r: dict) -> str:
    lo, ra = r["local"], r["ray"]
    rows = [["local batch (one process, all cores)", _f(lo["wall_s"]), _f(lo["clips_per_s"] * 60, ".2f"),
             _f(lo["per_clip_s"], ".2f"), "-"],
            [f"`--ray --workers {r['workers']}` (local instance, 1 CPU each)", _f(ra["wall_s"]),
             _f(ra["clips_per_s"] * 60, ".2f"), _f(ra["per_clip_s"], ".2f"), _f(ra["start_and_rest_s"])]]
    proj = []
    for name, rows_ in r["projection"].items():
        for p in rows_:
            if p["nodes"] in (1, 4, 16, 64):
                proj.append([name, str(p["gpus"]), _f(p["linear"], ".1f"), _f(p["clips_per_s"], ".1f"),
                             p["bound_by"]])
    lin = r["linear_while_gpu_s_above"]
    return (f"Measured by `{r['command']}` (`benchmarks/results/ray_batch.json`), fresh processes side by side, "
            f"{r['n']} prompts with the demo bundle on {r['cpus']} CPU cores:\n\n"
            + _table(["run", "wall (s)", "clips / min", "median s / clip", "Ray start + load + rest (s)"], rows)
            + f"\n\nThroughput with Ray: **{r['throughput_ratio']:.2f}x** the local batch (target >= 0.9x). "
            f"Outputs byte-identical to the local run: {'yes' if r['bytes_identical_to_local'] else 'no (different thread counts: float rounding)'}. "
            f"The round trip per item with a worker that does nothing: {r['dispatch_ms_per_unit']:.1f} ms per "
            f"worker slot, so one driver completes at most {r['driver_units_per_s']:.0f} items/s (measured with the "
            f"driver and the workers sharing these 2 cores); ffmpeg muxing {r['mux_s_per_clip'] * 1000:.0f} ms of CPU per clip; "
            f"{r['bytes_per_clip'] / 1e3:.0f} kB per demo clip.\n\n"
            "Scaling across GPUs, on paper (no GPU here): the per-clip GPU times are assumed, the other "
            "constants are the measurements above; nodes of 8 GPUs and 64 cores, shared storage at 1 GB/s "
            "(real-scale clips taken as 8 MB). Throughput grows with the GPUs until one of the limits binds:\n\n"
            + _table(["model", "GPUs", "linear (clips/s)", "projected (clips/s)", "bound by"], proj)
            + f"\n\nIt stays linear while the per-clip GPU time is above {lin['ffmpeg (per node)']:.2f} s "
            f"(ffmpeg beside 8 GPUs on 56 spare cores), {lin['shared storage (per 64 GPUs)']:.3f} s x (GPUs / 64) "
            f"(storage) and {lin['driver dispatch (per 64 GPUs)']:.2f} s x (GPUs / 64) (one driver's dispatch). "
            "For the demo model one driver's dispatch, not the GPUs, would set the pace beyond about 64 GPUs "
            "(generate's `--batch-size` chunks divide that cost); at real scale (seconds of GPU per clip) the GPUs do, "
            "to hundreds of them. Foley writes the input's picture again (stream copy), so its bytes per clip are the "
            "footage's: 100 MB ProRes shots on 1 GB/s storage cap a farm at 10 clips/s, whatever its GPU count.\n")


def _fd(q: dict, side: str) -> float | None:
    return q.get(f"eval_{side}", {}).get("set_metrics", {}).get("FD-logmel", {}).get("value")


def _x(value, ref) -> str:
    return f"{value:.3f} ({value / ref:.2f}x)" if value is not None and ref else _f(value, ".3f")


V2_ROWS = ("hits-demo before v2 (old physics)", "v2: new physics, onset pretext, 800 joint steps")
SHIP_ROWS = (("v2 (shipped until 2026-12-02)", "quality_ship_parent40.json"),
             ("v2, other seeds (the noise band)", "quality_ship_parent40_seeds1000.json"),
             ("v2 + 400 joint steps, audio dropout 0.1 (shipped now)", "quality_ship_dropout40.json"))


VOCODER_ROWS = (("small vocoder trained here (sampling defaults of 2026-12-04)", "quality_2026-12-04.json"),
                ("HiFi-GAN V1 universal via the mel adapter (same defaults)", "quality_hifigan_universal.json"),
                ("small vocoder, guidance over the picture (shipped until 2026-12-05)", "quality_smallvoc_2026-12-05.json"),
                ("ISTFT vocoder, same U-Nets and defaults (shipped 2026-12-05)", "quality_istft_2026-12-05.json"))
# the audio base U-Net fine-tuned beside the connectors (train joint --unfreeze-audio), against the bundle it came from
UNFREEZE_ROWS = (("shipped 2026-12-05 (bases frozen in every joint leg)", "quality_2026-12-05.json"),
                 ("+ 800 joint steps with the audio base U-Net fine-tuned (shipped 2026-12-06)",
                  "quality_2026-12-06.json"))
# the video base U-Net fine-tuned beside the connectors (train joint --unfreeze-video), against the shipped bundle
UNFREEZE_VIDEO_ROWS = (("shipped 2026-12-06 (audio base U-Net fine-tuned)", "quality_2026-12-06.json"),
                       ("+ 600 joint steps with the video base U-Net fine-tuned (not shipped)",
                        "quality_unfreeze_video600.json"))
UNFREEZE_VIDEO_GEN = UNFREEZE_VIDEO_ROWS + (("+ 600 more such steps (1200 in all; not shipped)",
                                             "quality_unfreeze_video1200.json"),)
# the audio's text guidance on the last 60 % of the steps, on the 100 held-out clips (generate side)
CFG_AUDIO_HELDOUT = (("the defaults of 2026-12-05 (audio text guidance off)", "quality_istft_2026-12-05.json"),
                     ("--cfg-audio 3 --cfg-audio-interval 0.4:1 (the default since)", "quality_heldout_a3i41.json"),
                     ("--cfg-audio 5 --cfg-audio-interval 0.4:1", "quality_heldout_a5i41.json"))
# the same two scales on the bundle with the audio base U-Net fine-tuned (shipped 2026-12-06)
CFG_AUDIO_UA = (("the shipped defaults (--cfg-audio 3 --cfg-audio-interval 0.4:1)", "quality_2026-12-06.json"),
                ("--cfg-audio 5 --cfg-audio-interval 0.4:1", "quality_heldout_ua_a5i41.json"))

# the bundle shipped later on 2026-12-06: 1200 more joint steps with the audio base U-Net, then 3000 steps of the
# video base U-Net alone; each leg alone and both, against the bundle shipped before
SHIP_BOTH_ROWS = (("shipped 2026-12-06, first (800 joint steps with the audio base U-Net)", "quality_2026-12-06.json"),
                  ("+ 1200 joint steps with the audio base U-Net fine-tuned", "quality_unfreeze_audio1200.json"),
                  ("+ those 1200 joint steps, then 3000 steps of the video base U-Net alone (shipped then)",
                   "quality_2026-12-06b.json"))
SHIP_BOTH_GEN = SHIP_BOTH_ROWS[:2] + (("+ 3000 steps of the video base U-Net alone (from the first bundle)",
                                       "quality_unet_video3000.json"),) + SHIP_BOTH_ROWS[2:] + (
    ("that bundle + 400 joint steps with the audio base U-Net (not shipped)",
     "quality_ship_then_joint400.json"),)

# the ninth session: joint legs on one side only (--train-side audio) on the bundle shipped then, against it
SIDE_SHIP_ROWS = (("shipped 2026-12-06, later (eighth session)", "quality_2026-12-06b.json"),
                  ("+ 400 joint steps, --train-side audio --unfreeze-audio (shipped; sampling of the ninth session)",
                   "quality_2026-12-06c.json"),
                  ("+ 800 joint steps, --train-side audio --unfreeze-audio", "quality_ship_audio_side800.json"))
SIDE_GEN = SIDE_SHIP_ROWS[:1] + (
    ("+ 400 joint steps with the audio base U-Net, both sides (as before)", "quality_ship_then_joint400.json"),
    ("+ 400 joint steps, --train-side audio --unfreeze-audio (same run as the next row, as measured first)",
     "quality_ship_audio_side400.json"),) + SIDE_SHIP_ROWS[1:] + (
    ("--cfg-audio 4.5 (sampling only, no training)", "quality_ship_cfg_audio4.5.json"),
    ("+ 3000 more steps of the video base U-Net alone", "quality_ship_unet_video3000more.json"),
    ("+ those 3000 steps, then 800 joint steps --train-side audio --unfreeze-audio",
     "quality_unet_video3000more_audio_side800.json"),
    ("the shipped bundle (fourth row) + 400 more joint steps on the audio side, seed 11 (not shipped)",
     "quality_ship_audio_side400x2.json"))

# the tenth session: metal clips weighted up in an audio-side joint leg (captions.jsonl "weight"), same seed as the
# unweighted leg of the ninth session
WEIGHT_GEN = (("shipped (ninth session; its sampling defaults then)", "quality_2026-12-06c.json"),
              ("+ 400 joint steps on the audio side, seed 11, no weights (as above)", "quality_ship_audio_side400x2.json"),
              ("the same with metal clips weighted 3 (42 % of the draws)", "quality_ship_metal_weight3.json"),
              ("the same with metal clips weighted 5 (55 % of the draws)", "quality_ship_metal_weight5.json"))


# the tenth session: seed 004's guidance over the picture (generate's video_guidance 3) on part of the steps only
VG_INTERVAL_VAL = (("guidance over the picture on every step (the default until the tenth session)",
                    "quality_val_vg_default.json"),
                   ("--video-guidance-interval 0:0.8", "quality_val_vgi08.json"),
                   ("--video-guidance-interval 0:0.6", "quality_val_vgi06.json"),
                   ("--video-guidance-interval 0:0.4", "quality_val_vgi04.json"))
VG_INTERVAL_HELDOUT = (("guidance over the picture on every step (the default until the tenth session)",
                        "quality_2026-12-06c.json"),
                       ("--video-guidance-interval 0:0.8 (the default since)", "quality_heldout_vgi08.json"),
                       ("--video-guidance-interval 0:0.6", "quality_heldout_vgi06.json"),
                       ("--video-guidance-interval 0:0.4", "quality_heldout_vgi04.json"),
                       ("--video-guidance 1 (no guidance over the picture)", "quality_heldout_vg1.json"))
# seed 002's audio guidance on the picture (the video U-Net), eta 12 by default, lowered (eleventh session)
AG_VAL = (("audio guidance 12 (the default)", "quality_val_vgi08.json"),
          ("--audio-guidance 8", "quality_val_ag8.json"),
          ("--audio-guidance 6", "quality_val_ag6.json"),
          ("--audio-guidance 4", "quality_val_ag4.json"),
          ("--audio-guidance 1 (off)", "quality_val_ag1.json"))
AG_HELDOUT = (("audio guidance 12 (the default)", "quality_heldout_vgi08.json"),
              ("--audio-guidance 8", "quality_heldout_ag8.json"),
              ("--audio-guidance 6", "quality_heldout_ag6.json"))
# colour tries (eleventh session): the picture without its sound, guidance rescale, the video base U-Net trained on
# with the denoising loss weighted toward what moves
COLOUR_GEN = (("shipped (tenth session's default)", "quality_heldout_vgi08.json"),
          ("picture without sound (the video U-Net's audio features zeroed)",
           "quality_heldout_picture_without_sound.json"),
          ("--cfg-video-rescale 0.7", "quality_heldout_cfg_video_rescale07.json"),
          ("+ 1500 steps of the video base U-Net alone, plain loss (the control)",
           "quality_heldout_unet_video1500_fg0.json"),
          ("+ 1500 steps of the video base U-Net alone, --foreground-boost 8", "quality_heldout_unet_video1500_fg8.json"))
# colour tries (twelfth session): a wider video base U-Net, and the video VAE fine-tuned whole (a new latent space)
COLOUR_GEN12 = (("shipped (tenth session's default)", "quality_heldout_vgi08.json"),
                ("picture without sound (the video U-Net's audio features zeroed)",
                 "quality_heldout_picture_without_sound.json"),
                ("a fresh video base U-Net of 64/96 channels, 6000 steps (its cross-modal blocks zero: no sound)",
                 "quality_heldout_wide_video_unet_64_96_6000.json"),
                ("+ 1500 steps of the video base U-Net alone, plain loss (the eleventh session's control)",
                 "quality_heldout_unet_video1500_fg0.json"),
                ("the video VAE fine-tuned whole (encoder too, 2500 steps), U-Nets as shipped",
                 "quality_heldout_vae_video_whole2500.json"),
                ("that VAE + 1500 steps of the video base U-Net alone",
                 "quality_heldout_vae_video_whole2500_unet_video1500.json"),
                ("that VAE (trained again) + 4500 steps of the video base U-Net alone, one schedule",
                 "quality_heldout_vae_video_whole2500_unet_video4500.json"),
                ("+ 400 joint steps on the video side (its cross-modal blocks on the new latents)",
                 "quality_heldout_vae_video_whole2500_unet_video4500_joint_video400.json"),
                ("the shipped networks + 1500 steps of the video base U-Net alone, green/red/yellow clips weighted 3",
                 "quality_heldout_unet_video1500_colours_weighted3.json"),
                ("the shipped video base U-Net and that control's (+ 1500 plain steps) averaged, half and half",
                 "quality_heldout_video_unet_soup_shipped_unet_video1500.json"),
                ("that control (+ 1500 plain steps) with --cfg-video 8 (the fourteenth session's pick on 200 "
                 "validation clips)", "quality_heldout_unet_video1500_cfg_video8.json"))
# fourteenth session: the video base U-Net's continuations and their averages on 200 more validation clips
COLOUR_VAL2 = (("shipped", "quality_val2_shipped.json"),
               ("+ 1500 steps of the video base U-Net alone, seed 21 (the eleventh session's control)",
                "quality_val2_unet_video1500.json"),
               ("the shipped video base U-Net and that continuation averaged, half and half",
                "quality_val2_video_unet_soup_shipped_unet_video1500.json"),
               ("two continuations averaged (seeds 21 and 22, each + 1500 steps from the shipped one)",
                "quality_val2_video_unet_soup_seeds21_22.json"),
               ("the shipped one and both continuations, a third each",
                "quality_val2_video_unet_soup_shipped_seeds21_22.json"),
               ("the seed-21 continuation + 1500 more steps, seed 23 (3000 in all)",
                "quality_val2_unet_video3000.json"),
               ("shipped, --cfg-video 8 (the video's text guidance 8 where the default is 6)",
                "quality_val2_cfg_video8.json"),
               ("+ 1500 steps (seed 21), --cfg-video 8", "quality_val2_unet_video1500_cfg_video8.json"))
# fifteenth session: where the steps sit among the training timesteps (trailing against leading)
SPACING_VAL2 = (("shipped until 2026-12-07 (leading spacing)", "quality_val2_shipped.json"),
                ("the same networks, trailing spacing", "quality_val2_trailing.json"),
                ("+ 1500 steps of the video base U-Net alone, seed 21 (leading)", "quality_val2_unet_video1500.json"),
                ("+ 1500 steps of the video base U-Net alone, trailing spacing (the pick, shipped now)",
                 "quality_val2_unet_video1500_trailing.json"))
SPACING_HELDOUT = (("shipped until 2026-12-07 (leading spacing)", "quality_heldout_vgi08.json"),
                   ("the same networks, trailing spacing", "quality_heldout_trailing.json"),
                   ("+ 1500 steps of the video base U-Net alone, seed 21 (leading)",
                    "quality_heldout_unet_video1500_fg0.json"),
                   ("+ 1500 steps of the video base U-Net alone, trailing spacing (shipped now)",
                    "quality_heldout_unet_video1500_trailing.json"))
SPACING_SHIP = (("shipped until 2026-12-07 (tenth session)", "quality_2026-12-07.json"),
                ("+ 1500 video base steps, trailing spacing (shipped now)", "quality.json"))
VAL2_CLIPS = "validation clips (`work/v2/hits-val2`: `avgen data synth --n 200 --seed 3 --impact-fps 8`)"
# audio-side legs measured with the tenth session's sampling default, against the shipped bundle
VD_GEN = (("shipped (tenth session's default: guidance over the picture on the noisier 80 %)", "quality.json"),
          ("the ninth session's seed-11 leg (+ 400 joint steps on the audio side), same default",
           "quality_ship_audio_side400x2_vgi08.json"),
          ("that leg with --video-dropout 0.2 (a trained null picture), same default",
           "quality_ship_video_dropout02_vgi08.json"),
          ("the shipped networks + 600 steps of the audio base U-Net alone, metal clips weighted 3, same default",
           "quality_ship_unet_audio600_metal3_vgi08.json"))


def v2_compare_section(rows: list[tuple[str, dict]]) -> str:
    """Bundles side by side on the same held-out clips: each row one bundle's quality.py JSON."""
    q0 = rows[0][1]
    real_contact = (q0.get("contact_real") or {}).get("f1")
    real_al = q0["av_align_real"]["seed000"]
    head = ["bundle", "foley onset F1 (P / R)", "generate: onsets vs contacts seen", "AV-Align generate",
            "AV-Align foley", "colour / material", "FD-logmel generate / foley", "noise floor foley (dBFS)",
            "buzz foley"]
    out = [["real clips (reference)",
            f"{q0['onsets_real']['f1']:.3f} ({q0['onsets_real']['precision']:.2f} / {q0['onsets_real']['recall']:.2f})",
            _f(real_contact, ".3f"), _f(real_al, ".3f"), "-",
            f"{q0['adherence_real']['colour']:.0%} / {q0['adherence_real']['material']:.0%}", "-",
            _f(q0.get("noise_floor_db_real"), ".1f"), _f(q0.get("buzz_real"), ".3f")]]
    for name, q in rows:
        o = q["onsets_foley"]
        out.append([name, f"{o['f1']:.3f} ({o['precision']:.2f} / {o['recall']:.2f})",
                    _x((q.get("contact_generate") or {}).get("f1"), real_contact),
                    _x(q["av_align_generate"]["seed000"], real_al), _x(q["av_align_foley"]["seed000"], real_al),
                    f"{q['adherence_generate']['colour']:.0%} / {q['adherence_generate']['material']:.0%}",
                    f"{_f(_fd(q, 'generate'))} / {_f(_fd(q, 'foley'))}", _f(q.get("noise_floor_db_foley"), ".1f"),
                    _f(q.get("buzz_foley"), ".3f")])
    cmds = "; ".join(f"`{q.get('command')}`" for _, q in rows)
    return "\n".join([f"{q0['n']} held-out clips of the new physics (never seen in training), default settings of "
                      f"each command, every bundle on the same clips and seeds. Produced by {cmds}.", "",
                      _table(head, out)]) + "\n" + detector_note(*(q for _, q in rows))


def levers_section(lv: dict) -> str:
    """benchmarks/levers.py: one row per lever; a material column where the rows were scored for it."""
    material = any("material" in r for r in lv["rows"])
    rows = []
    for r in lv["rows"]:
        rows.append([f"`{r['lever']}`", r["what"], str(r.get("steps", 0)),
                     f"{r['onset_f1']:.3f}", f"{r['onset_precision']:.2f} / {r['onset_recall']:.2f}",
                     *([_f(r.get("material"), ".0%")] if material else []),
                     _f(r.get("av_align"), ".3f"), _f(r.get("fd_logmel")), _f(r.get("noise_floor_db"), ".1f"),
                     _f(r.get("buzz"), ".3f"),
                     _f(r.get("train_seconds") and r["train_seconds"] / 60, ".0f")])
    n = lv["rows"][0].get("n")
    return "\n".join([f"`avgen foley` on {n} held-out clips (default settings, seed = clip index), every row from "
                      f"the same bundle and {lv['steps_per_row']} further joint steps of the same recipe "
                      f"(`{' '.join(lv['recipe'])}`), only the lever differing. Produced by `{lv['command']}`.", "",
                      _table(["row", "lever", "extra steps", "onset F1", "P / R",
                              *(["material (no prompt)"] if material else []), "AV-Align", "FD-logmel",
                              "noise floor (dBFS)", "buzz", "train min"], rows)]) + "\n" + detector_note(*lv["rows"])


def _is_perf(path: Path) -> bool:
    """A run_benchmarks.py result (the other JSON files in results/ are quality, ablation, probes...)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "machine" in data and ("tasks" in data or "series" in data)


def replace_section(text: str, name: str, body: str) -> str:
    pat = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pat.search(text):
        raise SystemExit(f"README has no <!-- {name}:begin --> ... <!-- {name}:end --> markers")
    return pat.sub(lambda m: m.group(1) + body + m.group(2), text)


SWEEP_COLS = (("foley_onset_f1", "foley onset F1", ".3f"), ("fd_logmel_generate", "FD-logmel gen", ".1f"),
              ("fd_colourflow_generate", "FD-colourflow gen", ".0f"), ("fd_logmel_foley", "FD-logmel foley", ".1f"),
              ("colour_generate", "colour", ".2f"), ("material_generate", "material", ".2f"),
              ("contact_f1_generate", "contact F1 gen", ".3f"))


def steps_sweep_section(res: dict) -> str:
    d = res["default"]
    lines = [f"{res['n']} held-out clips, the same seeds in every row; the last row is today's default with other "
             f"seeds, and its gap to the default row is the noise band. Produced by `{res['command']}` "
             f"(`benchmarks/results/steps_sweep.json`). The cost of a setting is its step count (denoising is most "
             f"of a clip's time: see the stage tables); the sweep's own seconds are in the JSON but were taken with "
             f"other work on the machine, so they rank nothing.", ""]
    rows = []
    for r in res["rows"]:
        label = f"{r['solver']} {r['steps']}"
        if r.get("noise_run"):
            label += ", other seeds (noise band)"
        elif (r["solver"], r["steps"]) == (d["solver"], d["steps"]):
            label += " (default)"
        wn = r.get("within_noise")
        verdict = "-" if wn is None else ("yes" if all(wn.values()) else
                                          "no: " + ", ".join(k for k, ok in wn.items() if not ok))
        rows.append([label] + [_f(r.get(k), f) for k, _, f in SWEEP_COLS] + [verdict])
    lines.append(_table(["setting"] + [c for _, c, _ in SWEEP_COLS] + ["within noise of the default"], rows))
    lines += ["", f"Fastest setting within noise on every column: **{res.get('fastest_within_noise') or 'none'}**."]
    return "\n".join(lines) + "\n" + detector_note(*res["rows"])


GUIDANCE_COLS = [("colour_generate", "colour", "pct"), ("material_generate", "material", "pct"),
                 ("contact_f1_generate", "onsets vs contacts seen", ".3f"),
                 ("av_align_generate", "AV-Align", ".3f"), ("fd_logmel_generate", "FD-logmel", ".1f"),
                 ("fd_colourflow_generate", "FD-colourflow", ".1f"),
                 ("noise_floor_db_generate", "noise floor (dBFS)", ".1f"),
                 ("buzz_generate", "buzz", ".3f")]


def _cells(r: dict, cols: list, pct_digits: int = 0) -> list[str]:
    """A sweep row's cells: "pct" columns as percentages (`pct_digits` decimals), and "(better)" / "(worse)" where
    the row's `beyond_noise` verdict says it moved further than the noise band."""
    out = []
    for k, _, f in cols:
        v = r.get(k)
        cell = "-" if v is None else (f"{v:.{pct_digits}%}" if f == "pct" else format(v, f))
        verdict = (r.get("beyond_noise") or {}).get(k)
        out.append(cell + (f" ({verdict})" if verdict in ("better", "worse") else ""))
    return out


def guidance_sweep_section(res: dict) -> str:
    """benchmarks/guidance_sweep.py: the generate path's two text-guidance scales against adherence and timing."""
    d = res["default"]
    real = res["rows"][0]
    lines = [f"`avgen generate` on {res['n']} validation clips (`{res['clips']}`, not the held-out ones), the same "
             f"seeds in every row, one guidance scale changed per row ({d['solver']}, {d['steps']} steps); the last "
             f"row is the default with other seeds, and a column says better or worse only where a row moved further "
             f"than the two default rows differ. Real clips score colour {real['colour_real']:.0%}, material "
             f"{real['material_real']:.0%}, contacts {real['contact_f1_real']:.3f} and a noise floor of "
             f"{_f(real.get('noise_floor_db_real'), '.1f')} dBFS. Produced by "
             f"`{res['command']}` (`benchmarks/results/guidance_sweep.json`).", ""]
    rows = []
    for r in res["rows"]:
        label = f"video {r['cfg_video']:g}, audio {r['cfg_audio']:g}"
        if r.get("noise_run"):
            label += ", other seeds (noise band)"
        elif (r["cfg_video"], r["cfg_audio"]) == (d["cfg_video"], d["cfg_audio"]):
            label += " (the default when swept)"
        rows.append([label] + _cells(r, GUIDANCE_COLS))
    lines.append(_table(["guidance"] + [c for _, c, _ in GUIDANCE_COLS], rows))
    return "\n".join(lines) + "\n" + detector_note(*res["rows"])


def _settings(r: dict) -> tuple:
    """A guidance row's sampling settings, with the keys older results lack at their values then."""
    return (r["cfg_video"], r["cfg_audio"], tuple(r["cfg_video_interval"]), tuple(r["cfg_audio_interval"]),
            r.get("audio_guidance", 1.0), tuple(r.get("audio_guidance_interval", (0.0, 1.0))),
            r.get("video_guidance", 1.0), tuple(r.get("video_guidance_interval", (0.0, 1.0))))


def _video_guidance_label(r: dict) -> str:
    """", video guidance ETA[ in START:END]" for a row with seed 004's guidance over the picture; "" without."""
    if r.get("video_guidance", 1.0) == 1.0:
        return ""
    iv = list(r.get("video_guidance_interval", [0.0, 1.0]))
    return f", video guidance {r['video_guidance']:g}" + ("" if iv == [0.0, 1.0] else f" in {iv[0]:g}:{iv[1]:g}")


def guidance_interval_section(res: dict, name: str = "guidance_interval.json") -> str:
    """benchmarks/guidance_interval.py: text guidance only in part of the steps, against the default."""
    d, real = res["default"], res["rows"][0]
    kind = "held-out" if "test" in Path(res["clips"]).name else "validation"
    lines = [f"`avgen generate` on {res['n']} {kind} clips (`{res['clips']}`), the same seeds in every row "
             f"({d['solver']}, {d['steps']} steps); an interval START:END guides the steps whose fraction k/K of the "
             f"way from the noisiest lies in it, and runs the U-Net once, on the prompt alone, elsewhere. `U-Net "
             f"batch rows` counts the video and the audio U-Net's work per clip (a guided step is a batch of 2; audio "
             f"guidance doubles the video's); `s / clip` is the whole generate call, clips one after another. The "
             f"last row is the default with other seeds; better / worse only where a row moved further than the two "
             f"default rows differ. Real clips: colour {real['colour_real']:.0%}, material {real['material_real']:.0%}"
             f", contacts {real['contact_f1_real']:.3f}. Produced by `{res['command']}` "
             f"(`benchmarks/results/{name}`).", ""]
    iv = lambda x: f"{x[0]:g}:{x[1]:g}"  # noqa: E731
    rows = []
    for r in res["rows"]:
        label = (f"video {r['cfg_video']:g} in {iv(r['cfg_video_interval'])}, audio {r['cfg_audio']:g} in "
                 f"{iv(r['cfg_audio_interval'])}")
        if r.get("audio_guidance", 1.0) != 1.0:
            label += f", audio guidance {r['audio_guidance']:g}"
            if list(r.get("audio_guidance_interval", [0.0, 1.0])) != [0.0, 1.0]:
                label += f" in {iv(r['audio_guidance_interval'])}"
        label += _video_guidance_label(r)
        if r.get("noise_run"):
            label += ", other seeds (noise band)"
        elif _settings(r) == _settings(d):
            label += " (the bundle's default)"
        elif r["label"] == "default":
            label += " (text guidance alone)"
        u, sec = r["unet_batch_calls"], r.get("seconds_per_clip")
        rows.append([label, f"{u['video']} / {u['audio']}", "-" if sec is None else f"{sec:.2f}"]
                    + _cells(r, GUIDANCE_COLS))
    lines.append(_table(["guidance", "U-Net batch rows", "s / clip"] + [c for _, c, _ in GUIDANCE_COLS], rows))
    return "\n".join(lines) + "\n"


def material_probe_section(res: dict) -> str:
    """Linear probes for the surface's material on foley's visual conditioning (benchmarks/material_probe.py)."""
    rows = [[name, str(p["dims"]), f"{p['accuracy']:.0%}"] for name, p in res["probes"].items()]
    rows.append(["chance (the most common material of the held-out clips)", "-", f"{res['chance']:.0%}"])
    return (f"Linear probes (logistic regression) for the surface's material, fitted on {res['train_windows']} "
            f"training clips and scored on {res['test_windows']} held-out ones. Produced by `{res['command']}` "
            f"(`benchmarks/results/material_probe.json`).\n\n"
            + _table(["features", "dimensions", "material accuracy"], rows) + "\n")


def adherence_confusion_section(res: dict) -> str:
    """benchmarks/adherence_confusion.py: per true class, what each side's clips were classified as (right first)."""
    def cell(preds: dict, true: str) -> str:
        n = sum(preds.values())
        order = sorted(preds.items(), key=lambda kv: (kv[0] != true, -kv[1], kv[0]))
        return f"{preds.get(true, 0)}/{n} right" + "".join(f", {p} {k}" for p, k in order if p != true)

    parts = []
    for kind in ("material", "colour"):
        sides = [name for name, v in res["sides"].items() if kind in v]
        classes = sorted({c for name in sides for c in res["sides"][name][kind]})
        rows = [[f"`{c}`", *(cell(res["sides"][name][kind].get(c, {}), c) for name in sides)] for c in classes]
        parts.append(_table([f"{kind} in the caption", *(f"{name}: classified as" for name in sides)], rows))
    return (f"The adherence classifiers' verdicts split by the caption's class (each cell: clips classified right, then "
            f"what the rest were classified as). Produced by `{res['command']}` "
            f"(`benchmarks/results/adherence_confusion.json`).\n\n" + "\n\n".join(parts) + "\n")


def colour_frames_section(res: dict, name: str = "colour_frames.json") -> str:
    """benchmarks/colour_frames.py: colour adherence per clip and frame by frame, per folder of clips."""
    rows = [[r["name"], str(r["clips"]), f"{r['colour_clips']:.0%}", f"{r['colour_frames']:.1%}", str(r["frames"])]
            for r in res["rows"]]
    return (f"The colour classifier on whole clips (the quality table's column) and on each frame's own moving pixels "
            f"(`avgen eval`'s `colour_frames_ok`). Produced by `{res['command']}` "
            f"(`benchmarks/results/{name}`).\n\n"
            + _table(["clips", "n", "colour (clips)", "colour (frames)", "frames read"], rows) + "\n")


def paired_section(res: dict, name: str) -> str:
    """benchmarks/paired_adherence.py: bundles against a base on the same clips and seeds, clip by clip."""
    def verdict(r, col):
        v = r.get(col)
        if not v:
            return "-"
        return f"{v['base']:.1%} -> {v['other']:.1%} (+{v['wins']} / -{v['losses']}, p {v['p']:.2f})"
    rows = []
    for r in res["rows"]:
        fr = r.get("colour_frames_ok")
        rows.append([r["name"], str(r["clips"]), verdict(r, "colour_ok"), verdict(r, "material_ok"),
                     f"{fr['diff'] * 100:+.1f} +- {fr['stderr'] * 100:.1f}" if fr else "-"])
    return (f"Each row against **{res['base']['name']}** on the same {res.get('clips') or 'clips'} and seeds: the share "
            f"of clips right, then the clips the row gets right that the base misses (+) and the reverse (-), with the "
            f"exact two-sided sign test on them; and the per-clip difference in the share of frames whose colour is "
            f"right, in points, +- its standard error. Produced by `{res['command']}` (`benchmarks/results/{name}`).\n\n"
            + _table(["bundle", "clips", "colour", "material", "colour of the frames (points)"], rows) + "\n")


def guidance_cost_section(res: dict, name: str = "guidance_cost.json") -> str:
    """benchmarks/guidance_cost.py: the guidance settings' time, side by side in one process."""
    iv = lambda x: f"{x[0]:g}:{x[1]:g}"  # noqa: E731
    rows = []
    for r in res["rows"]:
        label = f"video {r['cfg_video']:g} in {iv(r['cfg_video_interval'])}"
        if r.get("audio_guidance", 1.0) != 1.0:
            label += f", audio guidance {r['audio_guidance']:g} in {iv(r['audio_guidance_interval'])}"
        if r.get("cfg_audio") is not None:
            label += f", audio {r['cfg_audio']:g}"
        label += _video_guidance_label(r)
        u = r["unet_batch_calls"]
        rows.append([label, f"{u['video']} / {u['audio']}", f"{r['seconds_median']:.2f}",
                     f"{r['ratio_to_default']:.2f}x"])
    head = (f"`avgen generate`'s pipeline call ({res['solver']}, {res['steps']} steps, 4 s clip), {res['n']} clips a row "
            f"after one warm-up, the rows interleaved in one process, {res['threads']} threads, {res['date']}; the "
            f"median, and its ratio to the first row (text guidance on every step, no audio guidance). Produced by "
            f"`{res['command']}` (`benchmarks/results/{name}`).")
    return head + "\n\n" + _table(["guidance", "U-Net batch rows (video / audio)", "s / clip", "vs the first row"],
                                   rows) + "\n"


def generate_speed_section(res: dict) -> str:
    """benchmarks/generate_speed.py: `avgen generate` with defaults, versions of avgen side by side, fresh processes."""
    stages = ("import", "load", "text", "denoise", "decode", "vocode", "mux")
    rows = []
    for r in res["rows"]:
        st = r["stages_s_median"]
        rows.append([r["name"], f"{r['wall_s_median']:.2f}", f"{r['vs_first']:.2f}x",
                     *(f"{st[k]:.2f}" if k in st else "-" for k in stages)])
    head = (f"`avgen generate --prompt P -o OUT` with each version's defaults (code and embedded bundle of the commit "
            f"named), a fresh process per run, {res['repeat']} timed runs a row after one warm-up, the rows "
            f"interleaved, {res['threads']} threads, {res['date']}; the median wall clock (measured outside the "
            f"process) and the median of each stage as the run's `--json` reports it. Produced by "
            f"`{res['command']}` (`benchmarks/results/generate_speed.json`).")
    return head + "\n\n" + _table(["version", "wall (s)", "vs the first row", *(f"{k} (s)" for k in stages)],
                                   rows) + "\n"


# the audio's text guidance with the ISTFT vocoder, on the validation clips (work/v2/hits-val)
CFG_AUDIO_ISTFT = (("the defaults until the fourth session of 2026-12-05 (audio text guidance 1, picture guidance 3)",
                    "quality_istft_val_default.json"),
                   ("--cfg-audio 2.5", "quality_istft_val_a2.5.json"),
                   ("--cfg-audio 5", "quality_istft_val_a5.json"),
                   ("default settings, audio base U-Net fine-tuned 3000 steps on the v2 clips (not shipped)",
                    "quality_istft_val_unet_audio_ft.json"),
                   ("--cfg-video 8 (default 6)", "quality_istft_val_v8.json"),
                   ("--cfg-video 10", "quality_istft_val_v10.json"),
                   ("--video-guidance 1 (no guidance over the picture)", "quality_istft_val_vg1.json"),
                   ("--cfg-audio 5 --cfg-audio-interval 0:0.4 (the noisier 40 %)", "quality_istft_val_a5i04.json"),
                   ("--cfg-audio 5 --cfg-audio-interval 0.4:1 (the last 60 %)", "quality_istft_val_a5i41.json"),
                   ("--cfg-audio 5 --cfg-audio-interval 0.5:1", "quality_istft_val_a5i51.json"),
                   ("--cfg-audio 5 --cfg-audio-interval 0.6:1", "quality_istft_val_a5i61.json"),
                   ("--cfg-audio 5 --cfg-audio-interval 0.8:1", "quality_istft_val_a5i81.json"),
                   ("--cfg-audio 3 --cfg-audio-interval 0.4:1", "quality_istft_val_a3i41.json"),
                   ("--cfg-audio 7.5 --cfg-audio-interval 0.6:1", "quality_istft_val_a7.5i61.json"),
                   ("--cfg-audio 5 --cfg-audio-interval 0.4:1 --cfg-audio-rescale 0.7",
                    "quality_istft_val_a5i41r7.json"))
GUIDANCE_CONFIRM = (("video 7.5, audio 2.5 (the default until 2026-12-03)", "quality_cfg_v7.5_a2.5.json"),
                    ("video 7.5, audio 5", "quality_cfg_audio5.json"),
                    ("video 7.5, audio 7.5", "quality_cfg_audio7.5.json"),
                    ("video 4, audio 5", "quality_cfg_v4_a5.json"),
                    ("video 4, audio 2.5", "quality_cfg_v4_a2.5.json"))


def guidance_confirm_section(rows: list[tuple[str, dict]], clips: str = "held-out clips") -> str:
    """Guidance candidates (quality.py --parts generate runs on one clip set and seeds), generate side, beside the
    shipped default."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("guidance_sweep", Path(__file__).with_name("guidance_sweep.py"))
    gs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gs)
    out = []
    q0 = rows[0][1]
    digits = 1 if q0["n"] > 100 else 0  # past 100 clips a whole percent hides clips
    for name, q in rows:
        r = gs.summarize(q)
        out.append([name] + _cells(r, GUIDANCE_COLS, digits))
    cmds = "; ".join(f"`{q['command']}`" for _, q in rows)
    return "\n".join([f"`avgen generate` on the {q0['n']} {clips}, the same seeds in every row. Produced by "
                      f"{cmds}.", "", _table(["setting"] + [c for _, c, _ in GUIDANCE_COLS], out)]) + "\n" + \
        detector_note(*(q for _, q in rows))


TABLE1_COLS = [("foley_onset_f1", "foley onset F1", ".3f"), ("foley_av_align", "foley AV-Align", ".3f"),
               ("contact_f1_generate", "generate: onsets vs contacts seen", ".3f"),
               ("av_align_generate", "AV-Align generate", ".3f"), ("fd_logmel_generate", "FD-logmel", ".1f"),
               ("fd_colourflow_generate", "FD-colourflow", ".1f"), ("colour_generate", "colour", "pct"),
               ("material_generate", "material", "pct"), ("buzz_generate", "buzz generate", ".3f")]


def table1_section(res: dict) -> str:
    """benchmarks/gamma_sweep.py with --xattn: seed 000's Table 1 rows (cross-attention at gamma 1, CMC-PE at
    each gamma) on one clip set and seeds; a cell says better or worse than the CMC-PE default row only where it
    moved further than that row and its repeat with other seeds differ."""
    d = res["default"]
    order = lambda r: (bool(r.get("noise_run")), r["connector"] != "xattn", r["gamma"])  # noqa: E731
    rows = []
    for r in sorted(res["rows"], key=order):
        name = "cross-attention (CoDi)" if r["connector"] == "xattn" else "CMC-PE"
        if r.get("noise_run"):
            name += ", other seeds (noise band)"
        elif r["connector"] == "cmcpe" and r["gamma"] == d["gamma"]:
            name += " (the default)"
        rows.append([name, f"{r['gamma']:g}"] + _cells(r, TABLE1_COLS))
    real = res["rows"][0]
    ref = {"foley_onset_f1": real.get("foley_onset_f1_real"), "contact_f1_generate": real.get("contact_f1_real"),
           "av_align_generate": real.get("av_align_real"), "colour_generate": real.get("colour_real"),
           "material_generate": real.get("material_real")}
    rows.append(["real clips (reference)", "-"] + _cells(ref, TABLE1_COLS))
    head = (f"{res['n']} clips of `{res['clips']}`, the same seeds in every row, default settings but gamma "
            f"({d['solver']}, {d['steps']} steps, text guidance {d['cfg_video']:g} / {d['cfg_audio']:g}); foley "
            f"re-sounds the clips' own videos, generate makes new ones from their captions. Both connectors are "
            f"twins: fresh cross-modal blocks on the same frozen bases, the same onset pretext and joint recipe "
            f"and seeds. A cell says better or worse only where it differs from the CMC-PE default row by more than that row "
            f"and its repeat with other seeds differ. Produced by `{res['command']}` "
            f"(`benchmarks/results/table1_v2.json`).")
    return "\n".join([head, "", _table(["connector", "gamma"] + [c for _, c, _ in TABLE1_COLS], rows)]) + "\n" + \
        detector_note(*res["rows"])


def vae_decoder_section(res: dict) -> str:
    """benchmarks/vae_decoder.py: the video autoencoder's reconstruction and animate's first frame, by bundle."""
    iters = [f["iterations"] for f in res["rows"][0]["first_frame"]]
    head = ["video decoder", "same encoder", "PSNR all frames (dB)", "PSNR moving object (dB)"]
    with_colour = any(r.get("colour_adherence") for r in res["rows"])
    if with_colour:
        head.append("colour of reconstructions")
    head += [("first frame, encoder latent (dB)" if n == 0 else f"first frame, fitted {n} (dB)") for n in iters]
    rows = []
    for r in res["rows"]:
        cells = [r["label"], "yes" if r.get("same_encoder_as_first_row") else "no",
                 _f(r["psnr_all_frames_db"], ".2f"), _f(r.get("psnr_moving_pixels_db"), ".2f")]
        if with_colour:
            c = r.get("colour_adherence") or {}
            cells.append(f"{c['reconstructed']:.0%} (clips: {c['real']:.0%})" if c else "-")
        fit = {f["iterations"]: f["psnr_db"] for f in r["first_frame"]}
        rows.append(cells + [_f(fit.get(n), ".2f") for n in iters])
    text = (f"{res['n']} held-out clips (`{res['test']}`) at the bundle's size: every frame through encoder and "
            f"decoder, and each clip's first frame as `avgen animate --image` makes it (the encoder's latent, then "
            f"L-BFGS through the decoder). Produced by `{res['command']}` (`benchmarks/results/vae_decoder.json`).")
    if with_colour:
        text += (" The colour column is the prompt-adherence classifier on the reconstructions, with the clips "
                 "themselves at the same size in brackets.")
    return "\n".join([text, "", _table(head, rows)]) + "\n"


def _edit(r: dict) -> str:
    if not r["edit"]:
        return "shipped"
    return ", ".join(f"{k.split('.', 1)[-1] if k.startswith('sampling') else k} = {v}" for k, v in r["edit"].items())


def clamp_study_section(res: dict) -> str:
    """benchmarks/clamp_study.py: foley onsets against the solver, steps and the schedules' x0 clamp."""
    lines = [f"`avgen foley` on {res['n']} clips per row, scored against the true impacts (+-1 frame). Produced by "
             f"`{res['command']}` (`benchmarks/results/clamp_study.json`). test = the first {res['n']} held-out "
             f"clips with the steps sweep's seeds; val = {res['n']} clips of their own (synth seed 2), where the "
             f"clamp range is chosen.", ""]
    foley = [r for r in res["rows"] if "contact_f1_generate" not in r]
    gen = [r for r in res["rows"] if "contact_f1_generate" in r]
    rows = [[r["clips"], f"{r['solver']} {r['steps']}", _edit(r), _f(r["foley_onset_f1"], ".3f"),
             _f(r["foley_onset_precision"], ".3f"), _f(r["foley_onset_recall"], ".3f"), _f(r["fd_logmel_foley"])]
            for r in foley]
    lines.append(_table(["clips", "solver, steps", "sampling change", "foley onset F1", "precision", "recall",
                         "FD-logmel"], rows))
    if gen:
        lines += ["", f"`avgen generate` from the same {res['n']} val clips' captions (seed = index), the video "
                  f"clamp varied; contacts = the sound's onsets against the contacts seen in its own frames (real "
                  f"clips: {gen[0]['contact_f1_real']:.3f}).", ""]
        rows = [[r["clips"], _edit(r), _f(r["contact_f1_generate"], ".3f"), _f(100 * r["colour_generate"], ".0f") +
                 " %", _f(100 * r["material_generate"], ".0f") + " %", _f(r["av_align_generate"], ".3f"),
                 _f(r["fd_logmel_generate"]), _f(r["fd_colourflow_generate"], ".0f")] for r in gen]
        lines.append(_table(["clips", "sampling change", "generate: onsets vs contacts", "colour", "material",
                             "AV-Align", "FD-logmel", "FD-colourflow"], rows))
    return "\n".join(lines) + "\n" + detector_note(res)


def ort_tuning_section(res: dict) -> str:
    lines = [f"Produced by `{res['command']}` (`benchmarks/results/ort_tuning.json`): ms per U-Net call at the "
             f"sampler's CFG batch, median of {res['rounds']} interleaved rounds, onnxruntime {res['onnxruntime']}, "
             f"{res['logical_cpus']} logical CPUs; busy = a busy loop in another process for the whole round.", ""]
    comps = res["components"]
    labels = list(next(iter(comps.values()))["ms"]["quiet"])
    rows = []
    for lb in labels:
        row = [lb]
        for load in ("quiet", "busy"):
            for name, c in comps.items():
                m = c["ms"][load][lb]
                row.append(f"{m['ms_p50']:.1f} ({m['vs_plain_t2']:.2f}x)")
        rows.append(row)
    head = ["graph / threads"] + [f"{n} {load}" for load in ("quiet", "busy") for n in comps]
    lines.append(_table(head, rows))
    errs = "; ".join(f"{n}: " + ", ".join(f"{v} {e:.1e}" for v, e in c["max_rel_err_vs_plain"].items())
                     for n, c in comps.items())
    lines += ["", f"Fused graphs against the plain one, max error relative to the output's max: {errs}. "
              f"Fastest over both U-Nets: quiet **{res['best']['quiet']['fastest']}**, busy "
              f"**{res['best']['busy']['fastest']}**."]
    if res.get("pair"):
        pr = res["pair"]
        lines += ["", "Both U-Nets of one step (plain graphs), one after the other or at the same time "
                  "(`sample(..., pool=)`):", ""]
        lines.append(_table(["mode", "quiet ms", "busy ms"],
                            [[m, f"{pr['quiet'][m]['ms_p50']:.1f} ({pr['quiet'][m]['vs_sequential']:.2f}x)",
                              f"{pr['busy'][m]['ms_p50']:.1f} ({pr['busy'][m]['vs_sequential']:.2f}x)"]
                             for m in pr["quiet"]]))
    return "\n".join(lines) + "\n"


# README marker, JSON file in benchmarks/results/, renderer: the sections that each come from one file
ONE_FILE_SECTIONS = (
    ("onsetdetector", "onset_detector.json", onset_detector_section),
    ("fastpath", "fast_path.json", fastpath_section),
    ("vocoder", "vocoder_resynthesis.json", vocoder_section),
    ("noisefill", "noise_fill_generated.json", noise_fill_section),
    ("noisefillgenerate", "noise_fill_generate.json", noise_fill_generate_section),
    ("animatesync", "animate_sync.json", animate_sync_section),
    ("raybatch", "ray_batch.json", ray_batch_section),
    ("videoguidancefoley", "video_guidance_foley.json", video_guidance_section),
    ("vocodergenerated", "vocoder_generated.json", vocoder_generated_section),
    ("levers", "levers_v2.json", levers_section),
    ("leversshort", "levers_short.json", levers_section),
    ("leversreflected", "levers_reflected.json", levers_section),
    ("leversmaterial", "levers_material.json", levers_section),
    ("guidancesweep", "guidance_sweep.json", guidance_sweep_section),
    ("materialprobe", "material_probe.json", material_probe_section),
    ("adherenceconfusion", "adherence_confusion.json", adherence_confusion_section),
    ("colourframes", "colour_frames.json", colour_frames_section),
    ("table1v2", "table1_v2.json", table1_section),
    ("vaedecoder", "vae_decoder.json", vae_decoder_section),
    ("stepsweep", "steps_sweep.json", steps_sweep_section),
    ("clampstudy", "clamp_study.json", clamp_study_section),
    ("orttuning", "ort_tuning.json", ort_tuning_section),
    ("guidanceinterval", "guidance_interval.json", guidance_interval_section),
    ("guidancecost", "guidance_cost.json", guidance_cost_section),
    ("generatespeed", "generate_speed.json", generate_speed_section),
    ("gpu", "gpu_h200.json", gpu_section),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machine", default=None, help="results/<machine>.json to render (default: the newest)")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = ap.parse_args()
    text = args.readme.read_text()
    perf = [p for p in RESULTS.glob("*.json") if _is_perf(p)]
    if args.machine:
        perf = [RESULTS / f"{args.machine}.json"]
    if perf:
        newest = max(perf, key=lambda p: p.stat().st_mtime)
        text = replace_section(text, "perf", perf_section(json.loads(newest.read_text()), newest.with_suffix(".png")))
    if (RESULTS / "quality.json").exists():
        text = replace_section(text, "quality", quality_section(json.loads((RESULTS / "quality.json").read_text())))
    if (RESULTS / "ablation.json").exists():
        text = replace_section(text, "ablation", ablation_section(json.loads((RESULTS / "ablation.json").read_text())))
    for marker, name, section in ONE_FILE_SECTIONS:  # a README section rendered from one JSON file
        if (RESULTS / name).exists() and f"<!-- {marker}:begin -->" in text:
            text = replace_section(text, marker, section(json.loads((RESULTS / name).read_text())))
    for marker, name, section in (("guidanceintervalheldout", "guidance_interval_heldout.json",
                                   guidance_interval_section),
                                  ("videoguidancegenerate", "video_guidance_generate.json", guidance_interval_section),
                                  ("videoguidancecost", "video_guidance_cost.json", guidance_cost_section),
                                  ("colourframesvae", "colour_frames_vae_whole.json", colour_frames_section),
                                  ("pairedval2", "paired_val2.json", paired_section),
                                  ("pairedheldout", "paired_heldout.json", paired_section),
                                  ("pairedspacingval2", "paired_val2_trailing.json", paired_section),
                                  ("pairedspacingheldout", "paired_heldout_trailing.json", paired_section)):
        if (RESULTS / name).exists() and f"<!-- {marker}:begin -->" in text:  # these name their file in the text
            text = replace_section(text, marker, section(json.loads((RESULTS / name).read_text()), name))
    shipped, v2 = RESULTS / "quality_v2_shipped.json", RESULTS / "quality_v2.json"
    if shipped.exists() and v2.exists() and "<!-- v2compare:begin -->" in text:
        text = replace_section(text, "v2compare", v2_compare_section(
            list(zip(V2_ROWS, [json.loads(shipped.read_text()), json.loads(v2.read_text())]))))
    for marker, named in (("shipcheck", SHIP_ROWS), ("vocodercompare", VOCODER_ROWS),
                          ("unfreezeship", UNFREEZE_ROWS), ("unfreezevideo", UNFREEZE_VIDEO_ROWS),
                          ("shipboth", SHIP_BOTH_ROWS), ("sideship", SIDE_SHIP_ROWS), ("spacingship", SPACING_SHIP)):  # bundles side by side
        if all((RESULTS / f).exists() for _, f in named) and f"<!-- {marker}:begin -->" in text:
            text = replace_section(text, marker, v2_compare_section(
                [(name, json.loads((RESULTS / f).read_text())) for name, f in named]))
    for marker, named, clips in (("cfgaudioistft", CFG_AUDIO_ISTFT, "validation clips (`work/v2/hits-val`)"),
                                 ("cfgaudioheldout", CFG_AUDIO_HELDOUT, "held-out clips"),
                                 ("cfgaudioua", CFG_AUDIO_UA, "held-out clips"),
                                 ("unfreezevideogen", UNFREEZE_VIDEO_GEN, "held-out clips"),
                                 ("shipbothgen", SHIP_BOTH_GEN, "held-out clips"),
                                 ("sidegen", SIDE_GEN, "held-out clips"),
                                 ("weightgen", WEIGHT_GEN, "held-out clips"),
                                 ("vgintervalval", VG_INTERVAL_VAL, "validation clips (`work/v2/hits-val`)"),
                                 ("vgintervalheldout", VG_INTERVAL_HELDOUT, "held-out clips"),
                                 ("vdgen", VD_GEN, "held-out clips"),
                                 ("agval", AG_VAL, "validation clips (`work/v2/hits-val`)"),
                                 ("colourgen", COLOUR_GEN, "held-out clips"),
                                 ("colourgen12", COLOUR_GEN12, "held-out clips"),
                                 ("colourval2", COLOUR_VAL2, VAL2_CLIPS),
                                 ("spacingval2", SPACING_VAL2, VAL2_CLIPS),
                                 ("spacingheldout", SPACING_HELDOUT, "held-out clips"),
                                 ("agheldout", AG_HELDOUT, "held-out clips"),
                                 ("guidanceconfirm", GUIDANCE_CONFIRM, "held-out clips")):
        if all((RESULTS / f).exists() for _, f in named) and f"<!-- {marker}:begin -->" in text:
            text = replace_section(text, marker, guidance_confirm_section(
                [(name, json.loads((RESULTS / f).read_text())) for name, f in named], clips))
    bundle = ROOT / "avcli" / "bundles" / "hits-demo" / "bundle.json"
    if bundle.exists():
        text = replace_section(text, "training", training_section(json.loads(bundle.read_text())))
    args.readme.write_text(text)
    print(f"updated {args.readme}")


if __name__ == "__main__":
    main()
