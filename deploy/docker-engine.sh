#!/usr/bin/env bash
# Make a Docker daemon answer for `make container-test` (and .ci/run): when `docker info` fails, install Debian's
# docker.io, docker-compose and mmdebstrap if they are missing, then start dockerd without its default bridge and
# without iptables rules (containers in the tests use the host's network on 127.0.0.1 only). Exit 0 when a daemon
# answers; otherwise print the reason on one line ("docker-engine: ...") and exit 1, and the tests skip.
set -uo pipefail

LOG=${DOCKERD_LOG:-/tmp/chexnet-dockerd.log}

answers() { docker info > /dev/null 2>&1; }
give_up() { echo "docker-engine: $*" >&2; exit 1; }

answers && exit 0

missing=()
command -v dockerd > /dev/null || missing+=(docker.io)
command -v docker-compose > /dev/null || missing+=(docker-compose)
command -v mmdebstrap > /dev/null || missing+=(mmdebstrap)
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || give_up "not root, and ${missing[*]} must be installed (apt-get install ${missing[*]})"
  echo "docker-engine: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } > /dev/null 2>&1 \
    || give_up "apt-get install ${missing[*]} failed"
fi

[ "$(id -u)" = 0 ] || give_up "no daemon answers and starting dockerd needs root"
echo "docker-engine: starting dockerd --bridge=none --iptables=false (log: $LOG)" >&2
nohup dockerd --bridge=none --iptables=false > "$LOG" 2>&1 &
for _ in $(seq 60); do
  answers && exit 0
  kill -0 $! 2> /dev/null || give_up "dockerd exited at start-up (no privileges for containers here?); see $LOG"
  sleep 1
done
give_up "dockerd started but did not answer within 60 s; see $LOG"
