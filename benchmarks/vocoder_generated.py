"""The vocoders a bundle can carry on *generated* mels (issue 13): the bundle's own (trained here), the pretrained
HiFi-GAN universal behind the mel adapter (`avgen train finalize --vocoder hifigan-universal`), and the vocoder of
any other bundle on the same mel (--vocoder-bundle NAME=FOLDER, e.g. the small HiFi-GAN-style one shipped before
the avgen.ISTFTVocoder).

For each of the first N held-out clips, `avgen foley` (held-out video, seed = index) and `avgen generate` (its
caption, seed = index) run once with the bundle's defaults; the mel each hands its vocoder is kept, and rendered by:
the bundle's vocoder with the bundle's noise fill (what ships) and without, HiFi-GAN with the same fill and alone,
and each --vocoder-bundle's vocoder with and without the fill. Scored:

- foley: onset F1 against the true impacts (+-1 frame at 8 fps), onsets per clip, floor and buzz before the first
  impact, and the "between impacts" level: the median 100 ms RMS outside +-150 ms of every true impact, in dB under
  the clip's loudest 100 ms (the real clips' own is the reference: the smear of a generated mel shows as a level
  well above theirs);
- generate: material adherence of the rendered sound (the quality table's classifier).

    .venv/bin/python benchmarks/vocoder_generated.py --test work/v2/hits-test --n 40 \\
        --adherence-model work/adherence.safetensors --vocoder-bundle "small HiFi-GAN-style=work/b_small"
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SR = 16000


def between_impacts_db(y: np.ndarray, events: list[float], sr: int = SR) -> float | None:
    """Median 100 ms RMS outside +-150 ms of every impact, in dB relative to the loudest 100 ms of the clip."""
    win = sr // 10
    n = len(y) // win
    if n < 3:
        return None
    rms = np.sqrt(np.mean(y[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1)) + 1e-9
    centres = (np.arange(n) + 0.5) * 0.1
    quiet = np.all(np.abs(centres[:, None] - np.asarray(events)[None, :]) > 0.15 + 0.05, axis=1)
    if not quiet.any():
        return None
    return float(20 * np.log10(np.median(rms[quiet]) / rms.max()))


def vocoders_on_the_same_mel(specs: list[str], model) -> dict:
    """--vocoder-bundle NAME=FOLDER values -> {NAME: that bundle's vocoder}, each checked to read `model`'s mel."""
    from avcli.models.bundle import load_bundle

    out = {}
    for spec in specs:
        name, _, folder = spec.partition("=")
        other = load_bundle(folder)
        if other.manifest["media"] != model.manifest["media"] or other.manifest["components"]["vocoder"].get("front_end"):
            raise SystemExit(f"{folder}: its vocoder does not read the bundle's mel")
        out[name] = other.vocoder
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--bundle", default=None, help="the bundle whose U-Nets draw the mels (default: hits-demo); its "
                                                   "vocoder must read its own mel")
    ap.add_argument("--vocoder-bundle", action="append", default=[], metavar="NAME=FOLDER",
                    help="another bundle whose vocoder (on the same mel) renders the same mels")
    ap.add_argument("--adherence-model", type=Path, required=True)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "vocoder_generated.json")
    args = ap.parse_args()

    import avcli.metrics as M
    from avcli.media.ffmpeg import read_audio
    from avcli.metrics.adherence import AdherenceModel, parse_caption
    from avcli.metrics.contact import buzz, noise_floor_db
    from avcli.models.bundle import load_bundle
    from avcli.models.hifigan import use_pretrained_vocoder
    from avcli.models.noise_fill import noise_fill
    from avcli.pipelines.common import log_mel
    from avcli.pipelines.foley import FoleyRequest
    from avcli.pipelines.generate import GenerateRequest
    from avcli.pipelines.pipeline import JointPipeline

    torch.set_num_threads(2)
    model = load_bundle(args.bundle)
    if model.manifest["components"]["vocoder"].get("front_end"):
        raise SystemExit("--bundle's vocoder must read the bundle's own mel (not the adapted HiFi-GAN)")
    others = vocoders_on_the_same_mel(args.vocoder_bundle, model)
    below = model.manifest["sampling"].get("noise_fill_below_dbfs", -40.0)
    cur = log_mel(model)
    big = copy.deepcopy(model)
    use_pretrained_vocoder(big, "universal")
    pipe = JointPipeline.from_model(model)
    voc, kept = pipe.components["vocoder"], []

    def recorder(mel):
        kept.append(mel.detach().clone())
        return voc(mel=mel)

    pipe.components["vocoder"] = recorder
    adh = AdherenceModel.load(args.adherence_model)
    caps = [json.loads(x) for x in (args.test / "captions.jsonl").read_text().splitlines() if x.strip()][: args.n]
    truth = {r["file"]: r for r in (json.loads(x) for x in (args.test / "events.jsonl").read_text().splitlines()
                                    if x.strip())}
    own = model.manifest["components"]["vocoder"]["class"].split(".")[-1]
    paths = {f"bundle's vocoder ({own}) + noise fill (shipped)": (model.vocoder, True),
             f"bundle's vocoder ({own})": (model.vocoder, False),
             "HiFi-GAN via the mel adapter + noise fill": (big.vocoder, True),
             "HiFi-GAN via the mel adapter": (big.vocoder, False)}
    for name, vocoder in others.items():
        paths[f"{name} + noise fill"] = (vocoder, True)
        paths[name] = (vocoder, False)
    keys = ("onset_f1", "onsets", "floor_db", "buzz", "between_impacts_db", "material")
    scores = {k: {m: [] for m in keys} for k in paths}
    real_between = []

    def render(mel, vocoder, fill):
        with torch.no_grad():
            w = vocoder(mel=mel).clamp(-1, 1)
            if fill:
                w = noise_fill(w, mel, cur, float(below))
        return w[0].numpy()

    for i, row in enumerate(caps):
        ev = truth[row["file"]]["events"]
        kept.clear()
        pipe.foley(args.test / row["file"], FoleyRequest(seed=i))
        foley_mel = kept[0]
        kept.clear()
        pipe.generate(GenerateRequest(row["caption"], seed=i))
        gen_mel = kept[0]
        material = parse_caption(row["caption"])[1]
        bi = between_impacts_db(read_audio(args.test / row["file"], SR), ev)
        if bi is not None:
            real_between.append(bi)
        for name, (vocoder, fill) in paths.items():
            s, y = scores[name], render(foley_mel, vocoder, fill)
            on = M.impact_onsets(y, SR)
            s["onset_f1"].append(M.onset_accuracy(on, ev, tolerance=1 / 8).f1)
            s["onsets"].append(len(on))
            fl = noise_floor_db(y, SR, ev[0])
            if fl is not None:
                s["floor_db"].append(fl)
                s["buzz"].append(buzz(y, SR, ev[0]))
            if (b := between_impacts_db(y, ev)) is not None:
                s["between_impacts_db"].append(b)
            s["material"].append(float(adh.predict_material(render(gen_mel, vocoder, fill), SR) == material))
        print(f"{i + 1}/{len(caps)}", file=sys.stderr, flush=True)
    summary = {k: {m: (float(np.mean(v)) if v else None) for m, v in s.items()} for k, s in scores.items()}
    res = {"command": "python benchmarks/vocoder_generated.py " + " ".join(sys.argv[1:]), "clips": len(caps),
           "real_between_impacts_db": float(np.mean(real_between)), "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
