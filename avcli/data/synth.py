"""The "hits" synthetic sounding-video domain (in the spirit of GreatestHits): objects striking surfaces.

Each clip: a side view with a surface band (material-dependent look), a coloured object (ball, block or stick)
moving as a camera would see it (`height_profile`): ballistic arcs between impacts (apex midway, speed largest at
contact), a first drop that accelerates from rest, a last bounce that leaves the surface (ball, stick) or a block
that settles; the object touches the surface exactly at the impact times, which lie on the video frame grid
(`impact_fps`) so a frame shows each contact. Small camera jitter moves every frame a little; optional motion
blur averages sub-frames over the shutter. The soundtrack has material-dependent modal impacts placed
sample-accurately at those times (loudness from the contact speed, a noise transient, light room reverb, faint
background noise). Everything is deterministic by seed.
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


def _impact_times(rng: np.random.Generator, duration: float, margin: float = 0.2, min_gap: float = 0.3,
                  grid_fps: float | None = None) -> list[float]:
    """1-6 impact times, at least `min_gap` apart, none within `margin` of either end (fewer if the clip is short);
    with `grid_fps`, rounded onto that frame grid (distinct times kept)."""
    lo, hi = margin, duration - margin
    if hi <= lo:
        return [duration / 2]
    # keep some slack so short clips still get random times
    n = min(int(rng.integers(1, 7)), int(0.8 * (hi - lo) / min_gap) + 1)
    # n sorted points with gaps >= min_gap: sample in the shrunken span, then add k * min_gap to the k-th
    slack = (hi - lo) - (n - 1) * min_gap
    t = np.sort(rng.uniform(0.0, slack, n)) + lo + np.arange(n) * min_gap
    if grid_fps:
        t = np.unique(np.round(t * grid_fps)) / grid_fps
    return [float(x) for x in t]


GRAVITY = 7.2  # in object travels per s^2: a 1 s arc peaks at 0.9 of the travel
RESTITUTION = (0.55, 0.8)
MIN_ARC, MAX_ARC = 0.12, 1.0  # apex heights (travels): short arcs stay visible, long ones stay in the frame


def _arc(duration_s: float) -> float:
    return float(np.clip(GRAVITY * duration_s**2 / 8, MIN_ARC, MAX_ARC))


def height_profile(t: np.ndarray, events: list[float], duration: float, kind: str = "ball",
                   restitution: float = 0.7) -> tuple[np.ndarray, list[float]]:
    """Height above the surface (0..1 of the travel) at times t, and each impact's contact speed (travels/s).

    Physics a camera sees: before the first impact the object falls from rest, h = H0 (1 - (t/t0)^2), fastest at
    contact; between impacts a ballistic arc h = H 4u(1-u) (u from 0 at one impact to 1 at the next: apex midway,
    speed 4H/dt at both contacts, the largest of the arc) with H = g dt^2 / 8, clipped to stay visible and in frame;
    after the last impact a ball or stick leaves on a restitution-shortened arc that does not land within the clip,
    and a block settles. Contacts happen exactly at `events`."""
    h = np.zeros_like(t, dtype=np.float64)
    ev = [float(e) for e in events]
    speeds = []
    if not ev:
        return h, speeds
    t0 = ev[0]
    H0 = float(np.clip(GRAVITY * t0**2 / 2, 0.3, MAX_ARC))
    pre = t <= t0
    h[pre] = H0 * (1 - (t[pre] / max(t0, 1e-6)) ** 2)
    speeds.append(2 * H0 / max(t0, 1e-6))
    for a, b in zip(ev, ev[1:]):
        dt = b - a
        H = _arc(dt)
        seg = (t > a) & (t <= b)
        u = (t[seg] - a) / dt
        h[seg] = H * 4 * u * (1 - u)
        speeds.append(4 * H / dt)
    last = ev[-1]
    tail = t > last
    if kind == "block":
        h[tail] = 0.0  # it settles
    else:
        prev = ev[-1] - ev[-2] if len(ev) > 1 else max(0.3, t0)
        dt = max(restitution * prev, 1.25 * (duration - last) + 1e-3)  # lands after the clip ends: no silent contact
        H = _arc(restitution * prev) if len(ev) > 1 else _arc(dt)
        u = (t[tail] - last) / dt
        h[tail] = H * 4 * u * (1 - u)
    return np.clip(h, 0, 1), speeds


def _jitter(rng, n: int, size: tuple[int, int]) -> np.ndarray:
    """(n, 2) integer camera offsets (dy, dx): a slow wobble of about a pixel per 64 px, never twice the same for
    long, so a static frame is not the norm."""
    amp = max(1.0, size[1] / 64)
    phase = rng.uniform(0, 2 * np.pi, 2)
    f = rng.uniform(0.3, 0.9, 2)  # cycles per clip-second at 8 fps
    k = np.arange(n)[:, None]
    wobble = amp * 0.8 * np.sin(2 * np.pi * f * k / 8.0 + phase) + rng.normal(0, 0.25 * amp, (n, 2))
    return np.round(wobble).astype(int)


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    if dy == 0 and dx == 0:
        return img
    H, W = img.shape[:2]
    p = max(abs(dy), abs(dx))
    padded = np.pad(img, ((p, p), (p, p), (0, 0)), mode="edge")
    return padded[p - dy:p - dy + H, p - dx:p - dx + W]


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


def render(rng, attrs: dict, events: list[float], duration: float, fps: float, size: tuple[int, int],
           motion_blur: float = 0.0, jitter: bool = True):
    """Frames, contact speeds, the object's lowest row in each event's frame, and the surface row. `motion_blur`
    is the shutter as a fraction of the frame interval (0: a sharp instant; 0.5: a 180-degree shutter, 3 sub-frames
    averaged)."""
    H, W = size
    n = int(round(duration * fps))
    t = np.arange(n) / fps
    restitution = float(rng.uniform(*RESTITUTION))
    heights, speeds = height_profile(t, events, duration, attrs["object"], restitution)
    subs = 3 if motion_blur > 0 else 1
    offsets = (np.linspace(-0.5, 0.5, subs) * motion_blur / fps) if subs > 1 else np.zeros(1)
    sub_heights = [height_profile(np.clip(t + o, 0, duration), events, duration, attrs["object"], restitution)[0]
                   for o in offsets]
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
    shake = _jitter(rng, n, size) if jitter else np.zeros((n, 2), int)
    for i in range(n):
        acc = np.zeros((H, W, 3))
        for k, o in enumerate(offsets):
            img, mask = _draw(base, attrs, sub_heights[k][i], surf_top, travel, x0 + drift * (t[i] + o), r, colour,
                              shade, xx, yy, W, H)
            acc += img
            if k == len(offsets) // 2:
                rows = np.nonzero(mask.any(axis=1))[0]
                bottoms.append(int(rows.max()) if len(rows) else -1)
        frames[i] = _shift(np.clip(acc / len(offsets), 0, 255).astype(np.uint8), *shake[i])
    contact = [bottoms[min(n - 1, int(round(e * fps)))] for e in events]
    return frames, speeds, contact, surf_top


def _draw(base, attrs, height, surf_top, travel, cx, r, colour, shade, xx, yy, W, H):
    """One sharp instant: the object at `height` over the background and surface; (image, object mask)."""
    img = base.copy()
    bottom = surf_top - height * travel  # y of the object's lowest point (surface top = contact)
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
    return img, mask


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
              sample_rate: int = 16000, impact_fps: float | None = None, motion_blur: float = 0.0,
              jitter: bool = True) -> Clip:
    """`impact_fps` (default: `fps`) is the frame grid the impacts lie on: a rate that divides `fps` (e.g. 8 for
    16 fps clips a model sees at 8 fps) makes every contact visible at both rates."""
    rng = np.random.default_rng(seed)
    events = _impact_times(rng, duration, grid_fps=impact_fps or fps)
    bg_idx = int(rng.integers(len(BACKGROUNDS)))
    attrs = {"object": str(rng.choice(OBJECTS)), "colour": str(rng.choice(list(COLOURS))),
             "material": str(rng.choice(MATERIALS)), "background": bg_idx,
             "background_rgb": list(BACKGROUNDS[bg_idx]), "n_impacts": len(events)}
    frames, speeds, contact, surf_top = render(rng, attrs, events, duration, fps, size, motion_blur, jitter)
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
        caps[name] = {**caps.get(name, {}), "file": name, "caption": clip.caption}  # keeps a "weight"
        evs[name] = {"file": name, "events": [round(e, 6) for e in clip.events], "attrs": clip.attrs}
    for fname, rows in (("captions.jsonl", caps), ("events.jsonl", evs)):
        with atomic_path(out / fname, overwrite=True) as tmp:
            tmp.write_text("".join(json.dumps(rows[k]) + "\n" for k in sorted(rows)))
    return names


def _read_rows(path) -> dict[str, dict]:
    from avcli.jsonl import read_file_rows

    # tolerant: a damaged line from an earlier run is rewritten below
    return {r["file"]: r for r in read_file_rows(path, path.name, missing_ok=True, tolerant=True)}
