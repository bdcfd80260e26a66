#!/usr/bin/env bash
# File transfer over loopback, side by side in one run (issue: transfer speed):
#   socketkit send → serve recv   (BLAKE3 on both sides, written to disk and fsynced)
#   nc -N → nc -l > file          (no integrity, no fsync)
#   iperf3, one stream            (the loopback ceiling, no disk)
# Usage: bench/transfer.sh [SIZE_MIB] [REPETITIONS]   (default 2048 MiB, 3)
# Prints MB/s per run and the medians with the socketkit/nc ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-2048}
reps=${2:-3}
for tool in nc iperf3 python3 ss; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install netcat-openbsd iperf3)" >&2; exit 1; }
done
cargo build --release -q
bin=$PWD/target/release/socketkit
work=$(mktemp -d "${TMPDIR:-/tmp}/socketkit-transfer.XXXXXX")
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/inbox" "$work/nc"
src=$work/source.bin
echo "making a ${size_mib} MiB source file in $work" >&2
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$src"
bytes=$(stat -c %s "$src")
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits until something listens on the port, without connecting to it (a
# probe connection would be taken for the real one by nc -l and iperf3 -s).
await_listener() { until ss -Hltn "sport = :$1" | grep -q .; do sleep 0.01; done; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$bytes / ($2 - $1) / 1e6:.0f}')"; }

"$bin" serve recv 127.0.0.1:0 --dir "$work/inbox" -q > "$work/recv.out" &
pids+=($!)
until grep -q listening "$work/recv.out" 2>/dev/null; do sleep 0.05; done
recv_addr=$(head -1 "$work/recv.out" | cut -d' ' -f3)

run_socketkit() {
  rm -f "$work/inbox/source.bin"
  local start end; start=$(now)
  "$bin" send "$recv_addr" "$src" > /dev/null
  end=$(now); rate "$start" "$end"
}

run_nc() {
  local port start end; port=$(free_port)
  nc -l 127.0.0.1 "$port" > "$work/nc/out.bin" &
  local listener=$!
  await_listener "$port"
  start=$(now)
  nc -N 127.0.0.1 "$port" < "$src"
  wait "$listener"
  end=$(now); rate "$start" "$end"
}

run_iperf3() {
  local port; port=$(free_port)
  iperf3 -s -1 -p "$port" > /dev/null &
  local server=$!
  await_listener "$port"
  iperf3 -c 127.0.0.1 -p "$port" -t 5 -J |
    python3 -c 'import json, sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))'
  wait "$server" || true
}

declare -a sk nc ip ratio
for rep in $(seq "$reps"); do
  # Each run starts with no dirty pages left by the one before it.
  sync; sk+=("$(run_socketkit)")
  sync; nc+=("$(run_nc)")
  sync; ip+=("$(run_iperf3)")
  ratio+=("$(python3 -c "print(f'{${sk[-1]} / ${nc[-1]}:.2f}')")")
  echo "rep $rep: socketkit ${sk[-1]} MB/s, nc ${nc[-1]} MB/s (ratio ${ratio[-1]}), iperf3 ${ip[-1]} MB/s" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
msk=$(median "${sk[@]}"); mnc=$(median "${nc[@]}"); mip=$(median "${ip[@]}"); mratio=$(median "${ratio[@]}")
echo "| transfer of ${size_mib} MiB over loopback, $reps interleaved runs | MB/s (median) | vs nc (median of paired ratios) |"
echo "|---|---:|---:|"
echo "| socketkit send → serve recv (BLAKE3 both sides, written and fsynced) | $msk | $mratio |"
echo "| nc -N → nc -l > file (no integrity, no fsync) | $mnc | 1.00 |"
echo "| iperf3, one stream (ceiling, no disk) | $mip | |"
