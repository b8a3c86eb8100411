#!/usr/bin/env bash
# Sets up the environment and runs the whole test suite (README: "Run the tests").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
