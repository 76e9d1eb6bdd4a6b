"""Which vocoder for demo v2 (issue 13)? Real audio -> each vocoder's own mel front end -> the vocoder -> audio,
on held-out clips of the synthetic domain, scored at a common 16 kHz against the original:

- multi-resolution STFT distance (mean L1 of log magnitudes, FFT 512/1024/2048, hop 1/4), lower is better;
- mel L1 (the current bundle's 64-band log-mel of both signals);
- onset F1 against the true impact times (+-1 video frame at 8 fps), next to the original's own;
- noise floor: RMS (dBFS) of the stretch before the first impact (at least 0.3 s of it), next to the original's.

A third row sends the current bundle's mel through its audio VAE (encode, decode) before its vocoder: what the
generated soundtracks' path adds beyond the vocoder itself.

    .venv/bin/python benchmarks/vocoder_resynthesis.py --test work/v2/hits-test --n 30
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
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
    ap.add_argument("--bundle", default=None, help="the bundle whose vocoder is 'current' (default: hits-demo)")
    ap.add_argument("--noise-fill", type=float, default=-40.0,
                    help="the 'noise fill' rows' threshold (dBFS; sampling.noise_fill_below_dbfs)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "vocoder_resynthesis.json")
    args = ap.parse_args()

    import avcli.metrics as M
    from avcli.metrics.contact import buzz, noise_floor_db
    from avcli.models.noise_fill import noise_fill
    from avcli.media.ffmpeg import read_audio
    from avcli.models.bundle import load_bundle
    from avcli.models.hifigan import MEDIA, load_hifigan
    from avcli.models.mel import LogMel
    from avcli.pipelines.common import denormalize_mel, log_mel, normalize_mel

    model = load_bundle(args.bundle)
    cur_mel = log_mel(model)
    cur_sr = int(model.manifest["media"]["sample_rate"])
    m = MEDIA
    hifi_mel = LogMel(m["sample_rate"], m["n_fft"], m["hop_length"], m["win_length"], m["n_mels"], m["f_min"],
                      m["f_max"], m["mel_scale"], m["log_floor"])
    hifi = load_hifigan("universal")
    vocoders = {"current (hits-demo, 16 kHz, 64 mels)": (cur_sr, cur_mel, model.vocoder),
                "HiFi-GAN V1 universal (22.05 kHz, 80 mels)": (m["sample_rate"], hifi_mel, hifi)}
    rows = [json.loads(line) for line in (args.test / "events.jsonl").read_text().splitlines() if line.strip()]
    rows = rows[: args.n]
    nf = f"current + noise fill below {args.noise_fill:g} dBFS"
    nf_vae = f"current VAE + vocoder + noise fill below {args.noise_fill:g} dBFS"
    scores: dict[str, dict[str, list]] = {k: {"mr_stft": [], "mel_l1": [], "onset_f1": [], "floor_db": [],
                                              "buzz": []}
                                          for k in ["original", *vocoders, nf, "current VAE + vocoder", nf_vae]}
    with torch.no_grad():
        for r in rows:
            orig = read_audio(args.test / r["file"], SR)
            ref_mel = cur_mel(torch.from_numpy(orig)[None])[0]
            outs = {"original": orig}
            lat = model.audio_vae_encoder(mel=normalize_mel(model, ref_mel[None, None]))
            vae_mel = denormalize_mel(model, model.audio_vae_decoder(latent=lat)[:, 0])
            vae_wav = model.vocoder(mel=vae_mel).clamp(-1, 1)
            outs["current VAE + vocoder"] = vae_wav[0].numpy()[: len(orig)]
            outs[nf_vae] = noise_fill(vae_wav, vae_mel, cur_mel, args.noise_fill)[0].numpy()[: len(orig)]
            cur_wav = model.vocoder(mel=ref_mel[None]).clamp(-1, 1)
            outs[nf] = noise_fill(cur_wav, ref_mel[None], cur_mel, args.noise_fill)[0].numpy()[: len(orig)]
            for name, (sr, front, voc) in vocoders.items():
                x = _resample(orig, SR, sr)
                mel = front(torch.from_numpy(x)[None])  # (1, T, M) natural-log mel
                y = voc(mel)[0].numpy() if name.startswith("HiFi") else voc(mel=mel)[0].numpy()
                outs[name] = _resample(np.clip(y, -1, 1), sr, SR)[: len(orig)]
            for name, y in outs.items():
                y = np.pad(y, (0, max(0, len(orig) - len(y))))
                s = scores[name]
                s["mr_stft"].append(mr_stft(orig, y))
                s["mel_l1"].append(float((cur_mel(torch.from_numpy(y)[None])[0] - ref_mel).abs().mean()))
                s["onset_f1"].append(M.onset_accuracy(M.impact_onsets(y, SR), r["events"], tolerance=1 / 8).f1)
                fl = noise_floor_db(y, SR, r["events"][0])
                if fl is not None:
                    s["floor_db"].append(fl)
                    s["buzz"].append(buzz(y, SR, r["events"][0]))
    summary = {k: {m_: (float(np.mean(v)) if v else None) for m_, v in s.items()} for k, s in scores.items()}
    from avcli.metrics.onsets import IMPACT_ONSET_DETECTOR

    res = {"command": "python benchmarks/vocoder_resynthesis.py " + " ".join(sys.argv[1:]), "clips": len(rows),
           "floor_clips": len(scores["original"]["floor_db"]), "onset_detector": IMPACT_ONSET_DETECTOR,
           "summary": summary}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
