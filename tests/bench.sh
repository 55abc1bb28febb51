#!/usr/bin/env bash
# make bench: in one lab and one run, Debian's OpenVPN 2.6 client and bin/ovpnd against the same
# OpenVPN 2.6 server (UDP, tls-crypt, AES-256-GCM): handshake time (process start to tunnel
# address present, median of 3), ping RTT, iperf3 single TCP stream each way, client
# CPU-seconds per GB (utime+stime from /proc/PID/stat around each iperf3 run), client RSS
# (VmRSS and VmHWM). Prints a table with ovpnd/openvpn ratios; the ovpnd column reads
# "n/a (bin/ovpnd missing)" until the binary is built. Needs root.
#   BENCH_DURATION=10s  iperf3 time per direction     BENCH_HANDSHAKES=3  handshakes to time
set -euo pipefail
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { echo "bench: iperf3 missing: run .ci/install-deps" >&2; exit 1; }
. tests/labctl.sh
run_labctl bench -ovpnd bin/ovpnd -duration "${BENCH_DURATION:-10s}" -handshakes "${BENCH_HANDSHAKES:-3}"
