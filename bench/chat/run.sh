#!/usr/bin/env bash
# Chat benchmark: socketkit serve chat vs ncat --chat, in one run, same load.
#
# 1000 clients join one room, 50 of them send numbered timestamped lines
# (at most WINDOW in flight each, default 8), every client reads everything. Reports
# delivered messages per second, delivery latency percentiles and the
# server's peak RSS, for both servers, and the throughput ratio.
#
#   bench/chat/run.sh [CLIENTS] [SENDERS] [MESSAGES_PER_SENDER] [WINDOW]
#
# Needs ncat (apt-get install ncat). Loopback only; every server it starts
# is stopped by PID on exit.
set -euo pipefail
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

port=$(free_port)
target/release/socketkit serve chat "127.0.0.1:$port" --rate 0 --max-conns $((clients + 100)) -q \
  >"$work/socketkit.out" &
sk=$!
pids+=("$sk")
wait_port "$port"
socketkit_result=$(run socketkit "$sk" "127.0.0.1:$port" --nick)
kill "$sk"

port=$(free_port)
ncat -l -k --chat -m $((clients + 100)) 127.0.0.1 "$port" >/dev/null 2>&1 &
nc=$!
pids+=("$nc")
wait_port "$port"
ncat_result=$(run ncat "$nc" "127.0.0.1:$port")
kill "$nc"

echo "$socketkit_result"
echo "$ncat_result"
rate() { sed 's/.*msgs_per_sec=\([0-9]*\).*/\1/' <<<"$1"; }
cost() { sed 's/.*server_ns_per_delivery=\([0-9]*\).*/\1/' <<<"$1"; }
python3 -c "print(f'throughput ratio socketkit/ncat: {$(rate "$socketkit_result") / $(rate "$ncat_result"):.1f}x; server CPU per delivery ncat/socketkit: {$(cost "$ncat_result") / $(cost "$socketkit_result"):.1f}x')"
