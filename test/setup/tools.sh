#!/usr/bin/env bash
# Makes sure the system tools the test suite drives are on PATH: etcd (etcd store
# tests), dig (GeoDNS tests), mmdblookup (checks the test .mmdb writer), openssl
# (test certificates), curl (HTTPS clients), pebble with pebble-challtestsrv
# (a test ACME CA and its DNS, for the ACME tests), promtool (checks and unit
# tests of the Prometheus alerts) and chromium (the dashboard's browser tests).
# Missing ones are installed with apt-get when this runs as root or with
# password-less sudo; otherwise it stops with one line naming what to install.
set -euo pipefail

tools=(etcd dig mmdblookup openssl curl pebble pebble-challtestsrv promtool chromium)
packages=(etcd-server dnsutils mmdb-bin openssl curl pebble pebble prometheus chromium)
missing=()
for i in "${!tools[@]}"; do
  command -v "${tools[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
# One package can bring several tools: ask for it once.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ]; then
  apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  apt=(sudo -n apt-get)
else
  apt=()
fi
if [ ${#apt[@]} -eq 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "meridian tests need: ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "installing test tools: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" install -y -q "${missing[@]}" >/dev/null \
  || { "${apt[@]}" update -q >/dev/null && "${apt[@]}" install -y -q "${missing[@]}" >/dev/null; }
