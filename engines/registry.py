"""Which backends this machine can run, and why not: `available_backends() -> {name: (usable, reason)}`."""

from __future__ import annotations

import importlib.util


def _cuda() -> tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA device visible to torch"
    return True, torch.cuda.get_device_name(0)


def _ort() -> tuple[bool, str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return False, "onnxruntime is not installed (pip install onnxruntime)"
    try:
        import onnxruntime as ort
    except Exception as exc:  # a broken install: say so rather than crash the caller
        return False, f"onnxruntime failed to import ({exc})"
    return True, f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}"


def _trt() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "tensorrt is not installed (pip install tensorrt; needs an NVIDIA GPU and CUDA)"
    ok, why = _cuda()
    if not ok:
        return False, f"tensorrt is installed but {why}"
    try:
        import tensorrt as trt
    except Exception as exc:
        return False, f"tensorrt failed to import ({exc})"
    return True, f"tensorrt {trt.__version__} on {why}"


def available_backends() -> dict[str, tuple[bool, str]]:
    return {"torch": (True, "PyTorch eager" + (" (CUDA)" if _cuda()[0] else " (CPU)")), "ort": _ort(),
            "trt": _trt()}


def require(backend: str) -> None:
    """Raise RuntimeError with the reason when a backend is not usable here."""
    usable, reason = available_backends().get(backend, (False, f"unknown backend {backend!r}"))
    if not usable:
        raise RuntimeError(f"backend {backend!r} is unavailable: {reason}")
