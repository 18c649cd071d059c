#!/usr/bin/env bash
# porthole benchmarks: throughput (iperf3), connection rate and small-message latency, each measured direct on
# loopback, through socat (default buffer) and through the porthole single-end forwarder, in the same run.
# Writes BENCHMARKS.md. Run as `npm run bench` (which builds dist/ first).
#
# Everything stays on 127.0.0.1; every process started here is stopped by pid on exit; every step has a time limit.
# Tunables (environment): BENCH_DURATION (iperf3 seconds, 4), BENCH_REPEATS (3), BENCH_CONNS (2000),
# BENCH_CONCURRENCY (50), BENCH_RTT_ROUNDS (10000), BENCH_RTT_SIZE (64), BENCH_BASE_PORT (25100).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

export BENCH_DURATION=${BENCH_DURATION:-4}
export BENCH_REPEATS=${BENCH_REPEATS:-3}
export BENCH_CONNS=${BENCH_CONNS:-2000}
export BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-50}
export BENCH_RTT_ROUNDS=${BENCH_RTT_ROUNDS:-10000}
export BENCH_RTT_SIZE=${BENCH_RTT_SIZE:-64}
export BENCH_NPROC=$(nproc)
BASE_PORT=${BENCH_BASE_PORT:-25100}

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# --- tools -------------------------------------------------------------------------------------------------------
if ! command -v iperf3 >/dev/null || ! command -v socat >/dev/null; then
  log "installing iperf3 and socat with apt-get"
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: iperf3/socat missing and not root; install them: apt-get install -y iperf3 socat" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq
  timeout 300 apt-get install -y -qq iperf3 socat >/dev/null
fi
[ -f "$ROOT/dist/cli/main.js" ] || { echo "bench: dist/cli/main.js missing; run npm run build" >&2; exit 1; }

# --- process bookkeeping -----------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/porthole-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    pkill -TERM -P "$pid" 2>/dev/null || true # socat's per-connection children
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True when something listens on TCP 127.0.0.1:$1 (reads /proc, no extra tools needed).
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' /proc/net/tcp
}

# start NAME PORT CMD...: starts CMD in the background and waits (≤ 10 s) until PORT listens.
start() {
  local name=$1 port=$2
  shift 2
  "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do
    if listening "$port"; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "bench: $name did not start listening on 127.0.0.1:$port" >&2
  cat "$WORK/$name.log" >&2
  exit 1
}

# --- servers and relays ------------------------------------------------------------------------------------------
read -r P_IPERF P_ONCE P_STREAM S_IPERF S_ONCE S_STREAM F_IPERF F_ONCE F_STREAM < <(node bench/free-ports.mjs 9 "$BASE_PORT")
[ -n "${F_STREAM:-}" ] || { echo "bench: could not find free ports" >&2; exit 1; }
declare -A PORT=(
  [direct/iperf]=$P_IPERF [direct/once]=$P_ONCE [direct/stream]=$P_STREAM
  [socat/iperf]=$S_IPERF [socat/once]=$S_ONCE [socat/stream]=$S_STREAM
  [porthole/iperf]=$F_IPERF [porthole/once]=$F_ONCE [porthole/stream]=$F_STREAM
)

log "nproc $BENCH_NPROC, node $(node --version), ports $P_IPERF..$F_STREAM, work dir $WORK"
start iperf3-server "$P_IPERF" iperf3 -s -B 127.0.0.1 -p "$P_IPERF"
start echo-server "$P_ONCE" node bench/echo-server.mjs "$P_ONCE" "$P_STREAM"
listening "$P_STREAM" || sleep 0.5
for kind in iperf once stream; do
  target=${PORT[direct/$kind]}
  start "socat-$kind" "${PORT[socat/$kind]}" \
    socat "TCP-LISTEN:${PORT[socat/$kind]},bind=127.0.0.1,reuseaddr,fork,backlog=511" "TCP:127.0.0.1:$target"
  start "porthole-$kind" "${PORT[porthole/$kind]}" \
    node dist/cli/main.js "client://127.0.0.1:${PORT[porthole/$kind]}/127.0.0.1:$target?mode=1&log=warn"
done

RESULTS=$WORK/results.tsv
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# iperf METRIC PATH REPEAT [iperf3 args...]: one iperf3 run, records Gbit/s (receiver side) or NaN.
iperf() {
  local metric=$1 path=$2 rep=$3
  shift 3
  local out="$WORK/iperf-$metric-$path-$rep.json" value=NaN
  if timeout $((BENCH_DURATION + 20)) iperf3 -c 127.0.0.1 -p "${PORT[$path/iperf]}" -t "$BENCH_DURATION" -J "$@" \
    >"$out" 2>"$out.err"; then
    value=$(node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      process.stdout.write(String(r.end.sum_received.bits_per_second / 1e9))' "$out" 2>>"$out.err" || echo NaN)
  fi
  if [ "$value" = NaN ]; then
    log "iperf3 $metric via $path failed: $(head -c 400 "$out.err") $(grep -m1 '"error"' "$out" 2>/dev/null || true)"
    sleep 1 # let the iperf3 server give up on the broken test before the next one
  fi
  record "$metric" "$path" "$rep" "$value"
  printf '  %-7s %-9s %6.2f Gbit/s\n' "$metric" "$path" "$value" >&2
}

# json_field FILE FIELD: prints a numeric field of a one-line JSON file, or NaN.
json_field() { node -e 'try { const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]];
  process.stdout.write(Number.isFinite(v) ? String(v) : "NaN") } catch { process.stdout.write("NaN") }' "$1" "$2"; }

conn_rate() {
  local path=$1 rep=$2 out="$WORK/conns-$1-$2.json"
  timeout 120 node bench/conn-rate.mjs "${PORT[$path/once]}" "$BENCH_CONNS" "$BENCH_CONCURRENCY" >"$out" 2>&1 ||
    log "conn-rate via $path: $(cat "$out")"
  local value failed
  value=$(json_field "$out" perSecond)
  failed=$(json_field "$out" failed)
  record conns "$path" "$rep" "$value"
  record conns_failed "$path" "$rep" "$failed"
  printf '  %-7s %-9s %6s conn/s (%s failed)\n' conns "$path" "$value" "$failed" >&2
}

rtt() {
  local path=$1 rep=$2 out="$WORK/rtt-$1-$2.json"
  timeout 120 node bench/rtt.mjs "${PORT[$path/stream]}" "$BENCH_RTT_ROUNDS" "$BENCH_RTT_SIZE" >"$out" 2>&1 ||
    log "rtt via $path: $(cat "$out")"
  record rtt_med "$path" "$rep" "$(json_field "$out" medianUs)"
  record rtt_p99 "$path" "$rep" "$(json_field "$out" p99Us)"
  printf '  %-7s %-9s median %s µs, p99 %s µs\n' rtt "$path" "$(json_field "$out" medianUs)" "$(json_field "$out" p99Us)" >&2
}

# --- measurements (paths interleaved within each repeat so drift hits all three alike) ------------------------------
PATHS=(direct socat porthole)
SECONDS=0
for rep in $(seq "$BENCH_REPEATS"); do
  log "repeat $rep/$BENCH_REPEATS"
  for path in "${PATHS[@]}"; do iperf tput1 "$path" "$rep"; done
  for path in "${PATHS[@]}"; do iperf tput1r "$path" "$rep" -R; done
  for path in "${PATHS[@]}"; do iperf tput8 "$path" "$rep" -P 8; done
  for path in "${PATHS[@]}"; do conn_rate "$path" "$rep"; done
  for path in "${PATHS[@]}"; do rtt "$path" "$rep"; done
done
log "measured in ${SECONDS}s"

# A relay that died mid-run makes its figures meaningless: say so loudly.
for pid in "${PIDS[@]}"; do
  kill -0 "$pid" 2>/dev/null || log "WARNING: process $pid exited during the run"
done
for kind in iperf once stream; do
  if grep -qv CHECK_POINT "$WORK/porthole-$kind.log"; then
    log "porthole-$kind logged (other than CHECK_POINT):"
    grep -v CHECK_POINT "$WORK/porthole-$kind.log" | head -n 20 >&2
  fi
done

node bench/report.mjs "$RESULTS" "$ROOT/BENCHMARKS.md"
log "wrote BENCHMARKS.md"
