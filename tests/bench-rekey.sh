#!/usr/bin/env bash
# make bench-rekey: data stalls around rekeys under load. The OpenVPN 2.6 server (UDP, tls-crypt,
# AES-256-GCM) renegotiates every BENCH_RENEG_BYTES of data-channel traffic (and, if set, every
# BENCH_RENEG_SEC seconds) while iperf3 runs a single TCP stream each way
# through a link shaped to BENCH_RATE (tc tbf on both veth ends). The OpenVPN 2.6 client and
# bin/ovpnd alternate; the receiver's tun counters are sampled every 5 ms and every span over
# BENCH_GAP without delivered data counts as a stall (at a rekey when the server completed a
# handshake from 1 s before it to its end); the server's log gives each rekey's time from its
# soft reset to the completed handshake (10 ms resolution). Prints the environment, each run,
# and per client and direction: rekeys, rekey times (median, longest, how many over 1 s),
# stalls (their ratio per rekey), stalled time, the longest stall and iperf3's TCP retransmits.
# Needs root.
#   BENCH_DURATION=20s  BENCH_RUNS=3  BENCH_RATE=200mbit  BENCH_RENEG_BYTES=33554432  BENCH_RENEG_SEC=0  BENCH_GAP=200ms
set -euo pipefail
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { echo "bench-rekey: iperf3 missing: run .ci/install-deps" >&2; exit 1; }
. tests/labctl.sh
run_labctl rekey -ovpnd bin/ovpnd -duration "${BENCH_DURATION:-20s}" -runs "${BENCH_RUNS:-3}" \
  -rate "${BENCH_RATE:-200mbit}" -reneg-sec "${BENCH_RENEG_SEC:-0}" -reneg-bytes "${BENCH_RENEG_BYTES:-33554432}" \
  -gap "${BENCH_GAP:-200ms}"
