#!/usr/bin/env bash
# Wheels the lent GPU machine lacks (it has torch, numpy, pyarrow, yaml, tqdm, timm but no
# open_clip), fetched here into .whl/ (git-ignored) for `run(carry=[".whl"])`; bench/gpu_check.sh
# installs them into /tmp/site. The GPU machine's python3 is CPython 3.12 on x86-64.
set -eu
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl open_clip_torch ftfy wcwidth
ls -la .whl
