#!/usr/bin/env bash
# make bench: in one lab and one run, Debian's OpenVPN 2.6 client and bin/ovpnd against the same
# OpenVPN 2.6 server (UDP, tls-crypt, AES-256-GCM), and a wireguard-go pair (tests/lab/cmd/wgpeer,
# built from the golang.zx2c4.com/wireguard module ovpnd uses) over the same veth: handshake time
# (process start to tunnel address present; median of four starts per client and run) and
# reconnect time (SIGUSR1 to the tunnel address present again, connect-retry 1 s included;
# median of three per client and run), ping RTT, iperf3 single TCP stream each way with
# its TCP retransmits, client CPU-seconds per GB (utime+stime from /proc/PID/stat around each
# iperf3 run), client RSS (VmRSS and VmHWM). Every client is measured in every run, in a rotating
# order; the table shows medians over the runs and ovpnd's ratios to both references, after the
# environment (kernel, CPUs, load, versions). The ovpnd column reads "n/a (bin/ovpnd missing)"
# until the binary is built. Needs root.
#   BENCH_DURATION=6s  iperf3 time per direction     BENCH_RUNS=3  runs per client
# Then labctl pacing: upload retransmits on the veth and on a 100 Mbit/s uplink (BENCH_PACING_RUNS=3).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { echo "bench: iperf3 missing: run .ci/install-deps" >&2; exit 1; }
. tests/labctl.sh
run_labctl bench -ovpnd bin/ovpnd -duration "${BENCH_DURATION:-6s}" -runs "${BENCH_RUNS:-3}"
# Burstiness of uploads: TCP retransmits inside the tunnel on the plain veth and on a 100 Mbit/s
# uplink (tbf, 20 ms queue), OpenVPN's client and ovpnd alternated.
#   BENCH_PACING_RUNS=3  runs per client and link (0: skip)
if [ "${BENCH_PACING_RUNS:-3}" -gt 0 ]; then
  run_labctl pacing -ovpnd bin/ovpnd -duration "${BENCH_DURATION:-6s}" -runs "${BENCH_PACING_RUNS:-3}"
fi
