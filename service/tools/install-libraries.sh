#!/usr/bin/env bash
# Install each tool's pinned Python libraries (service/tools/libraries/<name>.txt) into a directory of its
# own, <root>/<name>, with pip --target. No interpreter has these directories on its path: only the tool's
# program puts its own on sys.path, so every other sandboxed program sees the plain Debian Python it would
# see on a bare machine. A directory whose stamp matches its requirements file is left as it is.
#
#   install-libraries.sh [--root DIR] [pip install options, e.g. --no-index --find-links WHEELS]
#   install-libraries.sh --download DIR     fetch the wheels only (a wheelhouse for offline image builds)
#
# Environment: SANDPIT_TOOL_PYTHON, the interpreter whose pip installs (default python3); the wheels are
# pure Python, byte-compiled for that interpreter, which must be the sandbox's 3.11.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=/usr/local/lib/sandpit/tool-libs
python=${SANDPIT_TOOL_PYTHON:-python3}
pip=("$python" -m pip --disable-pip-version-check)

if [[ ${1:-} == --download ]]; then
  for requirements in "$here"/libraries/*.txt; do
    "${pip[@]}" download --quiet --no-deps --only-binary=:all: --require-hashes --dest "$2" -r "$requirements"
  done
  exit 0
fi
if [[ ${1:-} == --root ]]; then
  root=$2
  shift 2
fi

sudo=()
if [[ $(id -u) -ne 0 ]] && ! mkdir -p "$root" 2>/dev/null; then
  sudo=(sudo)
fi
for requirements in "$here"/libraries/*.txt; do
  name=$(basename "$requirements" .txt)
  target=$root/$name
  digest=$(sha256sum "$requirements" | cut -c1-16)
  if [[ $(cat "$target/.sandpit-stamp" 2>/dev/null) == "$digest" ]]; then
    continue
  fi
  echo "installing the $name tool's libraries into $target"
  # Into a scratch directory first, so a failed install never leaves a half-filled one behind.
  "${sudo[@]}" mkdir -p "$root"
  scratch=$("${sudo[@]}" mktemp -d "$root/.$name.XXXXXX")
  "${sudo[@]}" "${pip[@]}" install --quiet --no-deps --only-binary=:all: --require-hashes --no-warn-script-location --root-user-action=ignore \
    --target "$scratch" -r "$requirements" "$@"
  echo "$digest" | "${sudo[@]}" tee "$scratch/.sandpit-stamp" >/dev/null
  "${sudo[@]}" chmod -R a+rX "$scratch"
  "${sudo[@]}" rm -rf "$target"
  "${sudo[@]}" mv "$scratch" "$target"
done
