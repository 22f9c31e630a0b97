#!/bin/sh
# Build a base image for docker/Dockerfile from Debian packages (debootstrap), for machines
# that cannot pull from Docker Hub. It has the layout of Flower's flwr/base images
# (framework/docker/base/ubuntu/Dockerfile): a Python venv at /python/venv first on PATH and
# owned by the non-root user app (uid/gid 49999, home /app), WORKDIR /app, USER app, and the
# same Python environment variables. flwr itself is installed by docker/Dockerfile.
#
#   sudo docker/offline-base.sh [TAG]        (default TAG: local/flwr-base:py3.11-bookworm)
#
# Needs root, debootstrap and a reachable Debian mirror (MIRROR, default deb.debian.org);
# DOCKER_HOST is honoured. Debian bookworm ships Python 3.11, the project's version.
set -eu

TAG=${1:-local/flwr-base:py3.11-bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/fedmuscle-rootfs.XXXXXX")
trap 'rm -rf "$ROOTFS"' EXIT
chmod 0755 "$ROOTFS"   # mktemp made it 0700: it becomes the image's /

debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates,libsqlite3-0 \
    "$SUITE" "$ROOTFS" "$MIRROR"

chroot "$ROOTFS" /bin/sh -eu -c '
    groupadd --gid 49999 app
    useradd --no-create-home --home-dir /app --uid 49999 --gid 49999 -c "" app
    mkdir -p /app && chown app:app /app
    python3 -m venv /python/venv
    chown -R app:app /python/venv
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/* /usr/share/doc/* /usr/share/man/*
'

tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/python/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONIOENCODING=UTF-8' \
    --change 'ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 HOME=/app' \
    --change 'WORKDIR /app' \
    --change 'USER app' \
    --change 'CMD ["/bin/bash"]' \
    - "$TAG"
echo "built $TAG"
