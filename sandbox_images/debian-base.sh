#!/usr/bin/env bash
# Build a local stand-in for `debian:bookworm-slim` with debootstrap + `docker import`, for machines
# that reach Debian's mirror but no container registry. The rootfs tarball is cached, so only the
# first run pays for debootstrap (about 30 s).
#
#   sandbox_images/debian-base.sh [TAG]        default TAG: sandpit/debian:bookworm-slim
#
# Environment: SANDPIT_IMAGE_CACHE (default .cache/images), DEBIAN_MIRROR, REFRESH=1 to rebuild.
set -euo pipefail

tag=${1:-sandpit/debian:bookworm-slim}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${SANDPIT_IMAGE_CACHE:-.cache/images}
tarball=$cache/debian-$suite-slim.tar

if [[ -z ${REFRESH:-} ]] && docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag exists"
  exit 0
fi

if [[ -n ${REFRESH:-} || ! -s $tarball ]]; then
  command -v debootstrap >/dev/null || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  mkdir -p "$cache"
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/sandpit-rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap $suite from $mirror"
  debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$cache/debootstrap.log"

  # What the official slim image does: no docs, man pages or translations installed by later layers,
  # no apt caches kept in layers, and the same three sources (release, updates, security).
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/*/changelog* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.partial" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* .
  mv "$tarball.partial" "$tarball"
fi

echo "importing $tarball as $tag"
docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$tag" >/dev/null
