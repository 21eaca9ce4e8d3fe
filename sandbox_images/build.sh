#!/usr/bin/env bash
# Build sandpit/gateway and sandpit/worker with no container registry: a debootstrap base in place of
# debian:bookworm-slim, Python packages from a wheelhouse built on the host (the host reaches PyPI,
# the build containers need not). Debian packages come from Debian's mirror, as in any build.
#
#   sandbox_images/build.sh            build both images, tagged $SANDPIT_VERSION (default: dev)
#   sandbox_images/build.sh --lock     re-resolve sandbox_images/constraints.txt from pyproject.toml
#
# Environment: PYTHON (host interpreter with pip, default python3), SANDPIT_VERSION, SANDPIT_IMAGE_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's own python3 (3.11.2 on bookworm) is the image's interpreter: pip evaluates environment
# markers such as redis' `python_full_version < "3.11.3"` with the interpreter it runs under.
python=${PYTHON:-/usr/bin/python3}
target_python=3.11.2
version=${SANDPIT_VERSION:-dev}
base=sandpit/debian:bookworm-slim
wheels=sandbox_images/wheels
constraints=sandbox_images/constraints.txt

# Download wheels the image's interpreter (CPython 3.11.2, glibc 2.36) can install.
target_pip() {
  local platforms=() minor
  # pip matches --platform literally: list every manylinux tag glibc 2.36 can load.
  for minor in $(seq 17 36); do
    platforms+=(--platform "manylinux_2_${minor}_x86_64")
  done
  "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --implementation cp --python-version "$target_python" --abi cp311 --abi abi3 --abi none \
    --platform manylinux2014_x86_64 "${platforms[@]}" --platform any "$@"
}

dependencies() {
  "$python" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))'
}

# constraints.txt records which dependency list it resolved, so a changed pyproject.toml re-locks it.
dependencies_digest() {
  dependencies | sha256sum | cut -c1-16
}

lock_constraints() {
  local scratch
  scratch=$(mktemp -d)
  dependencies >"$scratch/requirements.txt"
  target_pip --dest "$scratch" -r "$scratch/requirements.txt" setuptools
  {
    echo "# Exact versions the images install; regenerate with: sandbox_images/build.sh --lock"
    echo "# dependencies: $(dependencies_digest)"
    for wheel in "$scratch"/*.whl; do
      basename "$wheel" | awk -F- '{ print tolower($1) "==" $2 }'
    done | sed 's/_/-/g' | sort
  } >"$constraints"
  rm -rf "$scratch"
  echo "wrote $constraints"
}

fill_wheelhouse() {
  local stamp=$wheels/.stamp
  if [[ -f $stamp && $stamp -nt $constraints ]]; then
    return
  fi
  echo "building the wheelhouse in $wheels"
  find "$wheels" -name '*.whl' -delete
  target_pip --dest "$wheels" -r "$constraints"
  # The tools' pinned libraries (pure Python), which the worker image installs apart from its venv.
  bash service/tools/install-libraries.sh --download "$wheels"
  touch "$stamp"
}

host_python=$("$python" -c 'import platform; print(platform.python_version())')
if [[ $host_python != "$target_python" ]]; then
  echo "warning: $python is $host_python, the images run $target_python; markers may resolve differently" >&2
fi

if [[ ${1:-} == --lock ]]; then
  lock_constraints
  exit 0
fi

if ! grep -qx "# dependencies: $(dependencies_digest)" "$constraints"; then
  echo "pyproject.toml dependencies changed: re-locking $constraints (commit it)"
  lock_constraints
fi
bash sandbox_images/debian-base.sh "$base"
fill_wheelhouse
for target in gateway worker redis; do
  echo "building sandpit/$target:$version"
  # Host networking: the build reaches Debian's mirror the way the host does, whatever the bridge allows.
  docker build --quiet --network host -f sandbox_images/Dockerfile --target "$target" \
    --build-arg BASE_IMAGE="$base" --build-arg PIP_INSTALL_ARGS=--no-index \
    --build-arg SANDPIT_LANGUAGES="${SANDPIT_LANGUAGES:-all}" \
    -t "sandpit/$target:$version" . >/dev/null
done
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^sandpit/(gateway|worker|redis):$version "
