#!/usr/bin/env bash
# The benchmark in one command: this project against phenaki-pytorch 0.5.0, in one process.
#   bash bench/run.sh            # full run (about 20 minutes on a 2-core CPU); writes bench/RESULTS.md
#   bash bench/run.sh --quick    # smoke run: small configuration, 2 rounds, short stories
# bench/.venv gets this project's requirements plus bench/requirements.txt (the reference, torchvision, playwright).
# The browser measure needs Debian's chromium (scripts/setup.sh --dev installs it); without it, it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.venv
NEEDED="phenaki_pytorch, torchvision, einops, vector_quantize_pytorch, transformers, gradio, mcp, playwright"
if ! "$VENV/bin/python" -c "import $NEEDED" >/dev/null 2>&1; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r requirements.txt -r bench/requirements.txt
fi
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" bench/benchmark.py "$@"
