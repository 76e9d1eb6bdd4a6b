"""The "hits" synthetic sounding-video domain (in the spirit of GreatestHits): objects striking surfaces.

Each clip: a side view with a surface band (material-dependent look), a coloured object (ball, block or stick)
whose height above the surface follows parabolic strikes that touch the surface exactly at the impact times, and
a soundtrack of material-dependent modal impacts placed sample-accurately at those times (loudness from impact
speed, a noise transient, light room reverb, faint background noise). Everything is deterministic by seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avcli.errors import UsageError

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 80, 230), "yellow": (235, 220, 40),
           "white": (245, 245, 245), "purple": (150, 50, 190), "orange": (245, 140, 30)}
MATERIALS = ("wood", "metal", "glass", "drum", "carpet")
OBJECTS = ("ball", "block", "stick")
# words a caption may use for each material (the first is the canonical adjective/noun)
MATERIAL_WORDS = {
    "wood": ("wooden table", "wood plank", "wooden floor", "wooden board"),
    "metal": ("metal plate", "steel sheet", "metal tray", "metallic surface"),
    "glass": ("glass table", "glass pane", "glass plate", "sheet of glass"),
    "drum": ("drum", "drum skin", "drumhead", "snare drum"),
    "carpet": ("carpet", "rug", "carpeted floor", "soft rug"),
}
BACKGROUNDS = ((70, 70, 80), (40, 50, 60), (90, 80, 70), (60, 75, 60), (30, 30, 35), (100, 100, 110),
               (75, 60, 80))
COUNT_WORDS = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}


@dataclass
class Clip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    audio: np.ndarray  # (N,) float32
    events: list[float]  # impact times (s)
    attrs: dict
    caption: str
    fps: float
    sample_rate: int
    contact_rows: list[int] = field(default_factory=list)  # per event: lowest object row in the event's frame


def _impact_times(rng: np.random.Generator, duration: float, margin: float = 0.2, min_gap: float = 0.3) -> list[float]:
    """1-6 impact times, at least `min_gap` apart, none within `margin` of either end (fewer if the clip is short)."""
    lo, hi = margin, duration - margin
    if hi <= lo:
        return [duration / 2]
    # keep some slack so short clips still get random times
    n = min(int(rng.integers(1, 7)), int(0.8 * (hi - lo) / min_gap) + 1)
    # n sorted points with gaps >= min_gap: sample in the shrunken span, then add k * min_gap to the k-th
    slack = (hi - lo) - (n - 1) * min_gap
    t = np.sort(rng.uniform(0.0, slack, n)) + lo + np.arange(n) * min_gap
    return [float(x) for x in t]


def height_profile(t: np.ndarray, events: list[float], duration: float) -> tuple[np.ndarray, list[float]]:
    """Height above the surface (0..1) at times t: parabolic strikes landing exactly at each event.

    Returns heights and the impact speed of each event (relative units) for loudness."""
    h = np.zeros_like(t)
    speeds = []
    ev = list(events)
    bounds = [0.0] + [(a + b) / 2 for a, b in zip(ev, ev[1:])] + [duration]
    for k, te in enumerate(ev):
        d_in = te - bounds[k] if k > 0 else te  # time since apex (or since clip start)
        d_out = bounds[k + 1] - te
        peak_in = min(1.0, 3.0 * d_in**2 + (0.3 if k == 0 else 0.0))  # the first drop starts well above
        peak_out = min(1.0, 3.0 * d_out**2) if k + 1 < len(ev) else 1.0
        before = (t >= bounds[k]) & (t <= te)
        after = (t > te) & (t <= bounds[k + 1])
        h[before] = peak_in * ((te - t[before]) / max(d_in, 1e-6)) ** 2
        h[after] = peak_out * np.clip((t[after] - te) / max(d_out, 1e-6), 0, 1) ** 2
        speeds.append(2 * peak_in / max(d_in, 1e-6))
    return np.clip(h, 0, 1), speeds


def _surface_texture(rng, material: str, h: int, w: int) -> np.ndarray:
    y = np.arange(h)[:, None] / max(h, 1)
    x = np.arange(w)[None, :] / w
    if material == "wood":
        base = np.array([140, 90, 45.0])
        grain = 0.15 * np.sin(2 * np.pi * (y * 6 + 0.3 * np.sin(2 * np.pi * x * 3) + x * 0.5) * 3)
        tex = base * (1 + grain[..., None])
    elif material == "metal":
        base = np.array([165, 170, 178.0])
        tex = base * (0.8 + 0.35 * (1 - y))[..., None] * np.ones((1, w, 1))
    elif material == "glass":
        base = np.array([170, 225, 235.0])
        tex = base * np.ones((h, w, 1))
        tex[: max(1, h // 6)] = [235, 250, 255]
    elif material == "drum":
        base = np.array([235, 225, 200.0])
        tex = base * np.ones((h, w, 1))
        tex[max(1, h // 2):] = [120, 30, 30]  # the drum shell under the skin
    else:  # carpet
        base = np.array([150, 50, 60.0])
        tex = base * (0.85 + 0.3 * rng.random((h, w, 1)))
    return np.clip(tex, 0, 255)


def render(rng, attrs: dict, events: list[float], duration: float, fps: float, size: tuple[int, int]):
    H, W = size
    n = int(round(duration * fps))
    t = np.arange(n) / fps
    heights, speeds = height_profile(t, events, duration)
    zoom = rng.uniform(0.9, 1.1)
    surf_top = int(H * rng.uniform(0.68, 0.76))
    r = max(3, int(W * 0.085 * zoom))
    x0 = rng.uniform(0.3, 0.7) * W
    drift = rng.uniform(-0.15, 0.15) * W / max(duration, 1e-6) if attrs["object"] == "ball" else 0.0
    travel = surf_top - 2 * r - 2  # highest point of the object's bottom above the surface
    bg = np.array(attrs["background_rgb"], dtype=np.float64)
    surface = _surface_texture(rng, attrs["material"], H - surf_top, W)
    colour = np.array(COLOURS[attrs["colour"]], dtype=np.float64)
    yy, xx = np.mgrid[0:H, 0:W]
    frames = np.empty((n, H, W, 3), dtype=np.uint8)
    shade = 1.0 - 0.25 * (yy / H)[..., None]
    base = np.empty((H, W, 3))
    base[:] = bg * shade
    base[surf_top:] = surface
    bottoms = []
    for i in range(n):
        img = base.copy()
        bottom = surf_top - heights[i] * travel  # y of the object's lowest point (surface top = contact)
        cx = x0 + drift * t[i]
        if attrs["object"] == "ball":
            cy = bottom - r
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif attrs["object"] == "block":
            mask = (np.abs(xx - cx) <= r) & (yy >= bottom - 2 * r) & (yy <= bottom)
        else:  # stick: a bar from a pivot at the upper left whose tip strikes the surface
            px, py = W * 0.12, H * 0.12
            tx, ty = cx, bottom
            dx, dy = tx - px, ty - py
            length = np.hypot(dx, dy)
            u = ((xx - px) * dx + (yy - py) * dy) / (length**2)
            dist = np.abs((xx - px) * dy - (yy - py) * dx) / length
            mask = (u >= 0) & (u <= 1) & (dist <= max(1.5, r * 0.35)) & (yy <= bottom)
        img[mask] = colour * (0.85 + 0.15 * shade[mask])
        frames[i] = np.clip(img, 0, 255).astype(np.uint8)
        rows = np.nonzero(mask.any(axis=1))[0]
        bottoms.append(int(rows.max()) if len(rows) else -1)
    contact = [bottoms[min(n - 1, int(round(e * fps)))] for e in events]
    return frames, speeds, contact, surf_top


MODES = {  # (f0 range Hz, partial ratios, decay range s, noise share)
    "metal": ((380, 900), (1.0, 2.76, 5.40, 8.93), (0.35, 0.9), 0.15),
    "glass": ((1400, 2600), (1.0, 2.32, 4.25, 6.63), (0.2, 0.45), 0.1),
    "wood": ((140, 380), (1.0, 2.6, 4.1), (0.04, 0.09), 0.5),
    "drum": ((75, 150), (1.0, 1.59, 2.14, 2.30), (0.15, 0.3), 0.3),
    "carpet": ((60, 120), (1.0,), (0.02, 0.04), 0.9),
}


def impact_sound(rng, material: str, obj: str, strength: float, sr: int) -> np.ndarray:
    (f_lo, f_hi), ratios, (d_lo, d_hi), noise_share = MODES[material]
    f0 = rng.uniform(f_lo, f_hi) * (1.15 if obj == "stick" else 0.9 if obj == "block" else 1.0)
    decay = rng.uniform(d_lo, d_hi)
    n = int(sr * min(1.5, 6 * decay + 0.05))
    t = np.arange(n) / sr
    out = np.zeros(n)
    for k, ratio in enumerate(ratios):
        f = f0 * ratio * rng.uniform(0.98, 1.02)
        if f >= sr / 2 - 100:
            continue
        if material == "drum":  # membrane pitch drop
            phase = 2 * np.pi * np.cumsum(f * (1 + 0.6 * np.exp(-t / 0.03))) / sr
        else:
            phase = 2 * np.pi * f * t
        amp = (0.8 ** k) * rng.uniform(0.6, 1.0)
        out += amp * np.sin(phase + rng.uniform(0, 2 * np.pi)) * np.exp(-t / (decay / (1 + 0.5 * k)))
    out /= max(1e-9, np.abs(out).max())
    burst_len = int(sr * (0.02 if material in ("carpet", "wood") else 0.004))
    burst = rng.standard_normal(burst_len) * np.exp(-np.arange(burst_len) / max(1, burst_len / 4))
    if material == "carpet":  # dull: low-pass the thud
        burst = np.convolve(burst, np.ones(12) / 12, mode="same")
    out[:burst_len] = (1 - noise_share) * out[:burst_len] + noise_share * 2.0 * burst
    return (strength * out).astype(np.float64)


def synth_audio(rng, attrs: dict, events: list[float], speeds: list[float], duration: float, sr: int) -> np.ndarray:
    from scipy.signal import fftconvolve

    n = int(round(duration * sr))
    dry = np.zeros(n + sr * 2)
    vmax = max(speeds) if speeds else 1.0
    for te, v in zip(events, speeds):
        strength = 0.35 + 0.65 * (v / vmax)
        s = impact_sound(rng, attrs["material"], attrs["object"], strength, sr)
        at = int(round(te * sr))
        dry[at:at + len(s)] += s
    rt = rng.uniform(0.15, 0.35)
    ir_n = int(sr * rt)
    ir = rng.standard_normal(ir_n) * np.exp(-np.arange(ir_n) / (sr * rt / 6.9))
    ir[0] = 0.0
    wet = fftconvolve(dry, ir)[: len(dry)]
    wet *= 0.12 * np.abs(dry).max() / max(1e-9, np.abs(wet).max())
    mix = (dry + wet)[:n]
    mix /= max(1e-9, np.abs(mix).max())
    mix = 0.9 * mix + 10 ** (-50 / 20) * rng.standard_normal(n)
    return np.clip(mix, -1, 1).astype(np.float32)


def caption_for(rng, attrs: dict) -> str:
    c, obj, mat, k = attrs["colour"], attrs["object"], attrs["material"], attrs["n_impacts"]
    surf = str(rng.choice(MATERIAL_WORDS[mat]))
    ac = ("an " if c[0] in "aeiou" else "a ") + c
    count = COUNT_WORDS.get(k, f"{k} times")
    if obj == "ball":
        options = [f"{ac} ball bouncing on a {surf}", f"{ac} ball bounces {count} on a {surf}",
                   f"someone drops {ac} ball onto a {surf}", f"a small {c} ball hitting a {surf}"]
    elif obj == "block":
        options = [f"{ac} block dropped onto a {surf}", f"someone drops {ac} block on a {surf} {count}",
                   f"{ac} cube hitting a {surf}", f"{ac} block knocks on a {surf} {count}"]
    else:
        options = [f"{ac} stick hitting a {surf}", f"someone hits a {surf} with {ac} stick {count}",
                   f"{ac} drumstick striking a {surf}", f"{ac} stick taps a {surf} {count}"]
    return str(rng.choice(options))


def make_clip(seed: int, duration: float = 4.0, fps: float = 16, size: tuple[int, int] = (128, 128),
              sample_rate: int = 16000) -> Clip:
    rng = np.random.default_rng(seed)
    events = _impact_times(rng, duration)
    bg_idx = int(rng.integers(len(BACKGROUNDS)))
    attrs = {"object": str(rng.choice(OBJECTS)), "colour": str(rng.choice(list(COLOURS))),
             "material": str(rng.choice(MATERIALS)), "background": bg_idx,
             "background_rgb": list(BACKGROUNDS[bg_idx]), "n_impacts": len(events)}
    frames, speeds, contact, surf_top = render(rng, attrs, events, duration, fps, size)
    attrs["surface_top"] = surf_top
    audio = synth_audio(rng, attrs, events, speeds, duration, sample_rate)
    return Clip(frames, audio, events, attrs, caption_for(rng, attrs), fps, sample_rate, contact)


def write_dataset(out_dir, n: int, seed: int = 0, progress: bool = True, **clip_kwargs) -> list[str]:
    """Write n clips as mp4 (H.264 + AAC) with captions.jsonl and events.jsonl. Existing clips are kept."""
    from rich.progress import track

    from avcli.media.ffmpeg import atomic_path, write_video

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    caps, evs = _read_rows(out / "captions.jsonl"), _read_rows(out / "events.jsonl")  # keep rows of other clips
    names = []
    for i in track(range(n), description="synthesizing clips", disable=not progress, transient=True):
        name = f"clip_{i:05d}.mp4"
        clip = make_clip(seed * 1_000_003 + i, **clip_kwargs)
        if not (out / name).exists():
            write_video(out / name, clip.frames, clip.fps, clip.audio, clip.sample_rate)
        names.append(name)
        caps[name] = {"file": name, "caption": clip.caption}
        evs[name] = {"file": name, "events": [round(e, 6) for e in clip.events], "attrs": clip.attrs}
    for fname, rows in (("captions.jsonl", caps), ("events.jsonl", evs)):
        with atomic_path(out / fname, overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(rows[k]) + "\n" for k in sorted(rows)))
    return names


def _read_rows(path) -> dict[str, dict]:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a damaged line from an earlier run: rewritten below
            if isinstance(row, dict) and "file" in row:
                rows[row["file"]] = row
    return rows
