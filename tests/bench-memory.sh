#!/usr/bin/env bash
# make bench-memory: client memory in one lab and one run, against the same OpenVPN 2.6 server
# (UDP, tls-crypt, AES-256-GCM): (1) Debian's OpenVPN 2.6 client, then bin/ovpnd run, each
# under iperf3 traffic while the server renegotiates every BENCH_RENEG_SEC seconds: RSS when
# the tunnel is up, after the first traffic and at the end, with the renegotiation count;
# (2) BENCH_SESSIONS OpenVPN client processes against one ovpnd daemon (private D-Bus) with as
# many sessions: total RSS and PSS, and the ratio. Prints the environment first. Needs root.
#   BENCH_MEMORY_DURATION=60s  traffic per client   BENCH_RENEG_SEC=2   BENCH_SESSIONS=10
set -euo pipefail
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { echo "bench-memory: iperf3 missing: run .ci/install-deps" >&2; exit 1; }
. tests/labctl.sh
run_labctl memory -ovpnd bin/ovpnd -ovpnctl bin/ovpnctl -duration "${BENCH_MEMORY_DURATION:-60s}" \
  -reneg-sec "${BENCH_RENEG_SEC:-2}" -sessions "${BENCH_SESSIONS:-10}"
