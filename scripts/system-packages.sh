#!/usr/bin/env bash
# Install the Debian packages the product needs beyond Python: a CJK font for PDFs, Chromium for browser tests.
# Only as root and only what is missing; a non-root developer is told what to install instead.
set -u
need=()
fc-list 2>/dev/null | grep -qi "noto.*cjk" || need+=(fonts-noto-cjk)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# docker-compose.yml is checked with `docker compose config` (no engine needed); Debian's docker-compose
# stands in when the Docker client has no compose plugin.
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
    || echo "warning: could not install ${need[*]}" >&2
else
  echo "note: install these Debian packages for PDFs in Chinese and browser tests: ${need[*]}" >&2
fi
exit 0
