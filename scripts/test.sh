#!/usr/bin/env bash
# Sets up the environment, checks the code with ruff (lint and format), and runs the whole test suite
# (README: "Run the tests"). Arguments go to pytest, e.g. `bash scripts/test.sh -m unit` for the fast part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
