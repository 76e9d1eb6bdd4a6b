"""The joint sampling loop (seed 000 Algorithm 1) for the three tasks on one joint model.

The loop knows tensors and callables only. `components` maps component names to callables taking named tensors:

    video_connector(latent, x0_hat)                         -> (B, F, D) per-frame features
    audio_connector(latent, x0_hat)                         -> (B, T, D) per-time-frame features
    video_unet(sample, timestep, text_embeds, cross_features) -> noise prediction, same shape as sample
    audio_unet(sample, timestep, text_embeds, cross_features) -> noise prediction

so the same loop runs on torch modules, ONNX Runtime sessions or TensorRT engines.

One step: connectors read each modality's current latent and its previous x0 estimate (self-conditioning), then
each U-Net sees its own latent at its local timestep and the *other* modality's features. Classifier-free
guidance doubles the batch ([negative; positive]) in one call per U-Net.
Tasks: generate (both free), foley (video known: re-noised to m(t) each step, x0_hat = clean video, video U-Net
never runs), animate (mirror image).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import torch

from avcli.sampling.noise import Generators
from avcli.sampling.noise import randn as draw_noise
from avcli.sampling.schedules import SPACINGS, NoiseSchedule, global_timesteps, local_timesteps
from avcli.sampling.solvers import make_solver

TASKS = ("generate", "foley", "animate")


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 25
    solver: str = "ddim"
    eta: float = 0.0
    gamma: float = 1.5
    cfg_video: float = 7.5
    cfg_audio: float = 2.5
    self_condition: bool = True
    recon_guidance: float = 0.0  # seed 001 eq. 3 weight (lambda); torch backend only, conditional tasks only
    audio_guidance: float = 1.0  # seed 002's eta on the video U-Net: eps(null audio) + eta (eps(audio) - ...); 1 = off
    # the mirror image on the audio U-Net: seed 004's classifier-free guidance over the visual condition,
    # eps(null video features) + eta (eps(video features) - eps(null)); 1 = off. In foley with no prompt (text
    # guidance then does nothing and is skipped) it costs nothing: its two passes are one call of batch 2.
    video_guidance: float = 1.0
    # text guidance in a limited interval (Kynkaenniemi et al. 2024): (start, end) as fractions of the sampling
    # steps, noisiest first; step k of K is guided when start <= k/K < end, and outside it the U-Net runs once on
    # the positive prompt (half the batch). (0, 1) guides every step.
    cfg_video_interval: tuple[float, float] = (0.0, 1.0)
    cfg_audio_interval: tuple[float, float] = (0.0, 1.0)
    # the same for audio_guidance: outside it the video U-Net sees only the real audio features (eta 1). With
    # the video's text guidance in (0, x) and this in (x, 1) every step makes two video U-Net passes, the cost of
    # text guidance alone.
    audio_guidance_interval: tuple[float, float] = (0.0, 1.0)
    video_guidance_interval: tuple[float, float] = (0.0, 1.0)  # the same for video_guidance
    # guidance rescale (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", sec. 3.4)
    # on each modality's text guidance: the guided prediction scaled to the positive prediction's standard
    # deviation (per sample), mixed in with weight phi; 0 = plain guidance. diffusers' `guidance_rescale`.
    cfg_video_rescale: float = 0.0
    cfg_audio_rescale: float = 0.0
    # where the N steps sit among the training timesteps (diffusers' `timestep_spacing`): None = the video
    # schedule's; "trailing" starts at the last training timestep, the closest to pure noise; "leading" starts a
    # stride below it, where training taught the U-Net to expect more signal than a pure-noise start holds (Lin et
    # al. 2024, sec. 3.3)
    timestep_spacing: str | None = None

    def __post_init__(self) -> None:
        if self.solver not in ("ddim", "dpmpp2m"):
            raise ValueError(f"unknown solver {self.solver!r}; choose ddim or dpmpp2m")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        if self.cfg_video < 0 or self.cfg_audio < 0:
            raise ValueError("guidance scales must be >= 0")
        if self.recon_guidance < 0:
            raise ValueError("recon_guidance must be >= 0")
        if self.audio_guidance < 0:
            raise ValueError(f"audio guidance must be >= 0, got {self.audio_guidance:g}")
        if self.video_guidance < 0:
            raise ValueError(f"video guidance must be >= 0, got {self.video_guidance:g}")
        if self.timestep_spacing is not None and self.timestep_spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {self.timestep_spacing!r}; choose one of {', '.join(SPACINGS)}")
        for name in ("cfg_video_rescale", "cfg_audio_rescale"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name):g}")
        for name in ("cfg_video_interval", "cfg_audio_interval", "audio_guidance_interval",
                     "video_guidance_interval"):
            iv = tuple(float(x) for x in getattr(self, name))
            if len(iv) != 2 or not 0.0 <= iv[0] <= iv[1] <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be START:END with 0 <= START <= END <= 1, got "
                                 f"{':'.join(f'{x:g}' for x in iv)}")
            object.__setattr__(self, name, iv)  # a list from bundle.json becomes the tuple a frozen config holds

    def guidance_at(self, k: int) -> tuple[float, float]:
        """The (video, audio) text-guidance scales of step k (0 = noisiest): a scale outside its interval is 1."""
        frac = k / self.steps
        v0, v1 = self.cfg_video_interval
        a0, a1 = self.cfg_audio_interval
        return (self.cfg_video if v0 <= frac < v1 else 1.0), (self.cfg_audio if a0 <= frac < a1 else 1.0)

    def audio_guidance_at(self, k: int) -> float:
        """Step k's audio-guidance eta on the video U-Net: 1 (off) outside audio_guidance_interval."""
        lo, hi = self.audio_guidance_interval
        return self.audio_guidance if lo <= k / self.steps < hi else 1.0

    def video_guidance_at(self, k: int) -> float:
        """Step k's video-guidance eta on the audio U-Net: 1 (off) outside video_guidance_interval."""
        lo, hi = self.video_guidance_interval
        return self.video_guidance if lo <= k / self.steps < hi else 1.0


def config_timesteps(config: SamplerConfig, schedule: NoiseSchedule, T: int) -> list[int]:
    """The global timestep indices a config samples on, largest first: its spacing, else the (video) schedule's."""
    return global_timesteps(config.steps, T, config.timestep_spacing or schedule.timestep_spacing,
                            schedule.steps_offset)


@dataclass
class TextConditioning:
    """Text embeddings per modality: positive and negative (unconditional), each (B, L, D)."""

    video: torch.Tensor
    audio: torch.Tensor
    video_negative: torch.Tensor
    audio_negative: torch.Tensor


@dataclass
class SampleResult:
    video: torch.Tensor  # (B, C, F, h, w) clean video latent
    audio: torch.Tensor  # (B, C, T, m) clean audio latent
    video_timesteps: list[int]
    audio_timesteps: list[int]
    network_seconds: float = 0.0
    total_seconds: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ModalitySpec:
    schedule: NoiseSchedule
    shape: tuple[int, ...]  # latent shape including batch


def rescale_guided(guided: torch.Tensor, pos: torch.Tensor, phi: float) -> torch.Tensor:
    """Guidance rescale (Lin et al. 2024, eq. 15-16): the guided prediction brought to the standard deviation of the
    positive one, per sample over all other axes, and mixed back with weight phi (0 = the guided prediction)."""
    if phi == 0.0:
        return guided
    dims = tuple(range(1, guided.dim()))
    rescaled = guided * (pos.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
    return phi * rescaled + (1.0 - phi) * guided


def _guided(unet: Callable, x, t_index: int, text_pos, text_neg, cross, scale: float, rescale: float = 0.0
            ) -> torch.Tensor:
    """One U-Net call with classifier-free guidance batched as [negative; positive]."""
    b = x.shape[0]
    if scale == 1.0:
        t = torch.full((b,), t_index, dtype=torch.int64)
        return unet(sample=x, timestep=t, text_embeds=text_pos, cross_features=cross)
    t = torch.full((2 * b,), t_index, dtype=torch.int64)
    out = unet(sample=torch.cat([x, x]), timestep=t, text_embeds=torch.cat([text_neg, text_pos]),
               cross_features=torch.cat([cross, cross]))
    neg, pos = out.chunk(2)
    return rescale_guided(neg + scale * (pos - neg), pos, rescale)


def cross_guided(unet: Callable, x, t_index: int, text_pos, text_neg, cross, scale: float, eta: float,
                 rescale: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance over the other modality on top of text guidance: eps(null) + eta (eps(cross) -
    eps(null)), the null being zero connector features. On the video U-Net it is seed 002's audio guidance (null
    audio is what training with --audio-dropout shows it); on the audio U-Net seed 004's guidance over the visual
    condition. eta = 1 is the conditional prediction itself, with no extra call. Without text guidance (scale 1)
    the two passes go in one call of batch 2, as text guidance's do, so no call exceeds the CFG batch an engine is
    built for."""
    if eta == 1.0:
        return _guided(unet, x, t_index, text_pos, text_neg, cross, scale, rescale)
    if scale == 1.0:
        b = x.shape[0]
        t = torch.full((2 * b,), t_index, dtype=torch.int64)
        out = unet(sample=torch.cat([x, x]), timestep=t, text_embeds=torch.cat([text_pos, text_pos]),
                   cross_features=torch.cat([torch.zeros_like(cross), cross]))
        null, cond = out.chunk(2)
        return null + eta * (cond - null)
    cond = _guided(unet, x, t_index, text_pos, text_neg, cross, scale, rescale)
    null = _guided(unet, x, t_index, text_pos, text_neg, torch.zeros_like(cross), scale, rescale)
    return null + eta * (cond - null)


class _Timed:
    """Wraps the component callables to count calls and time spent inside the networks. Thread-safe; when calls
    overlap (concurrent U-Nets) the network time is the union of the intervals, so it never exceeds the wall."""

    def __init__(self, components: Mapping[str, Callable]):
        self._c = components
        self._spans: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def __getitem__(self, name: str) -> Callable:
        fn = self._c[name]

        def call(**kw):
            t0 = time.perf_counter()
            out = fn(**kw)
            t1 = time.perf_counter()
            with self._lock:
                self._spans.append((t0, t1))
                self.calls[name] = self.calls.get(name, 0) + 1
            return out

        return call

    @property
    def seconds(self) -> float:
        total, end = 0.0, float("-inf")
        for a, b in sorted(self._spans):
            if b > end:
                total += b - max(a, end)
                end = b
        return total


def sample(
    components: Mapping[str, Callable],
    video: ModalitySpec,
    audio: ModalitySpec,
    text: TextConditioning,
    config: SamplerConfig,
    generator: Generators,
    task: str = "generate",
    known_video: torch.Tensor | None = None,
    known_audio: torch.Tensor | None = None,
    global_T: int | None = None,
    audio_mask: torch.Tensor | None = None,
    video_mask: torch.Tensor | None = None,
    video_given: torch.Tensor | None = None,
    on_step: Callable[[int, int], None] | None = None,
    initial_noise: tuple[torch.Tensor | None, torch.Tensor | None] | None = None,
    pool: Executor | None = None,
) -> SampleResult:
    """Run the joint sampler. Noise is drawn on the CPU from `generator` (or one generator per batch row), so
    results do not depend on the backend, and a batch row equals a single run with that row's generator.

    For foley, `known_audio` with `audio_mask` (1 where known, broadcastable to the audio latent) conditions the
    free audio on a known part (e.g. the tail of the previous window of a long video) by replacement. Animate's
    mirror image: `known_video` with `video_mask` (1 on known frames: a given first frame, or the previous
    window's tail) keeps those frames, re-noised to m(t) each step; `video_given` (1 on known frames that go in
    clean instead, a subset of video_mask) is for a video U-Net trained with its first frame given clean
    (`train joint --first-frame-p`).
    `initial_noise` (video, audio) replaces the first draw of either latent (e.g. to start from the same noise as
    another pipeline); None entries are drawn as usual.
    `pool` (an Executor with a free worker) runs the video U-Net concurrently with the audio U-Net in generate;
    results are identical either way (the networks draw no random numbers).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if task == "foley" and known_video is None:
        raise ValueError("foley needs the known video latent")
    if audio_mask is not None and (task != "foley" or known_audio is None):
        raise ValueError("audio_mask needs task='foley' and known_audio")
    if video_mask is not None and (task != "animate" or known_video is None):
        raise ValueError("video_mask needs task='animate' and known_video")
    if video_given is not None and video_mask is None:
        raise ValueError("video_given needs video_mask")
    if task == "animate" and known_audio is None:
        raise ValueError("animate needs the known audio latent")
    if config.recon_guidance > 0 and task != "foley":
        raise ValueError("reconstruction guidance is implemented for foley only (video known); set it to 0")
    start = time.perf_counter()
    nets = _Timed(components)
    Tv, Ta = video.schedule.num_train_timesteps, audio.schedule.num_train_timesteps
    T = global_T or max(Tv, Ta)
    g_ts = config_timesteps(config, video.schedule, T)
    m_ts, n_ts = local_timesteps(g_ts, T, Tv, Ta, config.gamma)
    sv = make_solver(config.solver, video.schedule, config.eta)
    sa = make_solver(config.solver, audio.schedule, config.eta)

    def randn(shape):
        return draw_noise(generator, tuple(shape))

    x_v, x_a = randn(video.shape), randn(audio.shape)
    if initial_noise is not None:
        x_v, x_a = (_given(n, x, name) for n, x, name in zip(initial_noise, (x_v, x_a), ("video", "audio")))
    x0_v, x0_a = torch.zeros_like(x_v), torch.zeros_like(x_a)
    if task == "foley":
        x0_v = known_video.float()
    if task == "animate":
        x0_a = known_audio.float()

    # text guidance between two equal prompts (foley and animate with no prompt) is the conditional prediction
    # itself: skipped, so the U-Net runs once instead of twice on identical halves
    text_v_on = not torch.equal(text.video, text.video_negative)
    text_a_on = not torch.equal(text.audio, text.audio_negative)
    for k, (m, n) in enumerate(zip(m_ts, n_ts)):
        m_prev = m_ts[k + 1] if k + 1 < len(m_ts) else -1
        n_prev = n_ts[k + 1] if k + 1 < len(n_ts) else -1
        if task == "foley":  # replacement: the known modality at its local noise level
            x_v = _renoise(known_video, sv, m, randn)
        if task == "animate":
            x_a = _renoise(known_audio, sa, n, randn)
        if audio_mask is not None:
            x_a = audio_mask * _renoise(known_audio, sa, n, randn) + (1 - audio_mask) * x_a
        if video_mask is not None:
            known_t = _renoise(known_video, sv, m, randn)  # drawn either way: the noise stream stays the same
            if video_given is not None:
                known_t = video_given * known_video.float() + (1 - video_given) * known_t
            x_v = video_mask * known_t + (1 - video_mask) * x_v
        sc_v = x0_v if config.self_condition else torch.zeros_like(x0_v)
        sc_a = x0_a if config.self_condition else torch.zeros_like(x0_a)
        # each connector feeds the *other* modality's U-Net: foley never runs the video U-Net, so it needs no audio
        # features (and animate no video features)
        f_v = nets["video_connector"](latent=x_v, x0_hat=sc_v) if task != "animate" else None
        f_a = nets["audio_connector"](latent=x_a, x0_hat=sc_a) if task != "foley" else None
        # the two U-Nets of a step are independent (each sees the other's connector features, not its output):
        # both run before either solver step, concurrently when a pool is given
        g_v, g_a = config.guidance_at(k)
        g_v, g_a = (g_v if text_v_on else 1.0), (g_a if text_a_on else 1.0)
        run_v = (lambda: cross_guided(nets["video_unet"], x_v, m, text.video, text.video_negative, f_a,
                                      g_v, config.audio_guidance_at(k), config.cfg_video_rescale)
                 ) if task != "foley" else None
        run_a = (lambda: cross_guided(nets["audio_unet"], x_a, n, text.audio, text.audio_negative, f_v,
                                      g_a, config.video_guidance_at(k), config.cfg_audio_rescale)
                 ) if task != "animate" else None
        eps_v, eps_a = _run_pair(run_v, run_a, pool)
        if task == "foley" and config.recon_guidance > 0:
            eps_a = _recon_guidance_video(components, x_v, x_a, m, n, known_video, text, sv, sa, sc_v, sc_a,
                                          eps_a, config.recon_guidance)
        if eps_v is not None:
            x_v, x0_v = sv.step(eps_v, x_v, m, m_prev, generator)
        if eps_a is not None:
            x_a, x0_a = sa.step(eps_a, x_a, n, n_prev, generator)
        if on_step is not None:
            on_step(k + 1, len(m_ts))

    out_v = known_video.float() if task == "foley" else x_v
    out_a = known_audio.float() if task == "animate" else x_a
    if audio_mask is not None:
        out_a = audio_mask * known_audio.float() + (1 - audio_mask) * out_a
    if video_mask is not None:
        out_v = video_mask * known_video.float() + (1 - video_mask) * out_v
    return SampleResult(out_v, out_a, m_ts, n_ts, nets.seconds, time.perf_counter() - start, dict(nets.calls))


def _run_pair(run_v: Callable | None, run_a: Callable | None, pool: Executor | None):
    """(run_v(), run_a()); with a pool and both present, run_v in a pool thread while run_a runs here.
    Backends whose calls release the GIL (ONNX Runtime, TensorRT, torch ops) then overlap."""
    if pool is None or run_v is None or run_a is None:
        return (run_v() if run_v else None), (run_a() if run_a else None)
    fut = pool.submit(run_v)
    eps_a = run_a()
    return fut.result(), eps_a


def _given(noise: torch.Tensor | None, drawn: torch.Tensor, name: str) -> torch.Tensor:
    if noise is None:
        return drawn
    if tuple(noise.shape) != tuple(drawn.shape):
        raise ValueError(f"initial {name} noise has shape {tuple(noise.shape)}, the sampler needs {tuple(drawn.shape)}")
    return noise.float().clone()


def _renoise(x0: torch.Tensor, solver, index: int, randn) -> torch.Tensor:
    abar = solver.abar(index)
    return abar.sqrt() * x0.float() + (1 - abar).sqrt() * randn(x0.shape)


def _recon_guidance_video(components, x_v, x_a, m, n, known_video, text, sv, sa, sc_v, sc_a, eps_a, weight):
    """Seed 001 eq. 3 for video -> audio: push the audio latent so the video model, seeing it, reconstructs the
    known video. Equivalent to â0 = ā0 - λ sqrt(ᾱ_n) ∇_{a_n} ||v0 - v̂0||², expressed on epsilon."""
    with torch.enable_grad():
        a = x_a.detach().requires_grad_(True)
        f_a = components["audio_connector"](latent=a, x0_hat=sc_a)
        t = torch.full((x_v.shape[0],), m, dtype=torch.int64)
        eps_v = components["video_unet"](sample=x_v, timestep=t, text_embeds=text.video, cross_features=f_a)
        v0_hat, _ = sv.to_x0_eps(eps_v, x_v, m)
        loss = ((known_video.float() - v0_hat) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, a)
    abar = sa.abar(n)
    x0_a, _ = sa.to_x0_eps(eps_a, x_a, n)
    x0_a = x0_a - weight * abar.sqrt() * grad
    # re-express the guided x0 as epsilon so any solver can take the step
    return (x_a - abar.sqrt() * x0_a) / (1 - abar).sqrt() if sa.schedule.prediction_type == "epsilon" else \
        _x0_to_output(x0_a, x_a, abar, sa.schedule.prediction_type)


def _x0_to_output(x0, x, abar, prediction_type):
    a, s = abar.sqrt(), (1 - abar).sqrt()
    eps = (x - a * x0) / s
    if prediction_type == "v_prediction":
        return a * eps - s * x0
    return x0
