"""Which vocoder for demo v2 (issue 13)? Real audio -> a mel -> a vocoder -> audio, on held-out clips of the
synthetic domain, scored at a common 16 kHz against the original:

- multi-resolution STFT distance (mean L1 of log magnitudes, FFT 512/1024/2048, hop 1/4), lower is better;
- mel L1 (the bundle's 64-band log-mel of both signals);
- onset F1 against the true impact times (+-1 video frame at 8 fps), next to the original's own;
- noise floor: RMS (dBFS) of the stretch before the first impact (at least 0.3 s of it), and its buzz;
- material kept (with --adherence-model): the share of clips whose sound the material classifier of the quality
  table (avcli/metrics/adherence.py) still gives the clip's true material. A vocoder that turns every ringing
  metal or glass strike into a dull knock caps generate's material adherence, whatever the U-Net draws.

Rows: the small vocoder trained here (from --small-bundle, a bundle whose vocoder reads the bundle's mel), the
pretrained HiFi-GAN V1 universal on its own 22.05 kHz, 80-band mel, the same behind the MelAdapter from the
bundle's 64-band mel (avcli/models/mel_adapter.py: what a bundle finalized with `--vocoder hifigan-universal`
runs), and the audio VAE round trip (encode, decode) before each of the two vocoders a bundle can carry, with and
without noise filling.

    .venv/bin/python benchmarks/vocoder_resynthesis.py --test work/v2/hits-test --n 60 \
        --adherence-model work/adherence.safetensors

With a bundle already finalized with the adapted HiFi-GAN as --bundle, name the small one's with --small-bundle.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SR = 16000


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    from scipy.signal import resample_poly

    if sr_in == sr_out:
        return x.astype(np.float32)
    g = math.gcd(sr_in, sr_out)
    return resample_poly(x.astype(np.float64), sr_out // g, sr_in // g).astype(np.float32)


def mr_stft(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = torch.from_numpy(a[:n]), torch.from_numpy(b[:n])
    out = []
    for fft in (512, 1024, 2048):
        w = torch.hann_window(fft)
        sa = torch.stft(a, fft, fft // 4, window=w, return_complex=True).abs().clamp(min=1e-5).log()
        sb = torch.stft(b, fft, fft // 4, window=w, return_complex=True).abs().clamp(min=1e-5).log()
        out.append(float((sa - sb).abs().mean()))
    return float(np.mean(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--bundle", default=None, help="the bundle whose mel, audio VAE and (adapted) HiFi-GAN are used "
                                                    "(default: hits-demo)")
    ap.add_argument("--small-bundle", default=None,
                    help="a bundle whose own vocoder reads its mel (the small one trained here); default: --bundle "
                         "when its vocoder has no front end of its own")
    ap.add_argument("--noise-fill", type=float, default=-40.0,
                    help="the 'noise fill' rows' threshold (dBFS; sampling.noise_fill_below_dbfs)")
    ap.add_argument("--vocoder-bundle", action="append", default=[], metavar="NAME=FOLDER",
                    help="another bundle whose vocoder reads the same mel (e.g. the avgen.ISTFTVocoder): one more row, "
                         "direct and after the audio VAE")
    ap.add_argument("--adherence-model", type=Path, default=None, help="material classifier (quality.py's)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "vocoder_resynthesis.json")
    args = ap.parse_args()

    import copy

    import avcli.metrics as M
    from avcli.metrics.adherence import AdherenceModel
    from avcli.metrics.contact import buzz, noise_floor_db
    from avcli.models.noise_fill import noise_fill
    from avcli.media.ffmpeg import read_audio
    from avcli.models.bundle import load_bundle
    from avcli.models.hifigan import MEDIA, load_hifigan, use_pretrained_vocoder
    from avcli.models.mel import LogMel
    from avcli.pipelines.common import denormalize_mel, log_mel, normalize_mel
    from vocoder_generated import vocoders_on_the_same_mel

    torch.set_num_threads(2)
    model = load_bundle(args.bundle)
    adapted = model if model.manifest["components"]["vocoder"].get("front_end") else None
    if args.small_bundle:
        small = load_bundle(args.small_bundle).vocoder
    elif adapted is None:
        small = model.vocoder
    else:
        raise SystemExit("--bundle's vocoder is the adapted HiFi-GAN: name the small one's bundle with --small-bundle")
    if adapted is None:
        adapted = copy.deepcopy(model)
        use_pretrained_vocoder(adapted, "universal")
    big = adapted.vocoder
    others = vocoders_on_the_same_mel(args.vocoder_bundle, model)
    cur_mel = log_mel(model)
    m = MEDIA
    hifi_mel = LogMel(m["sample_rate"], m["n_fft"], m["hop_length"], m["win_length"], m["n_mels"], m["f_min"],
                      m["f_max"], m["mel_scale"], m["log_floor"])
    hifi = load_hifigan("universal")
    adh = AdherenceModel.load(args.adherence_model) if args.adherence_model else None
    rows = [json.loads(line) for line in (args.test / "events.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: args.n]
    nf = f" + noise fill below {args.noise_fill:g} dBFS"
    own = (load_bundle(args.small_bundle) if args.small_bundle else model).manifest["components"]["vocoder"]["class"]
    small_name = {"avgen.ISTFTVocoder": "ISTFT vocoder trained here (16 kHz, 64 mels)"}.get(
        own, "small vocoder trained here (16 kHz, 64 mels)")
    big_name = "HiFi-GAN V1 universal via the mel adapter"
    names = ["original", small_name, small_name + nf, "HiFi-GAN V1 universal, its own mel (22.05 kHz, 80 mels)",
             big_name, big_name + nf, "audio VAE + " + small_name, "audio VAE + " + small_name + nf,
             "audio VAE + " + big_name, "audio VAE + " + big_name + nf]
    for name in others:
        names += [name, name + nf, "audio VAE + " + name, "audio VAE + " + name + nf]
    scores: dict[str, dict[str, list]] = {k: {"mr_stft": [], "mel_l1": [], "onset_f1": [], "floor_db": [],
                                              "buzz": [], "material_kept": []} for k in names}
    with torch.no_grad():
        for r in rows:
            orig = read_audio(args.test / r["file"], SR)
            ref_mel = cur_mel(torch.from_numpy(orig)[None])  # (1, T, M)
            lat = model.audio_vae_encoder(mel=normalize_mel(model, ref_mel[:, None]))
            vae_mel = denormalize_mel(model, model.audio_vae_decoder(latent=lat)[:, 0])
            outs = {"original": torch.from_numpy(orig)[None]}
            for prefix, mel in (("", ref_mel), ("audio VAE + ", vae_mel)):
                for name, voc in ((small_name, small), (big_name, big), *others.items()):
                    wav = voc(mel=mel).clamp(-1, 1)
                    outs[prefix + name] = wav
                    outs[prefix + name + nf] = noise_fill(wav, mel, cur_mel, args.noise_fill)
            x = _resample(orig, SR, m["sample_rate"])
            y = hifi(hifi_mel(torch.from_numpy(x)[None]))[0].numpy()
            outs[names[3]] = torch.from_numpy(_resample(np.clip(y, -1, 1), m["sample_rate"], SR))[None]
            for name, wav in outs.items():
                y = wav[0].numpy()[: len(orig)]
                y = np.pad(y, (0, max(0, len(orig) - len(y))))
                s = scores[name]
                s["mr_stft"].append(mr_stft(orig, y))
                s["mel_l1"].append(float((cur_mel(torch.from_numpy(y)[None])[0] - ref_mel[0]).abs().mean()))
                s["onset_f1"].append(M.onset_accuracy(M.impact_onsets(y, SR), r["events"], tolerance=1 / 8).f1)
                fl = noise_floor_db(y, SR, r["events"][0])
                if fl is not None:
                    s["floor_db"].append(fl)
                    s["buzz"].append(buzz(y, SR, r["events"][0]))
                if adh is not None:
                    s["material_kept"].append(float(adh.predict_material(y, SR) == r["attrs"]["material"]))
    summary = {k: {m_: (float(np.mean(v)) if v else None) for m_, v in s.items()} for k, s in scores.items()}
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR

    res = {"command": shlex.join(["python", "benchmarks/vocoder_resynthesis.py", *sys.argv[1:]]), "clips": len(rows),
           "floor_clips": len(scores["original"]["floor_db"]), "onset_detector": IMPACT_ONSET_DETECTOR,
           "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
