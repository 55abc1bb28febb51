# Sourced by tests/demo.sh and tests/bench.sh: builds tests/lab/cmd/labctl into a temp dir and
# runs it, removing everything on exit, Ctrl-C or TERM, even if labctl itself is killed.
# Usage: run_labctl SUBCOMMAND [ARGS...]

if [ "$(id -u)" -ne 0 ]; then
  echo "$(basename "$0"): needs root (it creates network namespaces)" >&2
  exit 1
fi

_lab_tmp=$(mktemp -d /tmp/ovpnd-labctl.XXXXXX)
_lab_pid=""
_lab_cleanup() {
  local rc=$?
  if [ -n "$_lab_pid" ] && kill -0 "$_lab_pid" 2>/dev/null; then
    kill -TERM "$_lab_pid" 2>/dev/null || true
    wait "$_lab_pid" 2>/dev/null || true
  fi
  # labctl cleans up after itself; this catches a labctl that was killed outright.
  if [ -n "$_lab_pid" ]; then
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^ovl-${_lab_pid}-" || true); do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf /tmp/ovl-"${_lab_pid}"-* /tmp/ovpnd-lab-"${_lab_pid}"
  fi
  rm -rf "$_lab_tmp"
  exit "$rc"
}
trap _lab_cleanup EXIT
trap 'exit 130' INT TERM HUP

run_labctl() {
  echo "==> building the lab helper (tests/lab/cmd/labctl)"
  ${GO:-go} build -o "$_lab_tmp/labctl" ./tests/lab/cmd/labctl
  "$_lab_tmp/labctl" "$@" &
  _lab_pid=$!
  wait "$_lab_pid"
}
