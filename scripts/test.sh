#!/usr/bin/env bash
# The test suite (unit + integration with real Flower). Extra arguments go to pytest.
# FEDMUSCLE_FAST=1 skips the tests marked slow (CI=true: only those marked long); FEDMUSCLE_LINT=0 skips ruff and mypy
# (they run first, and only when no pytest arguments are given).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if [ $# = 0 ] && [ "${FEDMUSCLE_LINT:-1}" = 1 ]; then
  say "ruff + mypy"
  ruff check src tests bench experiments
  ruff format --check --quiet src tests bench experiments
  mypy
fi
# CI=true also skips the tests marked long (see pyproject.toml); FEDMUSCLE_LONG=1 keeps them.
marks=()
if [ "${FEDMUSCLE_FAST:-0}" = 1 ]; then marks=(-m "not slow")
elif [ "${CI:-}" = true ] && [ "${FEDMUSCLE_LONG:-0}" != 1 ]; then marks=(-m "not long"); fi
set +e
python -m pytest "${marks[@]}" -p no:cacheprovider --timeout=900 "$@"
rc=$?
set -e
[ $rc = 5 ] && { echo "no tests collected" >&2; exit 1; }
exit $rc
