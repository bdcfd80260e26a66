#!/usr/bin/env bash
# Chat benchmark: socketkit serve chat vs ncat --chat, in one run, same load.
#
# 1000 clients join one room, 50 of them send numbered timestamped lines
# (at most WINDOW in flight each, default 8), every client reads everything.
# Reports delivered messages per second, delivery latency percentiles, the
# server's CPU per delivered line and peak RSS for socketkit (default
# runtime, and --threads 1) and ncat, and the ratios against ncat.
#
#   bench/chat/run.sh [CLIENTS] [SENDERS] [MESSAGES_PER_SENDER] [WINDOW]
#
# Needs ncat (apt-get install ncat). Loopback only; every server it starts
# is stopped by PID on exit.
set -euo pipefail
# A failed run inside $(...) must stop the script, not print half a line.
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."

clients=${1:-1000}
senders=${2:-50}
messages=${3:-200}
window=${4:-8}

command -v ncat >/dev/null || { echo "bench/chat: ncat is missing (apt-get install ncat)" >&2; exit 1; }
ulimit -n 8192
# Two builds: naming an example would restrict one build to examples only.
cargo build --release -q -p socketkit-cli
cargo build --release -q -p socketkit --example chat_bench
bench=target/release/examples/chat_bench
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

peak_rss() { awk '/VmHWM/ { printf "%.1fMiB", $2 / 1024 }' "/proc/$1/status"; }

# Waits (bounded) until something accepts connections on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench/chat: nothing listening on port $1" >&2
  exit 1
}

run() { # label pid addr [--nick]
  local label=$1 pid=$2 addr=$3
  shift 3
  # --pid: the load generator reads the server's CPU time over the send
  # phase only (less sensitive than the rate to whatever else the machine
  # runs, and without the join storm).
  local result
  result=$("$bench" "$addr" --label "$label" --clients "$clients" --senders "$senders" \
    --messages "$messages" --window "$window" --pid "$pid" "$@")
  echo "$result rss_peak=$(peak_rss "$pid")"
}

# socketkit with its default runtime (one worker thread per core), then on
# one thread (`--threads 1`, the choice for a box this small, where the load
# generator needs the other core); then ncat.
socketkit() { # label [serve args...]
  local label=$1 port pid
  shift
  port=$(free_port)
  # Queues of 65,536 lines / 16 MiB: one load-generator thread reading a
  # thousand sockets reads some of them late, and at 50M lines a second the
  # default 4096 lines are 80 ms of lag; that must not count as a slow
  # consumer here (ncat has no such limit: it would stall instead).
  target/release/socketkit serve chat "127.0.0.1:$port" --rate 0 --max-conns $((clients + 100)) \
    --queue 65536 --queue-bytes 16777216 -q "$@" >/dev/null &
  pid=$!
  pids+=("$pid")
  wait_port "$port"
  run "$label" "$pid" "127.0.0.1:$port" --nick
  kill "$pid"
}
default_result=$(socketkit socketkit)
threads1_result=$(socketkit socketkit-threads-1 --threads 1)

port=$(free_port)
ncat -l -k --chat -m $((clients + 100)) 127.0.0.1 "$port" >/dev/null 2>&1 &
nc=$!
pids+=("$nc")
wait_port "$port"
ncat_result=$(run ncat "$nc" "127.0.0.1:$port")
kill "$nc"

printf '%s\n' "$default_result" "$threads1_result" "$ncat_result"
field() { sed "s/.* $1=\([0-9.]*\).*/\1/" <<<"$2"; }
for result in "$default_result" "$threads1_result"; do
  python3 -c "print(f'{\"${result%%:*}\"}/ncat: {$(field msgs_per_sec "$result") / $(field msgs_per_sec "$ncat_result"):.1f}x the delivered lines per second, p99 {$(field p99_ms "$ncat_result") / $(field p99_ms "$result"):.1f}x lower, {$(field server_ns_per_delivery "$ncat_result") / $(field server_ns_per_delivery "$result"):.1f}x less server CPU per line')"
done
