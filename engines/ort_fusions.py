"""onnxruntime's transformer fusions (`onnxruntime.transformers.optimizer`, model_type "unet") for the CPU EP.

    fuse_unet(src, dst, variant="all")  -> {op_type: count} of the fused ops written to dst
    fused_model(src, variant)           -> (onnx ModelProto, {op_type: count}); OrtEngine(fusion=) loads it

What the "unet" fusions give on the CPU EP: MultiHeadAttention (q, k and v kept apart: the packed-QKV and
packed-KV layouts the fusion prefers have no CPU kernel, "Packed QKV ... not implemented for CPU"),
SkipLayerNormalization and Gelu. Its NhwcConv, GroupNorm, SkipGroupNorm, BiasSplitGelu and BiasAdd ops are
CUDA-only and stay off. Variants: "all" (the three above), "attention" (MultiHeadAttention only), "norm"
(SkipLayerNormalization + Gelu only). `benchmarks/ort_tuning.py` measures each against the plain graph: attention
wins (1.05x quiet, 1.1-1.25x with a core busy), the norm fusions lose; so the CPU engines of the U-Nets use
"attention" (`export.descriptions.CPU_FUSION` names them) and the exported folder itself stays plain, for
TensorRT and the CUDA EP.

onnxruntime 1.32's attention fusion calls `int()` on a one-element array for graphs from torch 2.x (a TypeError
under numpy 2); `_num_heads` replaces that one method with a version that reads the element.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

VARIANTS = ("all", "attention", "norm")
CUDA_ONLY = ("enable_nhwc_conv", "enable_group_norm", "enable_skip_group_norm", "enable_bias_splitgelu",
             "enable_bias_add", "enable_packed_qkv", "enable_packed_kv")


def _patch_num_heads() -> None:
    import onnxruntime.transformers.optimizer  # noqa: F401  (puts the fusion modules' folder on sys.path)
    import fusion_attention_unet as fau  # the module the optimizer itself imports

    cls = fau.FusionAttentionUnet
    if getattr(cls.get_num_heads, "_avgen", False):
        return
    original = cls.get_num_heads

    def _num_heads(self, reshape_q, is_torch2: bool = False) -> int:
        if not is_torch2:
            return original(self, reshape_q, is_torch2)
        parent = self.model.get_parent(reshape_q, 1)  # Concat([0, 0, num_heads, head_size])
        if parent is not None and parent.op_type == "Concat" and len(parent.input) == 4:
            value = self.model.get_constant_value(parent.input[2])
            if isinstance(value, np.ndarray) and value.size == 1 and int(value.reshape(-1)[0]) > 0:
                return int(value.reshape(-1)[0])
        return 0

    _num_heads._avgen = True
    cls.get_num_heads = _num_heads


def _quiet_progress() -> None:
    """The unet optimizer draws a tqdm bar on stderr when tqdm is importable; a CLI run must not show it."""
    import import_utils  # the optimizer's own modules (on sys.path once optimizer is imported)
    import onnx_model_unet

    if not getattr(onnx_model_unet.is_installed, "_avgen", False):
        found = import_utils.is_installed

        def is_installed(name: str) -> bool:
            return name != "tqdm" and found(name)

        is_installed._avgen = True
        onnx_model_unet.is_installed = is_installed


def fused_model(src: str | Path, variant: str = "attention"):
    """(the fused onnx ModelProto, {op_type: count} of the ops the fusion added)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown fusion variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    _patch_num_heads()
    _quiet_progress()
    opts = FusionOptions("unet")
    for key in CUDA_ONLY:
        setattr(opts, key, False)
    if variant == "norm":
        opts.enable_attention = False
    elif variant == "attention":
        opts.enable_skip_layer_norm = opts.enable_gelu = opts.enable_layer_norm = False
    before = collections.Counter(n.op_type for n in onnx.load(str(src), load_external_data=False).graph.node)
    fused = optimize_model(str(src), model_type="unet", opt_level=0, optimization_options=opts, use_gpu=False)
    after = collections.Counter(n.op_type for n in fused.model.graph.node)
    return fused.model, {op: n for op, n in after.items() if op not in before}


def fuse_unet(src: str | Path, dst: str | Path, variant: str = "all") -> dict[str, int]:
    import onnx

    model, added = fused_model(src, variant)
    onnx.save(model, str(dst))
    return added
