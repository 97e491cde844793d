#!/usr/bin/env bash
# README command 1: set up a fresh machine, then run the main job on the embedded defaults:
# train LeNet-300-100 on Fashion-MNIST (reused if already trained) and Deep-Compress it into lenet300.netp,
# with a report in lenet300_report/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/netpress compress --model lenet300 --data fashion-mnist --recipe deep-compression --out lenet300.netp
