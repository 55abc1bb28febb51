#!/usr/bin/env bash
# make bench-faults: handshakes over an impaired link at several loss levels (this kernel has no
# sch_netem, so tests/lab/cmd/lossy relays the client's datagrams to the OpenVPN 2.6 server,
# dropping a level's share of them each way and delaying the rest by 20 ± 10 ms, which reorders
# them). At every level the OpenVPN 2.6 client and bin/ovpnd alternate; prints the environment,
# each handshake (with the control packets it exposed to loss), and per level and client the
# success rate (a ping through the tunnel within the deadline) and the median time from start to
# tunnel up, with ovpnd/OpenVPN ratios. Needs root. About 6-10 minutes with the defaults.
#   BENCH_HANDSHAKES=6                handshakes per client and level
#   BENCH_LOSS=0,0.05,0.1,0.2,0.3     loss levels, each way
#   BENCH_DEADLINE=30s                success deadline per handshake
#   BENCH_TRACE=1                     print every handshake's control packets
#   BENCH_RECONNECT=1                 also time a reconnect (SIGUSR1) to a ping through the tunnel
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/labctl.sh
run_labctl faults -ovpnd bin/ovpnd -handshakes "${BENCH_HANDSHAKES:-6}" -loss "${BENCH_LOSS:-0,0.05,0.1,0.2,0.3}" \
  -deadline "${BENCH_DEADLINE:-30s}" ${BENCH_TRACE:+-trace} ${BENCH_RECONNECT:+-reconnect}
