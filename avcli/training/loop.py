"""A small, resumable training loop: AdamW, grad clipping, rich progress with loss and it/s, periodic safetensors
checkpoints (weights + optimizer state, never pickle), CSV/JSON logs and a PNG loss curve."""

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


def save_checkpoint(run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, extra: dict) -> None:
    params = _trainable(model)
    tmp = run_dir / "ckpt.tmp.safetensors"
    save_file({k: v.detach().contiguous() for k, v in params.items()}, str(tmp))
    state = {}
    index = {id(p): k for k, p in params.items()}
    for group in opt.param_groups:
        for p in group["params"]:
            for key, val in opt.state.get(p, {}).items():
                if torch.is_tensor(val):
                    state[f"{index[id(p)]}::{key}"] = val.detach().contiguous().reshape(val.shape)
    save_file(state, str(run_dir / "optim.tmp.safetensors"))
    (run_dir / "state.tmp.json").write_text(json.dumps({"step": step, **extra}, indent=1))
    for name in ("ckpt", "optim"):
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
        raise ValueError(f"{run_dir}: checkpoint does not match the model being trained (lacks {sorted(missing)[0]})")
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(weights[k])
    optim = load_file(str(run_dir / "optim.safetensors"))
    for k, p in params.items():
        st = {key.split("::", 1)[1]: v for key, v in optim.items() if key.split("::", 1)[0] == k}
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
          progress: bool = True) -> dict:
    """Optimise model's trainable parameters with loss_fn(step, generator) -> (loss, extras)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    params = list(_trainable(model).values())
    if not params:
        raise ValueError(f"{name}: nothing to train (all parameters frozen)")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = load_checkpoint(run_dir, model, opt) if cfg.resume else 0
    rows = _read_log(run_dir / "log.csv") if start else []
    rows = [r for r in rows if r["step"] <= start]
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + start)  # resumed runs continue a distinct stream
    sched = lambda s: min(1.0, (s + 1) / max(1, cfg.warmup)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))
    if start >= cfg.steps:
        console.print(f"{name}: already trained to step {start} (>= {cfg.steps}); nothing to do")
        return {"step": start, "final_loss": rows[-1]["loss"] if rows else None, "seconds": 0.0}
    t0, window, last = time.perf_counter(), [], {}
    cols = [TextColumn(f"[bold]{name}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn()]
    model.train()
    with Progress(*cols, console=console, disable=not progress) as bar:
        task = bar.add_task(name, total=cfg.steps, completed=start, info="")
        for step in range(start, cfg.steps):
            for g in opt.param_groups:
                g["lr"] = cfg.lr * sched(step)
            loss, extras = loss_fn(step, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{name}: loss became {float(loss)} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
            opt.step()
            window.append(float(loss))
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
                save_checkpoint(run_dir, model, opt, done, {"name": name, "config": asdict(cfg)})
                _write_logs(run_dir, rows, name)
                if on_checkpoint:
                    on_checkpoint(done)
    model.eval()
    return {"step": cfg.steps, "final_loss": last.get("loss"), "seconds": time.perf_counter() - t0,
            "steps_run": cfg.steps - start}


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
