#!/usr/bin/env bash
# One-time set-up, safe to re-run: the system packages Mixbridge's tests need (apt), then a
# virtualenv in .venv with Mixbridge (editable) and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the test suite needs: FluidSynth and a GM soundfont render the model's training
# audio from music21 scores (libsndfile itself ships in the soundfile wheel); the ZAM VST3 plugins
# (ZamVerb needs libzita-convolver4 and libsamplerate0) for the plugin bridge; dpf-source and g++
# build the bridge's fixture plugin; Chromium and its driver run the HTML report's browser tests.
APT_PACKAGES=(fluidsynth fluid-soundfont-gm zam-plugins libzita-convolver4 libsamplerate0 dpf-source g++
              chromium chromium-driver)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing Mixbridge, its test tools and Ray (the cluster extra) into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev,train,cluster]" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
.venv/bin/python -c "import mixbridge.assistant.cli, mixbridge.effects.render, pedalboard, soundfile" \
  || { echo "setup: the installation is incomplete" >&2; exit 1; }
