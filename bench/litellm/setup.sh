#!/usr/bin/env bash
# Creates bench/litellm/.venv with a pinned LiteLLM (the Router contestant of the benchmarks).
# Idempotent: re-running only reinstalls when the pin changed.
# Pin: 1.102.4 (last of the 1.102 line), whose dependencies resolve from the registry we can
# reach (1.103.11 and every later release checked require certifi>=2026.10.19, which is not
# published there).
set -euo pipefail
cd "$(dirname "$0")"
LITELLM_VERSION="${LITELLM_VERSION:-1.102.4}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if python -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('litellm') == '$LITELLM_VERSION' else 1)" 2>/dev/null; then
  echo "litellm $LITELLM_VERSION already installed in $(pwd)/.venv"
  exit 0
fi
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check "litellm==$LITELLM_VERSION"
python -c "import importlib.metadata as m; print('litellm', m.version('litellm'), 'installed in', '$(pwd)/.venv')"
