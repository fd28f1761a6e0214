#!/usr/bin/env bash
# Build (once) a local stand-in for python:3.11-slim from Debian bookworm's packages, for machines where Docker Hub
# cannot be reached, and print its tag. The image has the same role as python:3.11-slim for the Dockerfile:
# Debian bookworm, Python 3.11 as `python`, venv, CA certificates, groupadd/useradd.
#
#   docker build --build-arg PYTHON_IMAGE="$(deploy/stand-in-base.sh)" -t chexnet:local .
#
# The tag is a hash of this script and of the host's CA bundle, which is copied in (and named by PIP_CERT and
# SSL_CERT_FILE) so that pip inside the build trusts what the host trusts, e.g. an egress proxy's certificate.
# A later run with the same inputs finds the image and builds nothing. Needs root, mmdebstrap and a Docker daemon.
set -euo pipefail

CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,passwd
REPOSITORY=chexnet-stand-in-base

key=$( { cat "$0"; cat "$CA_BUNDLE"; } | sha256sum | cut -c1-16)
tag="$REPOSITORY:$SUITE-$key"
if docker image inspect "$tag" > /dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

echo "stand-in-base: building $tag with mmdebstrap (a minute or two)" >&2
mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
  --customize-hook="cp '$CA_BUNDLE' \"\$1/etc/ssl/certs/host-ca-bundle.crt\"" \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* "$1"/usr/share/man/*' \
  "$SUITE" - http://deb.debian.org/debian \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt' \
      --change 'ENV PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt' \
      --change 'CMD ["python"]' \
      - "$tag" > /dev/null
echo "$tag"
