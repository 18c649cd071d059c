#!/usr/bin/env bash
# Hub benchmark: TCP throughput (1 and 8 streams), connection rate and small-message round trip through a port
# allocated on `porthole hub` and forwarded by `porthole connector` (pooled data connections; TLS tunnel as deployed,
# and a plain-TCP tunnel to show what TLS costs), against direct loopback and a plain socat relay, in the same run. Writes section "hub" of BENCHMARKS.md.
# Run as `npm run bench:hub` (builds dist/ first). Everything stays on 127.0.0.1; every process started here is
# stopped by pid on exit; every step has a time limit.
# Tunables: BENCH_DURATION (iperf3 seconds, 3), BENCH_REPEATS (1), BENCH_CONNS (1000), BENCH_CONCURRENCY (50),
# BENCH_RTT_ROUNDS (5000), BENCH_RTT_SIZE (64), BENCH_BASE_PORT (26100).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export BENCH_DURATION=${BENCH_DURATION:-3}
export BENCH_REPEATS=${BENCH_REPEATS:-1}
export BENCH_CONNS=${BENCH_CONNS:-1000}
export BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-50}
export BENCH_RTT_ROUNDS=${BENCH_RTT_ROUNDS:-5000}
export BENCH_RTT_SIZE=${BENCH_RTT_SIZE:-64}
export BENCH_NPROC=$(nproc)
BASE_PORT=${BENCH_BASE_PORT:-26100}

log() { printf '[bench:hub %s] %s\n' "$(date +%T)" "$*" >&2; }

for tool in iperf3 socat curl; do
  command -v "$tool" >/dev/null || { echo "bench:hub: $tool missing (apt-get install -y iperf3 socat curl)" >&2; exit 1; }
done
[ -f "$ROOT/dist/cli/main.js" ] || { echo "bench:hub: dist/cli/main.js missing; run npm run build" >&2; exit 1; }

WORK=$(mktemp -d /tmp/porthole-bench-hub.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true # socat's per-connection children
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' /proc/net/tcp
}
# start NAME PORT CMD...: runs CMD in the background, waits (<= 15 s) until PORT listens.
start() {
  local name=$1 port=$2
  shift 2
  "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 150); do
    if listening "$port"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench:hub: $name did not listen on $port" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}

read -r -a FREE < <(node bench/free-ports.mjs 10 "$BASE_PORT")
[ "${#FREE[@]}" -eq 10 ] || { echo "bench:hub: no free ports" >&2; exit 1; }
P_IPERF=${FREE[0]} P_ONCE=${FREE[1]} P_STREAM=${FREE[2]}
S_IPERF=${FREE[3]} S_ONCE=${FREE[4]} S_STREAM=${FREE[5]}
P_TUNNEL=${FREE[6]} P_API=${FREE[7]} P_TUNNEL2=${FREE[8]} P_API2=${FREE[9]}
RANGE_BEGIN=$((FREE[9] + 100))

log "nproc $BENCH_NPROC, node $(node --version), work dir $WORK"
start iperf3-server "$P_IPERF" iperf3 -s -B 127.0.0.1 -p "$P_IPERF"
start echo-server "$P_ONCE" node bench/echo-server.mjs "$P_ONCE" "$P_STREAM"
SOCAT_OPTS=bind=127.0.0.1,reuseaddr,fork,backlog=511
start socat-iperf "$S_IPERF" socat "TCP-LISTEN:$S_IPERF,$SOCAT_OPTS" "TCP:127.0.0.1:$P_IPERF"
start socat-once "$S_ONCE" socat "TCP-LISTEN:$S_ONCE,$SOCAT_OPTS" "TCP:127.0.0.1:$P_ONCE"
start socat-stream "$S_STREAM" socat "TCP-LISTEN:$S_STREAM,$SOCAT_OPTS" "TCP:127.0.0.1:$P_STREAM"

declare -A PORT=([direct/iperf]=$P_IPERF [direct/once]=$P_ONCE [direct/stream]=$P_STREAM
  [socat/iperf]=$S_IPERF [socat/once]=$S_ONCE [socat/stream]=$S_STREAM)

# hub_path NAME TLS TUNNEL_PORT API_PORT RANGE_BEGIN: a hub (tunnel listener with TLS 1, as deployed, or plain TCP 0)
# and one connector; one allocated, forwarded hub port per target, recorded as PORT[NAME/kind].
hub_path() {
  local name=$1 tls=$2 tunnel=$3 api_port=$4 begin=$5 no_tls=()
  [ "$tls" = 0 ] && no_tls=(--no-tls)
  start "$name" "$tunnel" node dist/cli/main.js hub --tunnel-listen "127.0.0.1:$tunnel" --admin-listen 127.0.0.1:0 --http-listen off --https-listen off \
    --public-bind 127.0.0.1 --state-dir "$WORK/$name" --port-range "$begin-$((begin + 49))" --token bench-token-0001 \
    --tls "$tls" --log warn
  timeout 30 node dist/cli/main.js connector configure --config "$WORK/$name.json" --hub "127.0.0.1:$tunnel" \
    --token bench-token-0001 --name bench "${no_tls[@]}" >"$WORK/$name-configure.log" 2>&1 ||
    { cat "$WORK/$name-configure.log" >&2; exit 1; }
  start "$name-connector" "$api_port" node dist/cli/main.js connector start --config "$WORK/$name.json" \
    --api-port "$api_port" --log warn
  local api=http://127.0.0.1:$api_port/api/client/v1.0 kind port
  for _ in $(seq 100); do
    curl -sf "$api/info" | grep -q '"isTunConnected":true' && break
    sleep 0.1
  done
  for kind in iperf once stream; do
    port=$(curl -sf --max-time 20 "$api/ports/allocate" |
      node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0)).port))')
    curl -sf --max-time 20 -H 'content-type: application/json' \
      -d "{\"ports\":[{\"port\":$port,\"destination\":\"127.0.0.1\",\"dstPort\":${PORT[direct/$kind]}}]}" \
      "$api/traffic/create" >/dev/null
    PORT[$name/$kind]=$port
    for _ in $(seq 100); do listening "$port" && break; sleep 0.1; done
  done
  timeout 10 node bench/probe.mjs "${PORT[$name/stream]}" stream 3000 ||
    { echo "bench:hub: no traffic through $name" >&2; exit 1; }
  log "$name ports: iperf ${PORT[$name/iperf]}, once ${PORT[$name/once]}, stream ${PORT[$name/stream]}"
}
hub_path hub 1 "$P_TUNNEL" "$P_API" "$RANGE_BEGIN"
hub_path hubplain 0 "$P_TUNNEL2" "$P_API2" "$((RANGE_BEGIN + 50))"

RESULTS=$WORK/results.tsv
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }
json_field() { node -e 'try { const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]];
  process.stdout.write(Number.isFinite(v) ? String(v) : "NaN") } catch { process.stdout.write("NaN") }' "$1" "$2"; }

iperf() {
  local metric=$1 path=$2 rep=$3
  shift 3
  local out="$WORK/iperf-$metric-$path-$rep.json" value=NaN
  if timeout $((BENCH_DURATION + 20)) iperf3 -c 127.0.0.1 -p "${PORT[$path/iperf]}" -t "$BENCH_DURATION" -J "$@" \
    >"$out" 2>"$out.err"; then
    value=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      process.stdout.write(String(r.end.sum_received.bits_per_second / 1e9))' "$out" 2>>"$out.err" || echo NaN)
  fi
  [ "$value" = NaN ] && { log "iperf3 $metric via $path failed: $(head -c 300 "$out.err")"; sleep 1; }
  record "$metric" "$path" "$rep" "$value"
  printf '  %-7s %-7s %6.2f Gbit/s\n' "$metric" "$path" "$value" >&2
}
conn_rate() {
  local path=$1 rep=$2 out="$WORK/conns-$1-$2.json"
  timeout 120 node bench/conn-rate.mjs "${PORT[$path/once]}" "$BENCH_CONNS" "$BENCH_CONCURRENCY" >"$out" 2>&1 ||
    log "conn-rate via $path: $(cat "$out")"
  record conns "$path" "$rep" "$(json_field "$out" perSecond)"
  record conns_failed "$path" "$rep" "$(json_field "$out" failed)"
  printf '  %-7s %-7s %6s conn/s (%s failed)\n' conns "$path" "$(json_field "$out" perSecond)" "$(json_field "$out" failed)" >&2
}
rtt() {
  local path=$1 rep=$2 out="$WORK/rtt-$1-$2.json"
  timeout 120 node bench/rtt.mjs "${PORT[$path/stream]}" "$BENCH_RTT_ROUNDS" "$BENCH_RTT_SIZE" >"$out" 2>&1 ||
    log "rtt via $path: $(cat "$out")"
  record rtt_med "$path" "$rep" "$(json_field "$out" medianUs)"
  record rtt_p99 "$path" "$rep" "$(json_field "$out" p99Us)"
  printf '  %-7s %-7s median %s µs, p99 %s µs\n' rtt "$path" "$(json_field "$out" medianUs)" "$(json_field "$out" p99Us)" >&2
}

PATHS=(direct socat hub hubplain)
SECONDS=0
for rep in $(seq "$BENCH_REPEATS"); do
  log "repeat $rep/$BENCH_REPEATS"
  for path in "${PATHS[@]}"; do iperf tput1 "$path" "$rep"; done
  for path in "${PATHS[@]}"; do iperf tput8 "$path" "$rep" -P 8; done
  for path in "${PATHS[@]}"; do conn_rate "$path" "$rep"; done
  for path in "${PATHS[@]}"; do rtt "$path" "$rep"; done
done
log "measured in ${SECONDS}s"
for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || log "WARNING: process $pid exited during the run"; done
for name in hub hub-connector hubplain hubplain-connector; do
  [ -s "$WORK/$name.log" ] && { log "$name logged:"; head -n 20 "$WORK/$name.log" >&2; }
done
node bench/hub-report.mjs "$RESULTS" "$ROOT/BENCHMARKS.md"
log "wrote section hub of BENCHMARKS.md"
