#!/usr/bin/env bash
# Sets up the environment and starts the demo on the bundled default model (README: "Run the demo").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1
exec .venv/bin/python app.py "$@"
