#!/usr/bin/env bash
# Install what the image build and the compose test need, on Debian/Ubuntu, only what is missing:
# Docker's engine and CLI, docker-compose (1.29 on bookworm; `docker compose` v2 works as well) and debootstrap.
set -euo pipefail

packages=(docker.io docker-compose debootstrap)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=
[[ $(id -u) -eq 0 ]] || sudo=sudo
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; }
