"""Prompt adherence for the synthetic "hits" domain: is the object the colour, and the surface the material,
that the caption asked for?

Two nearest-centroid classifiers on standardised hand-made features (no downloads, no scikit-learn):
- colour from frames: mean RGB and chromaticity of the foreground (moving pixels; for a static clip, pixels far
  from the border colour);
- material from audio: log-mel profile of the loudest frames (relative to its peak band) and its spread.
Saved as .safetensors (arrays) with the label lists in its metadata: no pickle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avcli.errors import UsageError
from avcli.metrics._audio import as_mono

COLOURS = ("red", "green", "blue", "yellow", "white", "purple", "orange")
MATERIALS = ("wood", "metal", "glass", "drum", "carpet")
# caption word (regex, matched on word boundaries) -> canonical material; "drumstick" is deliberately not "drum"
MATERIAL_SYNONYMS = {
    "wood": r"wood|wooden|timber|plank",
    "metal": r"metal|metallic|steel|iron|tin|aluminium|aluminum|brass|copper",
    "glass": r"glass|glassy|pane",
    "drum": r"drum|drums|drumhead|drum skin|snare|tom|membrane",
    "carpet": r"carpet|carpeted|rug|rugs|mat",
}
COLOUR_SYNONYMS = {"red": r"red", "green": r"green", "blue": r"blue", "yellow": r"yellow", "white": r"white",
                   "purple": r"purple|violet", "orange": r"orange"}
AUDIO_SR = 16000
N_MELS = 32
FORMAT_VERSION = "1"


def _first(caption: str, table: dict[str, str]) -> str | None:
    best = None
    for label, pattern in table.items():
        m = re.search(rf"\b(?:{pattern})\b", caption)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), label)
    return best[1] if best else None


def parse_caption(caption: str) -> tuple[str | None, str | None]:
    """(colour, material) named in a caption, canonicalised; None where it names none (first mention wins)."""
    text = caption.lower()
    return _first(text, COLOUR_SYNONYMS), _first(text, MATERIAL_SYNONYMS)


def _as_frames(frames: np.ndarray) -> np.ndarray:
    x = np.asarray(frames, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got {x.shape}")
    return x


def _moving(x: np.ndarray) -> np.ndarray:
    """(F, H, W) bool: pixels far from the clip's median frame (the static scene); all False for one frame."""
    if len(x) < 2:
        return np.zeros(x.shape[:3], dtype=bool)
    return np.abs(x - np.median(x, axis=0)).sum(-1) > 60


def _rgb_features(px: np.ndarray) -> np.ndarray:
    rgb = px.mean(0) / 255.0
    return np.concatenate([rgb, rgb / max(rgb.sum(), 1e-6)])


def colour_features(frames: np.ndarray) -> np.ndarray:
    """frames uint8 (F, H, W, 3) (or one (H, W, 3) image) -> float64 (6,): foreground mean RGB/255, chromaticity."""
    x = _as_frames(frames)
    mask = _moving(x)  # (F, H, W)
    if mask.mean() < 0.002:  # static clip: foreground = far from the (median) border colour
        border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # (F, 2W+2H, 3)
        bgc = np.median(border.reshape(-1, 3), axis=0)
        mask = np.abs(x - bgc).sum(-1) > 60
    return _rgb_features(x[mask] if mask.any() else x.reshape(-1, 3))


def frame_colour_features(frames: np.ndarray, min_pixels: int = 4) -> np.ndarray:
    """The same features frame by frame, from each frame's own moving pixels: float64 (K, 6) for the K frames with
    at least min_pixels of them (a clip whose object changes hue over time scores some frames wrong)."""
    x = _as_frames(frames)
    mask = _moving(x)
    rows = [_rgb_features(x[i][mask[i]]) for i in range(len(x)) if mask[i].sum() >= min_pixels]
    return np.stack(rows) if rows else np.zeros((0, 6))


def material_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """audio float32 (N,) -> float64 (2*32,): mean log-mel of the loudest 20% frames minus its maximum (timbre,
    not loudness), and the per-band std over those frames."""
    import librosa

    y = as_mono(audio, sr, AUDIO_SR, min_len=1024)
    mel = librosa.feature.melspectrogram(y=y, sr=AUDIO_SR, n_fft=1024, hop_length=256, n_mels=N_MELS)  # (32, T)
    logmel = np.log(mel + 1e-8)
    energy = mel.sum(0)  # (T,)
    loud = logmel[:, energy >= np.quantile(energy, 0.8)]  # (32, T')
    prof = loud.mean(1)
    return np.concatenate([prof - prof.max(), loud.std(1)])


@dataclass
class NearestCentroid:
    labels: tuple[str, ...]
    centroids: np.ndarray  # (K, D) in standardised space
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)

    @classmethod
    def fit(cls, feats: np.ndarray, labels) -> "NearestCentroid":
        feats = np.asarray(feats, np.float64)  # (N, D)
        labels = list(labels)
        if len(feats) != len(labels) or len(feats) == 0:
            raise ValueError(f"need one label per feature row, got {len(feats)} rows and {len(labels)} labels")
        mean, scale = feats.mean(0), feats.std(0) + 1e-6
        z = (feats - mean) / scale
        names = tuple(sorted(set(labels)))
        cents = np.stack([z[[lb == n for lb in labels]].mean(0) for n in names])
        return cls(names, cents, mean, scale)

    def predict(self, feat: np.ndarray) -> str:
        z = (np.asarray(feat, np.float64) - self.mean) / self.scale
        return self.labels[int(np.argmin(((self.centroids - z) ** 2).sum(1)))]


@dataclass
class AdherenceModel:
    colour: NearestCentroid
    material: NearestCentroid

    def predict_colour(self, frames: np.ndarray) -> str:
        return self.colour.predict(colour_features(frames))

    def colour_frames(self, frames: np.ndarray) -> list[str]:
        """The colour of each frame whose object moves (`frame_colour_features`), in order."""
        return [self.colour.predict(f) for f in frame_colour_features(frames)]

    def predict_material(self, audio: np.ndarray, sr: int) -> str:
        return self.material.predict(material_features(audio, sr))

    def save(self, path, overwrite: bool = False) -> Path:
        """Atomic (temp file, rename); an existing file is replaced only with overwrite."""
        from safetensors.numpy import save_file

        from avcli.media.ffmpeg import atomic_path

        path = Path(path)
        tensors = {f"{k}.{f}": np.ascontiguousarray(getattr(c, f), dtype=np.float64)
                   for k, c in (("colour", self.colour), ("material", self.material))
                   for f in ("centroids", "mean", "scale")}
        meta = {"format": "avgen-adherence", "version": FORMAT_VERSION,
                "colour_labels": json.dumps(list(self.colour.labels)),
                "material_labels": json.dumps(list(self.material.labels))}
        with atomic_path(path, overwrite=overwrite) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path) -> "AdherenceModel":
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: adherence model not found (train one: avgen eval ... --fit-adherence DATA_DIR "
                             f"--adherence-model {path})")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                t = {k: f.get_tensor(k) for k in f.keys()}
            if meta.get("format") != "avgen-adherence":
                raise ValueError("not an avgen adherence model")
            parts = {k: NearestCentroid(tuple(json.loads(meta[f"{k}_labels"])), t[f"{k}.centroids"],
                                        t[f"{k}.mean"], t[f"{k}.scale"]) for k in ("colour", "material")}
        except (ValueError, KeyError, OSError) as exc:
            raise UsageError(f"{path}: not a readable adherence model ({exc})") from exc
        return cls(**parts)


def train_adherence_classifiers(clips_frames, clips_audio, colours, materials, sr: int = AUDIO_SR) -> AdherenceModel:
    """Fit both classifiers. clips_frames: list of uint8 (F, H, W, 3); clips_audio: list of float32 (N,) at `sr`;
    colours / materials: one label per clip (None skips that clip for that classifier)."""
    cf = [(colour_features(f), c) for f, c in zip(clips_frames, colours) if c is not None]
    mf = [(material_features(a, sr), m) for a, m in zip(clips_audio, materials) if m is not None]
    if not cf or not mf:
        raise ValueError("need at least one labelled clip for colour and one for material")
    return AdherenceModel(NearestCentroid.fit(np.stack([f for f, _ in cf]), [c for _, c in cf]),
                          NearestCentroid.fit(np.stack([f for f, _ in mf]), [m for _, m in mf]))


def predict_colour(model: AdherenceModel, frames: np.ndarray) -> str:
    return model.predict_colour(frames)


def predict_material(model: AdherenceModel, audio: np.ndarray, sr: int) -> str:
    return model.predict_material(audio, sr)


def fit_from_folder(folder, fps: float = 8.0, limit: int = 200, on_file=None) -> AdherenceModel:
    """Train both classifiers on a labelled folder: events.jsonl lines with attrs.colour / attrs.material (what
    `avgen data synth` writes), the first `limit` clips, frames at `fps` at their own size, audio at 16 kHz."""
    from avcli.media.ffmpeg import probe, read_audio, read_video

    folder = Path(folder)
    path = folder / "events.jsonl"
    if not path.is_file():
        raise UsageError(f"{folder}: no events.jsonl with colour/material labels (make one with avgen data synth)")
    from avcli.jsonl import read_file_rows

    rows = [r for r in read_file_rows(path, "events") if (r.get("attrs") or {}).get("colour")][:limit]
    if not rows:
        raise UsageError(f"{path}: no line has attrs.colour / attrs.material labels")
    frames, audio, colours, materials = [], [], [], []
    for r in rows:
        clip = folder / r["file"]
        if on_file:
            on_file(clip.name)
        info = probe(clip, require_video=True)
        frames.append(read_video(clip, fps, size=(info.height, info.width)))
        a = read_audio(clip, AUDIO_SR)
        audio.append(a if a is not None else np.zeros(AUDIO_SR, np.float32))
        colours.append(r["attrs"].get("colour"))
        materials.append(r["attrs"].get("material"))
    return train_adherence_classifiers(frames, audio, colours, materials, sr=AUDIO_SR)
