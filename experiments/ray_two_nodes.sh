#!/usr/bin/env bash
# A Ray cluster of two "machines" (two network namespaces joined by a veth pair) and a
# FedMuscle simulation on it: the stand-in for two hosts of a real cluster (root, Linux).
#
#   sudo experiments/ray_two_nodes.sh up      # namespaces + `ray start` head (A) and worker (B)
#   sudo experiments/ray_two_nodes.sh run -- fedmuscle run --preset tiny --rounds 2 ...
#   sudo experiments/ray_two_nodes.sh down    # kill every process of the two namespaces, remove them
#
# On real machines: `ray start --head --port P` on one, `ray start --address HEAD:P` on the
# others, then `RAY_ADDRESS=HEAD:P fedmuscle run ...` on the head (docs/deployment.md,
# "A Ray cluster"). Ports: PORT_BASE..PORT_BASE+299 (default 27000), all inside the namespaces;
# each node's Ray workers take RAY2_WORKER_SPAN ports from its block + RAY2_WORKER_OFFSET
# (default 100 and 100; RAY2_WORKER_OFFSET=20 RAY2_WORKER_SPAN=40 keeps all in BASE..BASE+69).
set -euo pipefail
PREFIX=${RAY2_PREFIX:-fm26}
NET=${RAY2_NET:-10.78.26}
BASE=${PORT_BASE:-27000}
CPUS=${RAY2_CPUS:-1}                     # CPUs each node offers (one actor per CPU)
W_OFF=${RAY2_WORKER_OFFSET:-100} W_SPAN=${RAY2_WORKER_SPAN:-100}
TMP=${RAY2_TMP:-/tmp/$PREFIX-ray}
A=${PREFIX}a B=${PREFIX}b HEAD="$NET.1:$BASE"

node_ports() {  # $1 = offset of the node's block of ports
  local o=$((BASE + $1))
  echo "--node-manager-port=$((o + 1)) --object-manager-port=$((o + 2))" \
    "--dashboard-agent-listen-port=$((o + 4)) --dashboard-agent-grpc-port=$((o + 5))" \
    "--runtime-env-agent-port=$((o + 6)) --metrics-export-port=$((o + 7))" \
    "--min-worker-port=$((o + W_OFF)) --max-worker-port=$((o + W_OFF + W_SPAN - 1))"
}

up() {
  ip netns add "$A"; ip netns add "$B"
  ip link add "${A}v" type veth peer name "${B}v"
  ip link set "${A}v" netns "$A"; ip link set "${B}v" netns "$B"
  ip -n "$A" addr add "$NET.1/24" dev "${A}v"; ip -n "$B" addr add "$NET.2/24" dev "${B}v"
  for n in "$A" "$B"; do ip -n "$n" link set lo up; ip -n "$n" link set "${n}v" up; done
  mkdir -p "$TMP"
  local common="--num-cpus=$CPUS --num-gpus=0 --object-store-memory=100000000 --disable-usage-stats"
  # shellcheck disable=SC2046,SC2086
  ip netns exec "$A" ray start --head --node-ip-address="$NET.1" --port="$BASE" $common \
    --include-dashboard=false --ray-client-server-port=$((BASE + 3)) $(node_ports 0) \
    --temp-dir="$TMP/tmp" >"$TMP/head.log" 2>&1
  # shellcheck disable=SC2046,SC2086
  ip netns exec "$B" ray start --address="$HEAD" --node-ip-address="$NET.2" $common \
    $(node_ports 10) >"$TMP/worker.log" 2>&1
  ip netns exec "$A" ray status --address="$HEAD"
}

run() {  # the command runs on node A with RAY_ADDRESS set; actors counted per node meanwhile
  ( while sleep 2; do
      for n in "$A" "$B"; do
        c=0; for p in $(ip netns pids "$n"); do
          tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q ClientAppActor && c=$((c + 1))
        done; printf '%s=%s ' "$n" "$c"
      done; date +%T
    done ) >"$TMP/actors.log" 2>&1 &
  local mon=$!
  ip netns exec "$A" env RAY_ADDRESS="$HEAD" "$@" || { kill "$mon"; return 1; }
  kill "$mon"
  echo "ClientApp actors seen per node (samples every 2 s): $TMP/actors.log"
  grep -v "$A=0 $B=0" "$TMP/actors.log" | awk '{print $1, $2}' | sort | uniq -c
}

down() {  # every process started in the two namespaces, by pid, then the namespaces
  for n in "$A" "$B"; do
    for sig in TERM KILL; do
      pids=$(ip netns pids "$n" 2>/dev/null || true)
      [ -z "$pids" ] && break
      # shellcheck disable=SC2086
      kill -s "$sig" $pids 2>/dev/null || true; sleep 3
    done
    left=$(ip netns pids "$n" 2>/dev/null | wc -l)
    echo "$n: $left processes left"
    ip netns del "$n" 2>/dev/null || true
  done
}

case "${1:-}" in
  up) up ;;
  run) shift; [ "${1:-}" = "--" ] && shift; run "$@" ;;
  down) down ;;
  *) echo "usage: $0 up | run -- COMMAND... | down" >&2; exit 2 ;;
esac
