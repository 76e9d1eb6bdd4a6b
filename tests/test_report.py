"""benchmarks/report.py: README sections are rewritten from result JSON between their markers, nothing else."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bench(ms_torch, ms_ort):
    comps = {"video_unet": {"p50_ms": 2 * ms_torch, "utilisation_pct": 40.0}}
    r = lambda ms, scale: {"step": {"ms_per_step": ms, "sampler_overhead_pct": 0.5},  # noqa: E731
                           "components": {"video_unet": {**comps["video_unet"], "p50_ms": 2 * ms}},
                           "e2e": {"stages_s": {"text": 0.1, "denoise": scale}, "total_s": 0.1 + scale},
                           "peak_rss_mb": 600.0, "config": {"steps": 4}, "flops": {"video_unet": 2e9}}
    return {"torch": r(ms_torch, 5.0), "ort": r(ms_ort, 4.0)}


def test_perf_section_ratios_and_replacement(report):
    res = {"machine": "cpu-test-2cpu", "command": "python benchmarks/run_benchmarks.py", "threads": 2,
           "machine_info": {"cpu": "Test CPU", "cpu_count": 2, "versions": {"torch": "2.13.0"}},
           "matmul_peak_gflops": 100.0, "tasks": {"generate": _bench(300.0, 200.0), "foley": _bench(90.0, 80.0)},
           "durations": [2.0, 4.0], "series": {"torch": [{"duration": 2.0, "ms_per_step": 150.0},
                                                          {"duration": 4.0, "ms_per_step": 300.0}]},
           "fits": {"torch": {"k": 1.0}}, "sweep_preset": "demo"}
    text = report.perf_section(res, None)
    assert "| generate | ort | 200.0 | 1.50x |" in text  # speed-up taken side by side from the same run
    assert "| foley | torch | 90.0 | 1.00x | 0.30 |" in text  # foley step / generate step, same backend
    assert "| video_unet | 2.00 | 600.0 | 40 % | 400.0 | 40 % | 1.50x |" in text
    assert "| torch | 150.0 | 300.0 | 1.00 |" in text
    readme = "intro\n<!-- perf:begin -->\nold\n<!-- perf:end -->\noutro\n"
    out = report.replace_section(readme, "perf", text)
    assert out.startswith("intro\n<!-- perf:begin -->\n") and out.endswith("<!-- perf:end -->\noutro\n")
    assert "old" not in out and report.replace_section(out, "perf", text) == out
    with pytest.raises(SystemExit):
        report.replace_section("no markers", "perf", text)


@pytest.mark.parametrize("name,render,files", [
    ("quality", "quality_section", ["quality.json"]),
    ("v2compare", None, ["quality_v2_shipped.json", "quality_v2.json"]),
    ("levers", "levers_section", ["levers_v2.json"]),
    ("shipcheck", None, ["quality_ship_parent40.json", "quality_ship_parent40_seeds1000.json",
                         "quality_ship_dropout40.json"]),
    ("stepsweep", "steps_sweep_section", ["steps_sweep.json"]),
    ("orttuning", "ort_tuning_section", ["ort_tuning.json"]),
    ("clampstudy", "clamp_study_section", ["clamp_study.json"]),
    ("leversshort", "levers_section", ["levers_short.json"]),
    ("leversmaterial", "levers_section", ["levers_material.json"]),
    ("adherenceconfusion", "adherence_confusion_section", ["adherence_confusion.json"]),
    ("colourframes", "colour_frames_section", ["colour_frames.json"]),
    ("colourframesvae", None, ["colour_frames_vae_whole.json"]),
    ("pairedval2", None, ["paired_val2.json"]),
    ("colourval2", None, ["quality_val2_shipped.json", "quality_val2_unet_video1500.json",
                          "quality_val2_video_unet_soup_shipped_unet_video1500.json",
                          "quality_val2_video_unet_soup_seeds21_22.json",
                          "quality_val2_video_unet_soup_shipped_seeds21_22.json",
                          "quality_val2_unet_video3000.json", "quality_val2_cfg_video8.json",
                          "quality_val2_unet_video1500_cfg_video8.json"]),
    ("pairedheldout", None, ["paired_heldout.json"]),
    ("colourgen12", None, ["quality_heldout_vgi08.json", "quality_heldout_picture_without_sound.json",
                           "quality_heldout_wide_video_unet_64_96_6000.json", "quality_heldout_unet_video1500_fg0.json",
                           "quality_heldout_vae_video_whole2500.json",
                           "quality_heldout_vae_video_whole2500_unet_video1500.json",
                           "quality_heldout_vae_video_whole2500_unet_video4500.json",
                           "quality_heldout_vae_video_whole2500_unet_video4500_joint_video400.json",
                           "quality_heldout_unet_video1500_colours_weighted3.json",
                           "quality_heldout_video_unet_soup_shipped_unet_video1500.json",
                           "quality_heldout_unet_video1500_cfg_video8.json"]),
    ("unfreezeship", None, ["quality_2026-12-05.json", "quality_2026-12-06.json"]),
    ("shipboth", None, ["quality_2026-12-06.json", "quality_unfreeze_audio1200.json", "quality_2026-12-06b.json"]),
    ("shipbothgen", None, ["quality_2026-12-06.json", "quality_unfreeze_audio1200.json",
                           "quality_unet_video3000.json", "quality_2026-12-06b.json",
                           "quality_ship_then_joint400.json"]),
    ("sideship", None, ["quality_2026-12-06b.json", "quality_2026-12-06c.json",
                        "quality_ship_audio_side800.json"]),
    ("sidegen", None, ["quality_2026-12-06b.json", "quality_ship_then_joint400.json",
                       "quality_ship_audio_side400.json", "quality_2026-12-06c.json",
                       "quality_ship_audio_side800.json",
                       "quality_ship_cfg_audio4.5.json", "quality_ship_unet_video3000more.json",
                       "quality_unet_video3000more_audio_side800.json", "quality_ship_audio_side400x2.json"]),
    ("weightgen", None, ["quality_2026-12-06c.json", "quality_ship_audio_side400x2.json",
                         "quality_ship_metal_weight3.json", "quality_ship_metal_weight5.json"]),
    ("vgintervalval", None, ["quality_val_vg_default.json", "quality_val_vgi08.json", "quality_val_vgi06.json",
                               "quality_val_vgi04.json"]),
    ("vgintervalheldout", None, ["quality_2026-12-06c.json", "quality_heldout_vgi08.json",
                                   "quality_heldout_vgi06.json", "quality_heldout_vgi04.json",
                                   "quality_heldout_vg1.json"]),
    ("vdgen", None, ["quality.json", "quality_ship_audio_side400x2_vgi08.json",
                     "quality_ship_video_dropout02_vgi08.json", "quality_ship_unet_audio600_metal3_vgi08.json"]),
    ("agval", None, ["quality_val_vgi08.json", "quality_val_ag8.json", "quality_val_ag6.json", "quality_val_ag4.json",
                     "quality_val_ag1.json"]),
    ("agheldout", None, ["quality_heldout_vgi08.json", "quality_heldout_ag8.json", "quality_heldout_ag6.json"]),
    ("colourgen", None, ["quality_heldout_vgi08.json", "quality_heldout_picture_without_sound.json",
                         "quality_heldout_cfg_video_rescale07.json", "quality_heldout_unet_video1500_fg0.json",
                         "quality_heldout_unet_video1500_fg8.json"]),
    ("fastpath", "fastpath_section", ["fast_path.json"]),
    ("vocoder", "vocoder_section", ["vocoder_resynthesis.json"]),
    ("noisefill", "noise_fill_section", ["noise_fill_generated.json"]),
    ("noisefillgenerate", "noise_fill_generate_section", ["noise_fill_generate.json"]),
    ("onsetdetector", "onset_detector_section", ["onset_detector.json"]),
    ("guidancesweep", "guidance_sweep_section", ["guidance_sweep.json"]),
    ("table1v2", "table1_section", ["table1_v2.json"]),
    ("vaedecoder", "vae_decoder_section", ["vae_decoder.json"]),
    ("gpu", "gpu_section", ["gpu_h200.json"]),
    ("guidanceinterval", "guidance_interval_section", ["guidance_interval.json"]),
    ("guidanceintervalheldout", None, ["guidance_interval_heldout.json"]),
    ("guidancecost", "guidance_cost_section", ["guidance_cost.json"]),
    ("videoguidancefoley", "video_guidance_section", ["video_guidance_foley.json"]),
    ("videoguidancegenerate", None, ["video_guidance_generate.json"]),
    ("videoguidancecost", None, ["video_guidance_cost.json"]),
    ("guidanceconfirm", None, ["quality_cfg_v7.5_a2.5.json", "quality_cfg_audio5.json", "quality_cfg_audio7.5.json",
                               "quality_cfg_v4_a5.json", "quality_cfg_v4_a2.5.json"]),
    ("cfgaudioheldout", None, ["quality_istft_2026-12-05.json", "quality_heldout_a3i41.json",
                               "quality_heldout_a5i41.json"]),
    ("cfgaudioua", None, ["quality_2026-12-06.json", "quality_heldout_ua_a5i41.json"]),
    ("unfreezevideo", None, ["quality_2026-12-06.json", "quality_unfreeze_video600.json"]),
    ("unfreezevideogen", None, ["quality_2026-12-06.json", "quality_unfreeze_video600.json",
                                "quality_unfreeze_video1200.json"]),
    ("cfgaudioistft", None, ["quality_istft_val_default.json", "quality_istft_val_a2.5.json",
                             "quality_istft_val_a5.json", "quality_istft_val_unet_audio_ft.json",
                             "quality_istft_val_v8.json", "quality_istft_val_v10.json", "quality_istft_val_vg1.json",
                             "quality_istft_val_a5i04.json", "quality_istft_val_a5i41.json",
                             "quality_istft_val_a5i51.json", "quality_istft_val_a5i61.json",
                             "quality_istft_val_a5i81.json", "quality_istft_val_a3i41.json",
                             "quality_istft_val_a7.5i61.json", "quality_istft_val_a5i41r7.json"]),
    ("generatespeed", "generate_speed_section", ["generate_speed.json"]),
    ("materialprobe", "material_probe_section", ["material_probe.json"]),
])
def test_readme_quality_sections_are_what_the_committed_json_renders(report, name, render, files):
    """The README's quality numbers come from the committed JSON: rendering it again changes nothing."""
    import json
    import re

    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", readme, re.S)
    assert block, f"README has no {name} section"
    data = [json.loads((report.RESULTS / f).read_text()) for f in files]
    # sections that put bundles (or settings) side by side: the report's own row list names each row
    compare = {"unfreezevideo": report.UNFREEZE_VIDEO_ROWS, "shipcheck": report.SHIP_ROWS,
               "unfreezeship": report.UNFREEZE_ROWS, "shipboth": report.SHIP_BOTH_ROWS,
               "sideship": report.SIDE_SHIP_ROWS}
    generate = {"guidanceconfirm": report.GUIDANCE_CONFIRM, "cfgaudioheldout": report.CFG_AUDIO_HELDOUT,
                "unfreezevideogen": report.UNFREEZE_VIDEO_GEN, "cfgaudioua": report.CFG_AUDIO_UA,
                "cfgaudioistft": report.CFG_AUDIO_ISTFT, "shipbothgen": report.SHIP_BOTH_GEN,
                "sidegen": report.SIDE_GEN, "weightgen": report.WEIGHT_GEN,
                "vgintervalval": report.VG_INTERVAL_VAL, "vgintervalheldout": report.VG_INTERVAL_HELDOUT,
                "vdgen": report.VD_GEN, "agval": report.AG_VAL, "agheldout": report.AG_HELDOUT,
                "colourgen": report.COLOUR_GEN, "colourgen12": report.COLOUR_GEN12, "colourval2": report.COLOUR_VAL2}
    rows = compare.get(name) or generate.get(name)
    if rows:
        assert [f for _, f in rows] == files  # the README renders exactly these files
    if name == "v2compare":
        text = report.v2_compare_section(list(zip(report.V2_ROWS, data)))
    elif name in compare:
        text = report.v2_compare_section([(n, d) for (n, _), d in zip(rows, data)])
    elif name in generate:
        clips = ("validation clips (`work/v2/hits-val`)" if name in ("cfgaudioistft", "vgintervalval", "agval")
                 else report.VAL2_CLIPS if name == "colourval2" else "held-out clips")
        text = report.guidance_confirm_section([(n, d) for (n, _), d in zip(rows, data)], clips)
    elif name in ("guidanceintervalheldout", "videoguidancegenerate"):
        text = report.guidance_interval_section(data[0], files[0])
    elif name == "videoguidancecost":
        text = report.guidance_cost_section(data[0], files[0])
    elif name == "colourframesvae":
        text = report.colour_frames_section(data[0], files[0])
    elif name in ("pairedval2", "pairedheldout"):
        text = report.paired_section(data[0], files[0])
    else:
        text = getattr(report, render)(data[0])
    assert block.group(1) == text


def test_steps_sweep_noise_band_and_settings():
    """benchmarks/steps_sweep.py: the default row comes first and once, the noise row repeats the default with other
    seeds, and a setting is within noise when it is no worse than the default by more than the seed-to-seed gap,
    in each metric's own direction (higher F1 is better, lower FD is better)."""
    spec = importlib.util.spec_from_file_location("steps_sweep", ROOT / "benchmarks" / "steps_sweep.py")
    sw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sw)
    rows = sw.settings(["ddim", "dpmpp2m"], [8, 25], ("ddim", 25))
    assert [r["label"] for r in rows] == ["ddim-25", "ddim-8", "dpmpp2m-8", "dpmpp2m-25", "ddim-25-seeds1000"]
    assert rows[-1]["noise_run"] and rows[-1]["seed_offset"] == sw.NOISE_SEED_OFFSET
    base = {"foley_onset_f1": 0.60, "fd_logmel_generate": 100.0}
    noise = {"foley_onset_f1": 0.58, "fd_logmel_generate": 110.0}  # band: 0.02 in F1, 10 in FD
    assert sw.within_noise({"foley_onset_f1": 0.585, "fd_logmel_generate": 109.0}, base, noise) == {
        "foley_onset_f1": True, "fd_logmel_generate": True}
    assert sw.within_noise({"foley_onset_f1": 0.57, "fd_logmel_generate": 111.0}, base, noise) == {
        "foley_onset_f1": False, "fd_logmel_generate": False}
    # better than the default by any margin is within noise
    assert all(sw.within_noise({"foley_onset_f1": 0.9, "fd_logmel_generate": 10.0}, base, noise).values())


def test_animate_rows_scored_by_another_classifier_are_marked(report):
    """RelSync depends on the classifier that scored it: a row kept from a run with another training of it is
    marked, and the note says so; rows of the current classifier are not."""
    row = {"eta": None, "relsync": 0.1, "p_align": 0.3, "alignsync": 0.03, "first_frame_psnr_db": None, "image": False}
    a = {"command": "x", "clips": 2, "sync_model_sha256": "new",
         "sync_classifier": {"train_clips": 3, "steps": 4, "clips": 2, "accuracy": 1.0, "chance": 0.2},
         "image_audio": {"steps": 4, "clips": 2, "accuracy": 0.5, "chance": 0.5},
         "rows": [{**row, "row": "today", "scored_with": "new"}, {**row, "row": "kept", "scored_with": "old"},
                  {**row, "row": "older"}]}
    text = report.animate_sync_section(a)
    assert "| today | -" in text and "| kept † |" in text and "| older † |" in text and "† scored by" in text
    a["rows"] = a["rows"][:1]
    assert "†" not in report.animate_sync_section(a)


def test_guidance_sweep_rows_and_noise_verdicts():
    """benchmarks/guidance_sweep.py: one scale changes per row (the other at the bundle's default), the noise row
    repeats the default with other seeds, and a row is better or worse only past the seed-to-seed gap, in each
    metric's own direction."""
    spec = importlib.util.spec_from_file_location("guidance_sweep", ROOT / "benchmarks" / "guidance_sweep.py")
    gs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gs)
    rows = gs.settings((7.5, 2.5), [4.0, 7.5, 12.0], [1.0, 2.5, 5.0], [(4.0, 5.0), (7.5, 2.5)])
    assert [(r["cfg_video"], r["cfg_audio"]) for r in rows] == [(7.5, 2.5), (4.0, 2.5), (12.0, 2.5), (7.5, 1.0),
                                                                 (7.5, 5.0), (4.0, 5.0), (7.5, 2.5)]
    assert rows[5]["label"] == "v4-a5"
    assert [r["label"] for r in rows][:2] == ["v7.5-a2.5", "v4-a2.5"] and rows[-1]["label"] == "v7.5-a2.5-seeds1000"
    assert rows[-1]["noise_run"] and rows[-1]["seed_offset"] == gs.NOISE_SEED_OFFSET and "noise_run" not in rows[0]
    base = {"colour_generate": 0.60, "fd_logmel_generate": 100.0}
    noise = {"colour_generate": 0.55, "fd_logmel_generate": 110.0}  # band: 0.05 in colour, 10 in FD
    assert gs.beyond_noise({"colour_generate": 0.70, "fd_logmel_generate": 85.0}, base, noise) == {
        "colour_generate": "better", "fd_logmel_generate": "better"}
    assert gs.beyond_noise({"colour_generate": 0.50, "fd_logmel_generate": 115.0}, base, noise) == {
        "colour_generate": "worse", "fd_logmel_generate": "worse"}
    assert gs.beyond_noise({"colour_generate": 0.64, "fd_logmel_generate": 95.0}, base, noise) == {
        "colour_generate": "same", "fd_logmel_generate": "same"}


def test_gamma_sweep_rows_and_foley_verdicts():
    """benchmarks/gamma_sweep.py: the bundle's gamma first and once, the noise row last with other seeds, and the
    foley columns are judged in their own direction (higher onset F1 is better) beside the generate columns."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("gamma_sweep", ROOT / "benchmarks" / "gamma_sweep.py")
    gm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gm)
    rows = gm.settings(1.5, [1.0, 1.5, 2.0])
    assert [r["label"] for r in rows] == ["g1.5", "g1", "g2", "g1.5-seeds1000"]
    assert rows[-1]["noise_run"] and rows[-1]["gamma"] == 1.5 and rows[-1]["seed_offset"] == 1000
    assert {r["connector"] for r in rows} == {"cmcpe"}
    # Table 1: the cross-attention twin's rows come before the noise row, each under its own label and connector
    rows = gm.settings(1.5, [1.0, 2.0], [1.0, 1.5])
    assert [(r["label"], r["connector"], r["gamma"]) for r in rows] == [
        ("g1.5", "cmcpe", 1.5), ("g1", "cmcpe", 1.0), ("g2", "cmcpe", 2.0), ("xattn-g1", "xattn", 1.0),
        ("xattn-g1.5", "xattn", 1.5), ("g1.5-seeds1000", "cmcpe", 1.5)]
    assert len({r["label"] for r in rows}) == len(rows)  # one work folder per row
    q = {"onsets_foley": {"f1": 0.7}, "av_align_foley": {"seed000": 0.3}, "adherence_generate": {"colour": 0.6},
         "onsets_real": {"f1": 0.97}}
    s = gm.summarize(q)
    assert s["foley_onset_f1"] == 0.7 and s["colour_generate"] == 0.6 and s["foley_onset_f1_real"] == 0.97
    assert s["material_generate"] is None
    metrics = {**gm.METRICS, **gm.FOLEY}
    base, noise = {"foley_onset_f1": 0.70}, {"foley_onset_f1": 0.68}
    assert gm.beyond_noise({"foley_onset_f1": 0.60}, base, noise, metrics) == {"foley_onset_f1": "worse"}
    assert gm.beyond_noise({"foley_onset_f1": 0.75}, base, noise, metrics) == {"foley_onset_f1": "better"}
    assert gm.beyond_noise({"foley_onset_f1": 0.69}, base, noise, metrics) == {"foley_onset_f1": "same"}


def test_table1_section_orders_rows_as_seed000_and_marks_verdicts(report):
    """Seed 000's Table 1 layout: the cross-attention baseline first, CMC-PE by gamma with the default marked, the
    noise row and the real clips last; a better/worse verdict shows only where the sweep found one."""
    base = {"foley_onset_f1": 0.7, "foley_av_align": 0.3, "contact_f1_generate": 0.4, "av_align_generate": 0.33,
            "fd_logmel_generate": 240.0, "fd_colourflow_generate": 900.0, "colour_generate": 0.7,
            "material_generate": 0.4, "foley_onset_f1_real": 0.97, "contact_f1_real": 0.93, "av_align_real": 0.26,
            "colour_real": 0.95, "material_real": 0.92}
    res = {"n": 40, "clips": "work/v2/hits-val", "command": "python benchmarks/gamma_sweep.py --xattn x",
           "default": {"gamma": 1.5, "steps": 25, "solver": "ddim", "cfg_video": 4.0, "cfg_audio": 2.5},
           "rows": [{**base, "connector": "cmcpe", "gamma": 1.5, "onset_detector": "impact"},
                    {**base, "connector": "cmcpe", "gamma": 1.0, "foley_onset_f1": 0.5, "onset_detector": "impact",
                     "beyond_noise": {"foley_onset_f1": "worse", "colour_generate": "same"}},
                    {**base, "connector": "xattn", "gamma": 1.0, "foley_onset_f1": 0.45, "onset_detector": "impact",
                     "beyond_noise": {"foley_onset_f1": "worse"}},
                    {**base, "connector": "cmcpe", "gamma": 1.5, "noise_run": True, "onset_detector": "impact"}]}
    lines = [ln for ln in report.table1_section(res).splitlines() if ln.startswith("| ")][1:]
    assert [ln.split(" | ")[0] for ln in lines] == ["| cross-attention (CoDi)", "| CMC-PE", "| CMC-PE (the default)",
                                                     "| CMC-PE, other seeds (noise band)", "| real clips (reference)"]
    assert lines[0].split(" | ")[2] == "0.450 (worse)" and lines[1].split(" | ")[2] == "0.500 (worse)"
    assert "(same)" not in "".join(lines) and lines[2].split(" | ")[2] == "0.700"
    assert lines[-1].split(" | ")[2] == "0.970" and lines[-1].split(" | ")[3] == "-" and "95%" in lines[-1]
    assert "Onset scores here" not in report.table1_section(res)  # today's detector: no old-detector note


def test_generate_speed_rows_and_ratios(report):
    """benchmarks/generate_speed.py: a row names a commit (code and bundle), this checkout, or a commit's code on
    another bundle; the rendered rows carry wall clock and ratio, and a stage a version did not time shows as '-'."""
    spec = importlib.util.spec_from_file_location("generate_speed", ROOT / "benchmarks" / "generate_speed.py")
    gs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gs)
    assert gs.parse_row("at filing (a1c9fe2)=a1c9fe2") == {"name": "at filing (a1c9fe2)", "ref": "a1c9fe2",
                                                           "bundle": None}
    assert gs.parse_row("now=.") == {"name": "now", "ref": ".", "bundle": None}
    assert gs.parse_row("x=HEAD~1:work/b") == {"name": "x", "ref": "HEAD~1", "bundle": "work/b"}
    for bad in ("noequals", "=ref", "name="):
        with pytest.raises(SystemExit):
            gs.parse_row(bad)
    res = {"command": "c", "repeat": 3, "threads": 2, "date": "d",
           "rows": [{"name": "old", "wall_s_median": 8.0, "vs_first": 1.0, "stages_s_median": {"denoise": 3.0}},
                    {"name": "new", "wall_s_median": 6.0, "vs_first": 0.75,
                     "stages_s_median": {"denoise": 2.5, "vocode": 0.1}}]}
    text = report.generate_speed_section(res)
    assert "| old | 8.00 | 1.00x | - | - | - | 3.00 | - | - | - |" in text
    assert "| new | 6.00 | 0.75x | - | - | - | 2.50 | - | 0.10 | - |" in text
