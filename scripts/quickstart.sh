#!/usr/bin/env bash
# README command 1: set up a fresh machine, then run the main job on the embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/netpress train --model lenet300 --data fashion-mnist --steps 10ep
