"""An audio-video synchronisation classifier for our domain and the RelSync metric (seed 002, supplement sec. 1).

The seed's classifier: an audio and a video encoder, their features concatenated, an MLP giving an unbounded
av-sync score phi(a, v); trained contrastively on temporally shifted pairs of the *same* clip only (hard negatives:
every shift of the audio against the video, and of the video against the audio), because easy negatives from other
clips teach semantics, not timing. Ours is that, sized for 8 fps / 64 px clips:

    video: per-frame motion energy, |frame_t - frame_{t-1}| of the grey image pooled on an 8 x 8 grid  -> (F, 64)
    audio: per video frame, the mean log-mel and the largest positive mel change (onsets)          -> (F, 128)
    encoders: three 1-D convolutions over time each; concatenated; one more conv; mean over time; MLP -> phi

RelSync(a, v_gen, v_ref) = exp(phi(a, v_gen)) / (exp(phi(a, v_ref)) + exp(phi(a, v_gen))): 0.5 means "as in sync
with the audio as the real video is". Window: WINDOW frames (2 s at 8 fps, the seed's window); shifts of one frame.
AlignSync (seed 002 eqs. 10-11) = RelSync x P_Align, the semantic term from an image-audio contrastive model trained
here (`avcli.metrics.image_audio`, the stand-in for ImageBind); the sync model file carries it as `align`.
Weights are safetensors (`save` / `load`), trained by `fit_from_folder` (`avgen eval --fit-sync DIR`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avcli.errors import UsageError

FPS = 8.0
SIZE = (64, 64)
SR = 16000
WINDOW = 16  # video frames per scored window (2 s at 8 fps)
MAX_SHIFT = 6  # frames each way in training (+-0.75 s)
FORMAT = "avgen-sync"
VERSION = 2  # 2: may carry the image-audio model (`align.*`)


def video_features(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 at FPS -> (F, 64) float32 motion energy on an 8 x 8 grid (frame 0: zeros)."""
    g = frames.astype(np.float32).mean(axis=-1) / 255.0  # (F, H, W)
    d = np.abs(np.diff(g, axis=0, prepend=g[:1]))
    F, H, W = d.shape
    gh, gw = H // 8, W // 8
    d = d[:, : gh * 8, : gw * 8].reshape(F, 8, gh, 8, gw).mean(axis=(2, 4))
    return (d.reshape(F, 64) * 10.0).astype(np.float32)


def audio_features(audio: np.ndarray, sr: int, frames: int) -> np.ndarray:
    """Mono float audio -> (frames, 128) float32: per video frame the mean log-mel and its largest rise."""
    import librosa

    y = np.asarray(audio, np.float32)
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    need = int(round(frames / FPS * SR))
    y = np.pad(y[:need], (0, max(0, need - len(y))))
    mel = np.log(np.maximum(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=160, n_mels=64,
                                                           center=True), 1e-5))  # (64, T)
    rise = np.maximum(np.diff(mel, axis=1, prepend=mel[:, :1]), 0)
    per = mel.shape[1] / frames
    out = np.zeros((frames, 128), np.float32)
    for f in range(frames):
        a, b = int(f * per), max(int(f * per) + 1, int((f + 1) * per))
        out[f, :64] = mel[:, a:b].mean(axis=1)
        out[f, 64:] = rise[:, a:b].max(axis=1)
    out[:, :64] = (out[:, :64] + 5.0) / 3.0  # roughly unit scale
    return out


def _encoder(c_in: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Conv1d(c_in, hidden, 3, padding=1), nn.GELU(), nn.Conv1d(hidden, hidden, 3, padding=1),
                         nn.GELU(), nn.Conv1d(hidden, hidden, 3, padding=1), nn.GELU())


class SyncClassifier(nn.Module):
    """phi(audio_features, video_features): (B, F, 128), (B, F, 64) -> (B,) unbounded av-sync score."""

    def __init__(self, hidden: int = 64, align_hidden: int | None = None):
        super().__init__()
        from avcli.metrics.image_audio import ImageAudioModel

        self.hidden = hidden
        self.align = ImageAudioModel(align_hidden) if align_hidden else None  # AlignSync's P(Align)
        self.audio = _encoder(128, hidden)
        self.video = _encoder(64, hidden)
        self.joint = nn.Sequential(nn.Conv1d(2 * hidden, hidden, 3, padding=1), nn.GELU())
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                  nn.Linear(hidden, 1))

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.audio(a.transpose(1, 2)), self.video(v.transpose(1, 2))], dim=1)  # (B, 2h, F)
        return self.head(self.joint(h).mean(dim=2))[:, 0]

    @torch.no_grad()
    def score(self, audio_feats: np.ndarray, video_feats: np.ndarray) -> float:
        """phi of one pair, averaged over the WINDOW-frame windows that tile the clip."""
        n = min(len(audio_feats), len(video_feats))
        starts = list(range(0, max(1, n - WINDOW + 1), WINDOW // 2)) or [0]
        a = torch.stack([torch.from_numpy(_window(audio_feats, s)) for s in starts])
        v = torch.stack([torch.from_numpy(_window(video_feats, s)) for s in starts])
        return float(self.eval()(a, v).mean())

    def save(self, path, overwrite: bool = False) -> Path:
        from safetensors.torch import save_file

        from avcli.media.ffmpeg import atomic_path

        path = Path(path)
        with atomic_path(path, overwrite=overwrite) as tmp:
            meta = {"format": FORMAT, "version": str(VERSION), "hidden": str(self.hidden), "window": str(WINDOW),
                    "fps": str(FPS)}
            if self.align is not None:
                meta["align_hidden"] = str(self.align.hidden)
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path) -> "SyncClassifier":
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: sync model not found (train one: avgen eval DIR --fit-sync DATA_DIR "
                             f"--sync-model {path.name})")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise UsageError(f"{path}: not an avgen sync model")
        model = cls(int(meta.get("hidden", 64)), int(meta["align_hidden"]) if "align_hidden" in meta else None)
        model.load_state_dict(load_file(str(path)))
        return model.eval()


def _window(x: np.ndarray, start: int) -> np.ndarray:
    w = x[start:start + WINDOW]
    return np.pad(w, ((0, WINDOW - len(w)), (0, 0))) if len(w) < WINDOW else w


def rel_sync(model: SyncClassifier, audio_feats, gen_video_feats, ref_video_feats) -> float:
    """Seed 002's RelSync: the generated pair against the real pair for the same audio."""
    g, r = model.score(audio_feats, gen_video_feats), model.score(audio_feats, ref_video_feats)
    return float(1.0 / (1.0 + np.exp(r - g)))


def align_sync(model: SyncClassifier, audio_feats, gen_frames, ref_frames) -> dict:
    """Seed 002's AlignSync = RelSync x P_Align (eqs. 9-11) of a generated video against the real one for the same
    audio; frames (F, H, W, 3) uint8 at FPS and SIZE. Returns relsync, p_align and alignsync."""
    from avcli.metrics.image_audio import p_align

    if model.align is None:
        raise UsageError("this sync model has no image-audio part for AlignSync; train it again with --fit-sync")
    rs = rel_sync(model, audio_feats, video_features(gen_frames), video_features(ref_frames))
    pa = p_align(model.align, audio_feats, gen_frames, ref_frames[0])
    return {"relsync": rs, "p_align": pa, "alignsync": rs * pa}


def clip_data(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(audio features, video features, frames) of a clip file, resampled to FPS and SIZE."""
    from avcli.media.ffmpeg import read_audio, read_video

    frames = read_video(path, FPS, SIZE)
    audio = read_audio(path, SR)
    if audio is None:
        audio = np.zeros(int(len(frames) / FPS * SR), np.float32)
    return audio_features(audio, SR, len(frames)), video_features(frames), frames


def clip_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(audio features, video features) of a clip file, resampled to FPS and SIZE."""
    a, v, _ = clip_data(path)
    return a, v


def shifted_scores(model: SyncClassifier, a: np.ndarray, v: np.ndarray, start: int, shifts: range) -> torch.Tensor:
    """phi(audio window at start + d, video window at start) for each shift d (a2v)."""
    aw = torch.stack([torch.from_numpy(_window(a, start + d)) for d in shifts])
    vw = torch.from_numpy(_window(v, start))[None].expand(len(shifts), -1, -1)
    return model(aw, vw)


def train(feats: list[tuple[np.ndarray, np.ndarray]], steps: int = 1500, batch: int = 16, lr: float = 2e-3,
          seed: int = 0, hidden: int = 64) -> SyncClassifier:
    """Contrastive training on shifted pairs of the same clip only: for a video window, softmax over the audio
    shifted by -MAX_SHIFT..MAX_SHIFT frames (a2v), and for an audio window over shifted videos (v2a)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SyncClassifier(hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    shifts = range(-MAX_SHIFT, MAX_SHIFT + 1)
    usable = [f for f in feats if len(f[1]) >= WINDOW + 2 * MAX_SHIFT]
    if len(usable) < 2:
        raise UsageError(f"the sync model needs clips of at least {(WINDOW + 2 * MAX_SHIFT) / FPS:g} s; found "
                         f"{len(usable)}")
    target = torch.full((batch,), MAX_SHIFT, dtype=torch.long)  # the index of shift 0
    for _ in range(steps):
        a2v, v2a = [], []
        for k in rng.integers(0, len(usable), batch):
            a, v = usable[k]
            s = int(rng.integers(MAX_SHIFT, len(v) - WINDOW - MAX_SHIFT + 1))
            a2v.append(shifted_scores(model, a, v, s, shifts))
            vw = torch.stack([torch.from_numpy(_window(v, s + d)) for d in shifts])
            aw = torch.from_numpy(_window(a, s))[None].expand(len(shifts), -1, -1)
            v2a.append(model(aw, vw))
        loss = nn.functional.cross_entropy(torch.stack(a2v), target) + \
            nn.functional.cross_entropy(torch.stack(v2a), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def shift_accuracy(model: SyncClassifier, feats: list[tuple[np.ndarray, np.ndarray]], tolerance: int = 1) -> dict:
    """Held-out a2v accuracy: the argmax over shifts -MAX_SHIFT..MAX_SHIFT lies within +-tolerance frames of 0;
    chance = (2 tolerance + 1) / (2 MAX_SHIFT + 1)."""
    shifts = range(-MAX_SHIFT, MAX_SHIFT + 1)
    hits = n = 0
    for a, v in feats:
        if len(v) < WINDOW + 2 * MAX_SHIFT:
            continue
        s = (len(v) - WINDOW) // 2
        best = int(shifted_scores(model.eval(), a, v, s, shifts).argmax()) - MAX_SHIFT
        hits += abs(best) <= tolerance
        n += 1
    return {"accuracy": hits / n if n else float("nan"), "chance": (2 * tolerance + 1) / len(shifts), "clips": n}


def fit_from_folder(folder, steps: int = 1500, holdout: float = 0.1, on_file=None,
                    align_steps: int = 600) -> tuple[SyncClassifier, dict]:
    """Train on the clips of a folder (the last `holdout` share held out): the sync classifier (held-out shift
    accuracy) and, with `align_steps` > 0, the image-audio model for AlignSync (held-out audio -> image retrieval)."""
    from avcli.metrics import image_audio
    from avcli.metrics.evaluate import is_video
    folder = Path(folder)
    clips = sorted(p for p in folder.iterdir() if is_video(p) and p.is_file()) if folder.is_dir() else []
    if len(clips) < 4:
        raise UsageError(f"{folder}: --fit-sync needs a folder of at least 4 video clips")
    feats, pictures = [], []
    for c in clips:
        if on_file:
            on_file(c.name)
        a, v, frames = clip_data(c)
        feats.append((a, v))
        pictures.append((a, frames))
    n_val = max(1, int(round(len(feats) * holdout)))
    model = train(feats[:-n_val], steps=steps)
    report = shift_accuracy(model, feats[-n_val:])
    report.update(train_clips=len(feats) - n_val, heldout_clips=n_val, steps=steps)
    if align_steps > 0:
        model.align = image_audio.train(pictures[:-n_val], steps=align_steps)
        report["align"] = {**image_audio.retrieval_accuracy(model.align, pictures[-n_val:]), "steps": align_steps}
    return model, report


def dumps(report: dict) -> str:
    return json.dumps(report)
