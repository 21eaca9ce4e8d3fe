#!/usr/bin/env bash
# Install the system packages the local stack needs, on Debian/Ubuntu, only those missing: the service's
# own (Redis, bubblewrap, the venv's Python) and what user programs run with: the base list
# (sandbox-packages.txt) and the toolchain of every language in SANDPIT_LANGUAGES (default all; for
# example `SANDPIT_LANGUAGES=python,cpp make up`), from languages/<name>.txt.
set -euo pipefail
here=$(dirname "$0")

packages=(redis-server bubblewrap python3 python3-venv python3-seccomp)
# The lists record the versions tested; here, as in the worker image, any version the mirror offers will do.
sandbox_packages=$(bash "$here/language-packages.sh")
mapfile -t -O ${#packages[@]} packages < <(sed -e 's/=.*//' <<< "$sandbox_packages")
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  sudo=sudo
else
  sudo=
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" \
  || { $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; }
