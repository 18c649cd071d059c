#!/usr/bin/env bash
# porthole benchmarks: throughput (iperf3), connection rate and small-message latency, each measured direct on
# loopback, through socat (default buffer) and through the porthole single-end forwarder, in the same run; then the
# dual-end NodePass tunnel (server mode 2 + client mode 2, tls=0 and tls=1) against a chain of two socat relays
# standing in for the same two hops, and direct again, still in the same run.
# Writes BENCHMARKS.md. Run as `npm run bench` (which builds dist/ first).
#
# Everything stays on 127.0.0.1; every process started here is stopped by pid on exit; every step has a time limit.
# The same dual-end tunnel is also measured over the other pool transports: QUIC (type=1, TLS), WebSocket (type=2,
# tls=0) and HTTP/2 (type=3, which runs over TLS), beside type=0 in the same run.
# Tunables (environment): BENCH_DURATION (iperf3 seconds, 4), BENCH_DUAL_DURATION (iperf3 seconds for the dual-end
# part, 3), BENCH_REPEATS (5), BENCH_CONNS (2000), BENCH_CONCURRENCY (50), BENCH_RTT_ROUNDS (10000),
# BENCH_RTT_SIZE (64), BENCH_BASE_PORT (25100), BENCH_TRANSPORTS (pool types measured beside type 0: "1 2 3"; "" for
# none). A short run: BENCH_REPEATS=1 BENCH_DURATION=2 BENCH_DUAL_DURATION=2 BENCH_CONNS=500 BENCH_RTT_ROUNDS=2000.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

export BENCH_DURATION=${BENCH_DURATION:-4}
export BENCH_DUAL_DURATION=${BENCH_DUAL_DURATION:-3}
export BENCH_REPEATS=${BENCH_REPEATS:-5}
export BENCH_CONNS=${BENCH_CONNS:-2000}
export BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-50}
export BENCH_RTT_ROUNDS=${BENCH_RTT_ROUNDS:-10000}
export BENCH_RTT_SIZE=${BENCH_RTT_SIZE:-64}
export BENCH_TRANSPORTS=${BENCH_TRANSPORTS-1 2 3}
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
# 9 ports for the single-end part, 6 for the socat chain (A and B per target), 12 for the dual-end tunnels (tunnel
# port and client listen port, per target, per tls value), 18 for the QUIC, WebSocket and HTTP/2 tunnels (same, per type).
read -r -a FREE < <(node bench/free-ports.mjs 45 "$BASE_PORT")
[ "${#FREE[@]}" -eq 45 ] || { echo "bench: could not find free ports" >&2; exit 1; }
P_IPERF=${FREE[0]} P_ONCE=${FREE[1]} P_STREAM=${FREE[2]}
declare -A PORT=(
  [direct/iperf]=${FREE[0]} [direct/once]=${FREE[1]} [direct/stream]=${FREE[2]}
  [socat/iperf]=${FREE[3]} [socat/once]=${FREE[4]} [socat/stream]=${FREE[5]}
  [porthole/iperf]=${FREE[6]} [porthole/once]=${FREE[7]} [porthole/stream]=${FREE[8]}
  [chain/iperf]=${FREE[9]} [chain/once]=${FREE[10]} [chain/stream]=${FREE[11]}
  [chainB/iperf]=${FREE[12]} [chainB/once]=${FREE[13]} [chainB/stream]=${FREE[14]}
  [dual0/iperf]=${FREE[15]} [dual0/once]=${FREE[16]} [dual0/stream]=${FREE[17]}
  [tunnel0/iperf]=${FREE[18]} [tunnel0/once]=${FREE[19]} [tunnel0/stream]=${FREE[20]}
  [dual1/iperf]=${FREE[21]} [dual1/once]=${FREE[22]} [dual1/stream]=${FREE[23]}
  [tunnel1/iperf]=${FREE[24]} [tunnel1/once]=${FREE[25]} [tunnel1/stream]=${FREE[26]}
  [ws/iperf]=${FREE[27]} [ws/once]=${FREE[28]} [ws/stream]=${FREE[29]}
  [tunnelws/iperf]=${FREE[30]} [tunnelws/once]=${FREE[31]} [tunnelws/stream]=${FREE[32]}
  [h2/iperf]=${FREE[33]} [h2/once]=${FREE[34]} [h2/stream]=${FREE[35]}
  [tunnelh2/iperf]=${FREE[36]} [tunnelh2/once]=${FREE[37]} [tunnelh2/stream]=${FREE[38]}
  [quic/iperf]=${FREE[39]} [quic/once]=${FREE[40]} [quic/stream]=${FREE[41]}
  [tunnelquic/iperf]=${FREE[42]} [tunnelquic/once]=${FREE[43]} [tunnelquic/stream]=${FREE[44]}
)
# Pool transports measured beside type 0: path name -> pool type (tls=0 for all; QUIC and HTTP/2 run over TLS
# regardless).
declare -A TRANSPORT_TYPE=([quic]=1 [ws]=2 [h2]=3)
TRANSPORT_PATHS=()
for t in $BENCH_TRANSPORTS; do
  case $t in
    1) TRANSPORT_PATHS+=(quic) ;;
    2) TRANSPORT_PATHS+=(ws) ;;
    3) TRANSPORT_PATHS+=(h2) ;;
    *) echo "bench: BENCH_TRANSPORTS takes 1, 2 and/or 3, got $t" >&2; exit 2 ;;
  esac
done

log "nproc $BENCH_NPROC, node $(node --version), ports ${FREE[0]}..${FREE[44]}, work dir $WORK"
start iperf3-server "$P_IPERF" iperf3 -s -B 127.0.0.1 -p "$P_IPERF"
start echo-server "$P_ONCE" node bench/echo-server.mjs "$P_ONCE" "$P_STREAM"
listening "$P_STREAM" || sleep 0.5
SOCAT_LISTEN_OPTS=bind=127.0.0.1,reuseaddr,fork,backlog=511
for kind in iperf once stream; do
  target=${PORT[direct/$kind]}
  start "socat-$kind" "${PORT[socat/$kind]}" \
    socat "TCP-LISTEN:${PORT[socat/$kind]},$SOCAT_LISTEN_OPTS" "TCP:127.0.0.1:$target"
  start "porthole-$kind" "${PORT[porthole/$kind]}" \
    node dist/cli/main.js "client://127.0.0.1:${PORT[porthole/$kind]}/127.0.0.1:$target?mode=1&log=warn"
  # Two plain socat relays in a row: chain (A) -> chainB (B) -> target.
  start "chainB-$kind" "${PORT[chainB/$kind]}" \
    socat "TCP-LISTEN:${PORT[chainB/$kind]},$SOCAT_LISTEN_OPTS" "TCP:127.0.0.1:$target"
  start "chain-$kind" "${PORT[chain/$kind]}" \
    socat "TCP-LISTEN:${PORT[chain/$kind]},$SOCAT_LISTEN_OPTS" "TCP:127.0.0.1:${PORT[chainB/$kind]}"
done

# Dual-end tunnels, one per target and tls value: the server (egress, mode 2) dials the target, the client (ingress)
# listens on the dualT port. Both ends start now; readiness is checked below, after all of them had time to connect.
for tls in 0 1; do
  for kind in iperf once stream; do
    tp=${PORT[tunnel$tls/$kind]} lp=${PORT[dual$tls/$kind]}
    start "dual$tls-$kind-server" "$tp" \
      node dist/cli/main.js "server://benchkey@127.0.0.1:$tp/127.0.0.1:${PORT[direct/$kind]}?mode=2&tls=$tls&log=warn"
    start "dual$tls-$kind-client" "$lp" \
      node dist/cli/main.js "client://benchkey@127.0.0.1:$tp/127.0.0.1:$lp?mode=2&log=warn"
  done
done

for path in "${TRANSPORT_PATHS[@]}"; do
  for kind in iperf once stream; do
    tp=${PORT[tunnel$path/$kind]} lp=${PORT[$path/$kind]}
    start "$path-$kind-server" "$tp" \
      node dist/cli/main.js "server://benchkey@127.0.0.1:$tp/127.0.0.1:${PORT[direct/$kind]}?mode=2&tls=0&type=${TRANSPORT_TYPE[$path]}&log=warn"
    start "$path-$kind-client" "$lp" \
      node dist/cli/main.js "client://benchkey@127.0.0.1:$tp/127.0.0.1:$lp?mode=2&log=warn"
  done
done

# ready NAME PORT KIND: waits (<= 30 s) until a real exchange through PORT works: for iperf a 64 KiB iperf3 test, for
# the echo targets bench/probe.mjs. The client's listener is bound right after the handshake, but it refuses users
# until the control channel is up (and, with tls=1, the certificate verify round has passed).
declare -A LOG_SKIP=()
ready() {
  local name=$1 port=$2 kind=$3 attempt=0 t0=$SECONDS
  while [ $((SECONDS - t0)) -lt 30 ]; do
    attempt=$((attempt + 1))
    if [ "$kind" = iperf ]; then
      timeout 10 iperf3 -c 127.0.0.1 -p "$port" -n 64K >"$WORK/ready-$name.log" 2>&1 && break
      sleep 0.5 # a failed test leaves the iperf3 server a moment to reset
    else
      timeout 5 node bench/probe.mjs "$port" "$kind" 3000 2>"$WORK/ready-$name.log" && break
      sleep 0.2
    fi
  done
  if [ $((SECONDS - t0)) -ge 30 ]; then
    echo "bench: $name is not carrying traffic after 30 s" >&2
    cat "$WORK/ready-$name.log" "$WORK/$name-server.log" "$WORK/$name-client.log" >&2
    exit 1
  fi
  # Warnings logged while the tunnel was still coming up (users refused: not ready) are expected; skip them later.
  LOG_SKIP[$name-server]=$(wc -l <"$WORK/$name-server.log")
  LOG_SKIP[$name-client]=$(wc -l <"$WORK/$name-client.log")
  log "$name ready (attempt $attempt)"
}
T_READY=$SECONDS
for tls in 0 1; do
  for kind in iperf once stream; do ready "dual$tls-$kind" "${PORT[dual$tls/$kind]}" "$kind"; done
done
for path in "${TRANSPORT_PATHS[@]}"; do
  for kind in iperf once stream; do ready "$path-$kind" "${PORT[$path/$kind]}" "$kind"; done
done
log "dual-end tunnels ready in $((SECONDS - T_READY))s"

RESULTS=$WORK/results.tsv
: >"$RESULTS"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# iperf METRIC PATH REPEAT SECONDS [iperf3 args...]: one iperf3 run, records Gbit/s (receiver side) or NaN.
iperf() {
  local metric=$1 path=$2 rep=$3 secs=$4
  shift 4
  local out="$WORK/iperf-$metric-$path-$rep.json" value=NaN
  if timeout $((secs + 20)) iperf3 -c 127.0.0.1 -p "${PORT[$path/iperf]}" -t "$secs" -J "$@" \
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

# --- measurements (paths interleaved within each repeat so drift hits all of them alike) ----------------------------
# Single-end part: direct, socat, porthole. Dual-end part: direct (throughput again, at the dual-end duration; its
# connection rate and latency are the single-end part's direct figures, same settings and repeat), the socat chain,
# and the dual-end tunnel with tls=0 and tls=1.
PATHS=(direct socat porthole)
DUAL_PATHS=(chain dual0 dual1 "${TRANSPORT_PATHS[@]}")
SECONDS=0
for rep in $(seq "$BENCH_REPEATS"); do
  log "repeat $rep/$BENCH_REPEATS: single-end"
  for path in "${PATHS[@]}"; do iperf tput1 "$path" "$rep" "$BENCH_DURATION"; done
  for path in "${PATHS[@]}"; do iperf tput1r "$path" "$rep" "$BENCH_DURATION" -R; done
  for path in "${PATHS[@]}"; do iperf tput8 "$path" "$rep" "$BENCH_DURATION" -P 8; done
  for path in "${PATHS[@]}"; do conn_rate "$path" "$rep"; done
  for path in "${PATHS[@]}"; do rtt "$path" "$rep"; done
  log "repeat $rep/$BENCH_REPEATS: dual-end"
  for path in direct "${DUAL_PATHS[@]}"; do iperf dtput1 "$path" "$rep" "$BENCH_DUAL_DURATION"; done
  for path in direct "${DUAL_PATHS[@]}"; do iperf dtput8 "$path" "$rep" "$BENCH_DUAL_DURATION" -P 8; done
  for path in "${DUAL_PATHS[@]}"; do conn_rate "$path" "$rep"; done
  for path in "${DUAL_PATHS[@]}"; do rtt "$path" "$rep"; done
done
log "measured in ${SECONDS}s"

# A relay that died mid-run makes its figures meaningless: say so loudly.
for pid in "${PIDS[@]}"; do
  kill -0 "$pid" 2>/dev/null || log "WARNING: process $pid exited during the run"
done
# show_log NAME [SKIP]: prints what NAME logged (other than CHECK_POINT) after its first SKIP lines.
show_log() {
  local lines
  lines=$(tail -n +$((${2:-0} + 1)) "$WORK/$1.log" | grep -v CHECK_POINT || true)
  if [ -n "$lines" ]; then
    log "$1 logged (other than CHECK_POINT$([ "${2:-0}" -gt 0 ] && echo ", after it was ready")):"
    printf '%s\n' "$lines" | head -n 20 >&2
  fi
}
for kind in iperf once stream; do
  show_log "porthole-$kind"
  for tls in 0 1; do
    for end in server client; do show_log "dual$tls-$kind-$end" "${LOG_SKIP[dual$tls-$kind-$end]}"; done
  done
  for path in "${TRANSPORT_PATHS[@]}"; do
    for end in server client; do show_log "$path-$kind-$end" "${LOG_SKIP[$path-$kind-$end]}"; done
  done
done

node bench/report.mjs "$RESULTS" "$ROOT/BENCHMARKS.md"
log "wrote BENCHMARKS.md"
