#!/usr/bin/env bash
# The long soak: the container suites (and the loopback ones) with many fault cycles, one
# test at a time so the figures are not shared with another cluster, on release builds.
#
#   cluster-tests/soak.sh [--cycles N] [--seed S] [--only pair|core|loopback] [--no-build]
#
#   --cycles N   fault cycles per test (default 40; CI runs 6 pair kills + 16 core cycles)
#   --seed S     replay a run's choices (a failing run prints its seed)
#   --only X     pair: the failover pair + witness drill (containers)
#                core: 3 core voters + 2 traffic nodes through every fault (containers)
#                loopback: both loopback tests (processes, no Docker)
#   --no-build   use the image and binaries as they are
#
# Needs root, a Docker engine, nsenter and iptables (as the container suite does). Prints
# each test's cycles and figures; the whole output is kept in target/soak-<time>.log. A
# linearizability violation or a lost acknowledged write fails the test with the seed and
# the path of the saved history.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cycles=40
seed=""
only=""
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles="${2:?--cycles needs a number}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --only) only="${2:?--only needs pair, core or loopback}"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$cycles" in ''|*[!0-9]*) echo "soak.sh: --cycles takes a whole number, not '$cycles'" >&2; exit 2 ;; esac

cd "$root"
if [ "$build" = 1 ]; then
  echo "== building the image and the release binaries"
  images/build.sh certraft-node:dev
  cargo build --release -p certraft-node -p certraft-cli --bin certraft-node --bin certraft
fi

tests=()
case "$only" in
  pair) tests=("containers containers_failover_pair") ;;
  core) tests=("containers containers_core_and_traffic") ;;
  loopback) tests=("loopback failover_pair" "loopback three_voters") ;;
  "") tests=("containers containers_failover_pair" "containers containers_core_and_traffic") ;;
  *) echo "soak.sh: --only takes pair, core or loopback, not '$only'" >&2; exit 2 ;;
esac

log="$root/target/soak-$(date +%Y%m%d-%H%M%S).log"
mkdir -p "$root/target"
export CYCLES="$cycles"
[ -n "$seed" ] && export SEED="$seed"
echo "== soak: $cycles cycles per test; output in $log"
status=0
for t in "${tests[@]}"; do
  set -- $t
  start=$SECONDS
  if ! cargo test --release -p certraft-cluster-tests --test "$1" "$2" -- --nocapture --test-threads=1 2>&1 | tee -a "$log"; then
    status=1
  fi
  echo "== $1 $2: $((SECONDS - start)) s" | tee -a "$log"
done
echo "== summary"
grep -E "seed [0-9]+|next acknowledged write:|linearizable|^test .* (ok|FAILED)" "$log" || true
exit "$status"
