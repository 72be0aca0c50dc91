#!/usr/bin/env bash
# Installs the Debian packages sdbx needs on this machine, when run as root
# and something is missing. Sourced by serve.sh and test.sh.
#   deps.sh            packages the server and its built-in templates use
#   deps.sh --test     the same (kept for the test command's clarity)
set -euo pipefail

# btrfs-progs: mkfs.btrfs makes the disk pool that holds sandbox files
# with per-sandbox quotas (docs/runtime-linux.md "Disk quotas").
want=(python3 bash coreutils procps python3-numpy python3-pandas python3-matplotlib btrfs-progs)
# Node.js runs the JavaScript templates; npm fetches the real Node.js 18
# (and 20 when the host has none) for nodejs-18/nodejs-20, and runs the
# TypeScript SDK's tests.
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)
# Sandbox egress: the server programs nftables and links through netlink
# (no binary needed); nft and ip are for inspecting them, and the network
# tests check that a sandbox's own `ip` and `nft` are refused.
want+=(nftables iproute2)
# ca-certificates: the system CA bundle that sandboxes see at
# /etc/ssl/certs (nodejs-18/20 point NODE_EXTRA_CA_CERTS at it).
want+=(ca-certificates)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "sdbx: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "sdbx: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
