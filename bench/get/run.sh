#!/usr/bin/env bash
# `socketkit get` against `curl`, in the same run, from the same local nginx:
#
#   1. throughput: a 1 GiB file to /dev/null and to a file (hyperfine, RUNS
#      runs each, output removed before every run);
#   2. start-up: a 1 KiB file, many runs (hyperfine -N, no shell).
#
# nginx (Debian package) runs as this script's child in the foreground, with
# its own prefix and config in a temporary directory, on a free loopback
# port; it is stopped by PID at the end. Needs nginx, curl, hyperfine and
# python3 (apt-get install nginx curl hyperfine python3).
#
# Usage: bench/get/run.sh            (RUNS=5 SIZE=1G by default)
#        RUNS=3 SIZE=256M bench/get/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-5}
SIZE=${SIZE:-1G}
BIN=${SOCKETKIT:-target/release/socketkit}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

for tool in curl hyperfine python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install $tool)" >&2; exit 1; }
done
[ -x "$NGINX" ] || { echo "bench: nginx is missing (apt-get install nginx)" >&2; exit 1; }
[ -n "${SOCKETKIT:-}" ] || cargo build --release -p socketkit-cli

work=$(mktemp -d /tmp/socketkit-get-bench.XXXXXX)
nginx_pid=""
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
mkdir -p "$work/www" "$work/nginx/tmp" "$work/out"

echo "bench: writing a $SIZE file of random bytes" >&2
head -c "$SIZE" /dev/urandom >"$work/www/big.bin"
head -c 1024 /dev/urandom >"$work/www/1k.bin"
size_bytes=$(stat -c %s "$work/www/big.bin")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  gzip off;
  default_type application/octet-stream;
  client_body_temp_path tmp/body;
  proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  server {
    listen 127.0.0.1:$port;
    root $work/www;
  }
}
EOF
"$NGINX" -p "$work/nginx" -c nginx.conf -e stderr &
nginx_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -sf -o /dev/null "$url/1k.bin" && break
  sleep 0.05
done
curl -sf -o /dev/null "$url/1k.bin" || { echo "bench: nginx did not start" >&2; exit 1; }

echo "== $("$BIN" --version), $(curl --version | head -1 | cut -d' ' -f1-2), nginx on $url, $(nproc) cores"

throughput() { # name file...: MiB/s from hyperfine's JSON export
  python3 - "$size_bytes" "$@" <<'PY'
import json, sys
size = int(sys.argv[1])
for path in sys.argv[2:]:
    for r in json.load(open(path))["results"]:
        print(f"  {r['command']}\n    mean {r['mean']:.3f}s ± {r['stddev']:.3f}s  ->  {size / r['mean'] / 2**20:,.0f} MiB/s")
PY
}

echo "== throughput: $SIZE to /dev/null"
hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$work/null.json" \
  "curl -s -o /dev/null $url/big.bin" \
  "$BIN get -o /dev/null $url/big.bin"
throughput "$work/null.json"

echo "== throughput: $SIZE to a file"
hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/file.json" \
  --prepare "rm -f $work/out/curl.bin $work/out/get.bin; sync" \
  "curl -s -o $work/out/curl.bin $url/big.bin" \
  "$BIN get -o $work/out/get.bin $url/big.bin"
throughput "$work/file.json"
cmp "$work/www/big.bin" "$work/out/get.bin" && echo "  get's file is byte-identical to the served one"

echo "== start-up: 1 KiB"
hyperfine -N --runs 300 --warmup 20 \
  "curl -s -o /dev/null $url/1k.bin" \
  "$BIN get -o /dev/null $url/1k.bin"
