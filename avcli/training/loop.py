"""A small, resumable training loop: AdamW, grad clipping, rich progress with loss and it/s, periodic safetensors
checkpoints (weights + optimizer state, never pickle), CSV/JSON logs and a PNG loss curve.

With an `accelerate.Accelerator` (joint training) the same loop runs on one device or many processes (DDP):
backward and gradient clipping go through the accelerator (loss scaling for fp16), the logged loss is the mean
over processes, and only the main process writes checkpoints and logs. An optional EMA of the trainable
parameters is checkpointed beside them as ema.safetensors."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file
from torch import nn

from avcli.training.ema import EMA

console = Console(stderr=True, highlight=False)


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 1000
    lr: float = 2e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup: int = 50
    ckpt_every: int = 200
    log_every: int = 10
    seed: int = 0
    resume: bool = True


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    seen, out = set(), {}
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = p
    return out


def save_checkpoint(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, extra: dict,
                    ema: EMA | None = None) -> None:
    params = _trainable(model)
    tmp = run_dir / "ckpt.tmp.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in params.items()}, str(tmp))
    state = {}
    index = {id(p): k for k, p in params.items()}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, val in opt.state.get(p, {}).items():
                if torch.is_tensor(val):
                    state[f"{index[id(p)]}::{key}"] = val.detach().cpu().contiguous().reshape(val.shape)
    save_file(state, str(run_dir / "optim.tmp.safetensors"))
    names = ["ckpt", "optim"]
    if ema is not None:
        ema.save(run_dir / "ema.tmp.safetensors")
        names.append("ema")
    (run_dir / "state.tmp.json").write_text(json.dumps({"step": step, **extra}, indent=1))
    for name in names:
        (run_dir / f"{name}.tmp.safetensors").replace(run_dir / f"{name}.safetensors")
    (run_dir / "state.tmp.json").replace(run_dir / "state.json")


def load_checkpoint(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer) -> int:
    """Restore weights and optimizer state; return the step to continue from (0 if no checkpoint)."""
    if not (run_dir / "state.json").exists():
        return 0
    params = _trainable(model)
    weights = load_file(str(run_dir / "ckpt.safetensors"))
    missing = set(params) - set(weights)
    if missing:
        from avcli.errors import UsageError

        raise UsageError(f"{run_dir}: its checkpoint was trained with other options (it lacks {sorted(missing)[0]}); "
                         f"resume with the options it was started with, or start over with --restart")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(weights[k])
    optim = load_file(str(run_dir / "optim.safetensors"))
    for k, p in params.items():
        # moments on the parameter's device; AdamW keeps its step count on the CPU (not capturable)
        st = {key.split("::", 1)[1]: (v if key.endswith("::step") else v.to(p.device))
              for key, v in optim.items() if key.split("::", 1)[0] == k}
        if st:
            opt.state[p] = st
    return int(json.loads((run_dir / "state.json").read_text())["step"])


def plot_losses(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    keys = [k for k in rows[0] if k.startswith("loss")] if rows else []
    for k in keys:
        ax.plot([r["step"] for r in rows], [r[k] for r in rows], label=k, lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def train(name: str, model: nn.Module, loss_fn: Callable[[int, torch.Generator], tuple[torch.Tensor, dict]],
          run_dir: Path, cfg: LoopConfig, on_checkpoint: Callable[[int], None] | None = None,
          progress: bool = True, accel=None, ema: EMA | None = None) -> dict:
    """Optimise model's trainable parameters with loss_fn(step, generator) -> (loss, extras).

    accel: an accelerate.Accelerator whose prepare_model() already wrapped the module loss_fn runs through (and
    `model` is that module, unwrapped: its parameter names are the checkpoint's). ema: updated after every step."""
    main = accel is None or accel.is_main_process
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    named = _trainable(model)
    params = list(named.values())
    if not params:
        raise ValueError(f"{name}: nothing to train (all parameters frozen)")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if accel is not None:
        opt = accel.prepare_optimizer(opt)
    start = load_checkpoint(run_dir, model, opt) if cfg.resume else 0
    if ema is not None:
        ema.start(named, run_dir / "ema.safetensors" if start else None)
    rows = _read_log(run_dir / "log.csv") if start else []
    rows = [r for r in rows if r["step"] <= start]
    rank = accel.process_index if accel is not None else 0
    # resumed runs continue a distinct stream; each process draws its own batches and noise
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + start + 104_729 * rank)
    sched = lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
    if start >= cfg.steps:
        if main:
            console.print(f"{name}: already trained to step {start} (>= {cfg.steps}); nothing to do")
        return {"step": start, "final_loss": rows[-1]["loss"] if rows else None, "seconds": 0.0}
    t0, window, last = time.perf_counter(), [], {}
    cols = [TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn()]
    model.train()
    with Progress(*cols, console=console, disable=not (progress and main)) as bar:
        task = bar.add_task(name, total=cfg.steps, completed=start, info="")
        for step in range(start, cfg.steps):
            for g in opt.param_groups:
                g["lr"] = cfg.lr * sched(step)
            loss, extras = loss_fn(step, gen)
            value, extras = _mean_over_processes(accel, loss, extras)
            if not math.isfinite(value):  # every process sees the same mean, so all stop together
                raise FloatingPointError(f"{name}: loss became {value} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            if accel is not None:
                accel.backward(loss)
                gnorm = float(accel.clip_grad_norm_(params, cfg.grad_clip))
            else:
                loss.backward()
                gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            opt.step()
            if ema is not None:
                ema.update(named, step)
            window.append(value)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                el = time.perf_counter() - t0
                last = {"step": done, "loss": sum(window) / len(window), "lr": opt.param_groups[0]["lr"],
                        "grad_norm": gnorm, "it_per_s": (done - start) / el, "elapsed_s": el,
                        **{k: float(v) for k, v in extras.items()}}
                rows.append(last)
                window = []
                bar.update(task, completed=done, info=f"loss {last['loss']:.4f} · {last['it_per_s']:.1f} it/s")
            else:
                bar.update(task, completed=done)
            if done % cfg.ckpt_every == 0 or done == cfg.steps:
                if main:
                    save_checkpoint(run_dir, model, opt, done, {"name": name, "config": asdict(cfg)}, ema)
                    _write_logs(run_dir, rows, name)
                if accel is not None:
                    accel.wait_for_everyone()
                if on_checkpoint:
                    on_checkpoint(done)
    model.eval()
    return {"step": cfg.steps, "final_loss": last.get("loss"), "seconds": time.perf_counter() - t0,
            "steps_run": cfg.steps - start}


def _mean_over_processes(accel, loss: torch.Tensor, extras: dict) -> tuple[float, dict]:
    if accel is None or accel.num_processes == 1:
        return float(loss.detach()), extras
    vals = torch.tensor([float(loss.detach()), *map(float, extras.values())], device=accel.device)
    vals = accel.reduce(vals, "mean").tolist()
    return vals[0], dict(zip(extras, vals[1:]))


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "step" else float(v)) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def _write_logs(run_dir: Path, rows: list[dict], name: str) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(run_dir / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    (run_dir / "log.json").write_text(json.dumps(rows, indent=0))
    plot_losses(rows, run_dir / "loss.png", name)
