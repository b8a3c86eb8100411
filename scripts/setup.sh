#!/usr/bin/env bash
# Creates .venv and installs what the demo (and, with --dev, the tests) need. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

system_packages=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || system_packages+=(ffmpeg)
if [[ "${1:-}" == "--dev" ]] && ! command -v chromium >/dev/null; then system_packages+=(chromium); fi
if (( ${#system_packages[@]} )); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${system_packages[@]}" >/dev/null
  else
    echo "warning: please install ${system_packages[*]} (Debian packages) for video streaming / browser tests" >&2
  fi
fi

[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
requirements=requirements.txt
[[ "${1:-}" == "--dev" ]] && requirements=requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
