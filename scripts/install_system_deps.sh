#!/usr/bin/env bash
# System packages the tests use: Chromium and its driver (the browser site test) and Debian's Fashion-MNIST
# (offline data for chapters 7-8). Installs what is missing with apt-get when it can (root, or sudo without a
# password); otherwise it says what to install and leaves the rest to the tests' own error messages.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" != none ]; then
    echo "Installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
  fi
fi
echo "Note: missing system packages (${missing[*]}). On Debian/Ubuntu: sudo apt-get install ${missing[*]}." >&2
echo "      Without Chromium the browser site test fails; without the dataset, Fashion-MNIST is downloaded." >&2
