#!/usr/bin/env bash
# make bench-faults: handshakes over an impaired link (this kernel has no sch_netem, so
# tests/lab/cmd/lossy relays the client's datagrams to the OpenVPN 2.6 server, dropping
# BENCH_LOSS of them each way and delaying the rest by 20 ± 10 ms, which reorders them). The
# OpenVPN 2.6 client and bin/ovpnd alternate; prints each run, the median time from start to
# tunnel up and the success rate (a ping through the tunnel within 30 s). Needs root.
#   BENCH_HANDSHAKES=10  handshakes per client     BENCH_LOSS=0.1  loss each way
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/labctl.sh
run_labctl faults -ovpnd bin/ovpnd -handshakes "${BENCH_HANDSHAKES:-10}" -loss "${BENCH_LOSS:-0.1}"
