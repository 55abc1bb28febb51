#!/usr/bin/env bash
# make demo: a throwaway lab (two network namespaces, a PKI, Debian's OpenVPN 2.6 server) with
# bin/ovpnd connecting to it: shows the tunnel's addresses and routes, pings through it, moves
# 16 MiB each way byte for byte, stops ovpnd and checks nothing is left behind. `make demo`
# runs `make build` first; this script builds nothing of ovpnd itself. Needs root.
#   CLIENT=openvpn tests/demo.sh   runs the same demo with the OpenVPN client instead.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENT=${CLIENT:-ovpnd}
if [ "$CLIENT" = ovpnd ] && [ ! -x bin/ovpnd ]; then
  echo "demo: bin/ovpnd is missing: run 'make build' (or 'make demo', which builds it) first" >&2
  exit 1
fi
. tests/labctl.sh
if run_labctl demo -client "$CLIENT" -ovpnd bin/ovpnd; then
  echo "==> demo finished: the tunnel worked and everything was cleaned up"
else
  rc=$?
  echo "==> demo FAILED (exit $rc); the lab was cleaned up" >&2
  exit "$rc"
fi
