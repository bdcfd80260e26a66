#!/usr/bin/env python3
"""SOCKS5 servers side by side: `socketkit serve socks5` vs microsocks and
dante (danted, method none), all on loopback in front of one nginx.

    python3 bench/socks5.py                 # 3 interleaved repetitions
    python3 bench/socks5.py --reps 5 --bulk-mib 2048 --requests 4000

Two measures, the same client for every server (curl, which is C and not
the bottleneck):
- bulk: one download of --bulk-mib MiB (a sparse file nginx sends with
  sendfile) through the proxy, curl -o /dev/null; MiB/s from curl's own
  count.
- connections/s: --requests small requests (`Connection: close`, so every
  one is a new SOCKS5 handshake and CONNECT) with curl --parallel,
  --parallel-max 32; requests per second of wall time.

Each repetition runs every server once, in rotated order. Reported: the
median of the repetitions (min-max) and, per server, the median of its
paired ratio to socketkit within a repetition. The machine is shared: read
the ratios, not the absolute figures.
Needs: nginx, microsocks, dante-server (/usr/sbin/danted), curl; builds
socketkit in release mode first.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def start_nginx(tmp, bulk_mib):
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    os.chmod(tmp, 0o755)
    with open(os.path.join(www, "bulk.bin"), "wb") as f:
        f.truncate(bulk_mib << 20)
    with open(os.path.join(www, "small.txt"), "w") as f:
        f.write("x" * 100)
    port = free_port()
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off; master_process off; error_log {tmp}/error.log;
pid {tmp}/nginx.pid; events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; keepalive_timeout 0;
  client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p; fastcgi_temp_path {tmp}/f;
  uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;
  server {{ listen 127.0.0.1:{port}; root {www}; }} }}
""")
    proc = subprocess.Popen(["nginx", "-p", tmp, "-c", conf, "-e", f"{tmp}/error.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_listening(port, proc, "nginx")
    return proc, port


def start_server(name, tmp, port):
    if name == "socketkit":
        cmd = [os.path.join(ROOT, "target/release/socketkit"), "serve", "socks5",
               f"127.0.0.1:{port}", "-q", "--max-conns", "4096",
               *os.environ.get("SOCKETKIT_FLAGS", "").split()]
    elif name == "microsocks":
        cmd = ["microsocks", "-i", "127.0.0.1", "-p", str(port)]
    elif name == "dante":
        conf = os.path.join(tmp, f"danted-{port}.conf")
        with open(conf, "w") as f:
            f.write(f"""logoutput: /dev/null
internal: 127.0.0.1 port = {port}
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
""")
        cmd = ["/usr/sbin/danted", "-f", conf]
    else:
        raise ValueError(name)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_listening(port, proc, name)
    return proc


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def bulk(proxy_port, nginx_port, bulk_mib):
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
         "--socks5", f"127.0.0.1:{proxy_port}",
         f"http://127.0.0.1:{nginx_port}/bulk.bin"],
        check=True, capture_output=True, text=True, timeout=600).stdout
    size, secs = out.split()
    if int(size) != bulk_mib << 20:
        sys.exit(f"bulk: got {size} bytes")
    return int(size) / (1 << 20) / float(secs)


def connections(proxy_port, nginx_port, requests, tmp):
    config = os.path.join(tmp, f"urls-{proxy_port}")
    with open(config, "w") as f:
        for _ in range(requests):
            f.write(f'url = "http://127.0.0.1:{nginx_port}/small.txt"\noutput = "/dev/null"\n')
    started = time.monotonic()
    out = subprocess.run(
        ["curl", "-sS", "--parallel", "--parallel-max", "32", "-H", "Connection: close",
         "--socks5", f"127.0.0.1:{proxy_port}", "-w", "%{http_code}\n", "-K", config],
        capture_output=True, text=True, timeout=600)
    secs = time.monotonic() - started
    ok = out.stdout.split().count("200")
    if ok != requests:
        sys.exit(f"connections: {ok} of {requests} succeeded: {out.stderr[-500:]}")
    return requests / secs


def summary(values):
    return f"{statistics.median(values):10.1f} ({min(values):.1f}-{max(values):.1f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--bulk-mib", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--servers", default="socketkit,microsocks,dante")
    parser.add_argument("--no-build", action="store_true",
                        help="use target/release/socketkit as it is")
    args = parser.parse_args()
    servers = args.servers.split(",")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "socketkit-cli"],
                       cwd=ROOT, check=True)
    results = {name: {"bulk": [], "conns": []} for name in servers}
    with tempfile.TemporaryDirectory() as tmp:
        nginx, nginx_port = start_nginx(tmp, args.bulk_mib)
        try:
            for rep in range(args.reps):
                order = servers[rep % len(servers):] + servers[:rep % len(servers)]
                for name in order:
                    port = free_port()
                    proc = start_server(name, tmp, port)
                    try:
                        results[name]["bulk"].append(bulk(port, nginx_port, args.bulk_mib))
                        results[name]["conns"].append(
                            connections(port, nginx_port, args.requests, tmp))
                    finally:
                        stop(proc)
                    print(f"rep {rep + 1} {name:10} bulk {results[name]['bulk'][-1]:8.1f} MiB/s"
                          f"  {results[name]['conns'][-1]:8.1f} conn/s", file=sys.stderr)
        finally:
            stop(nginx)
    base = results[servers[0]]
    print(f"| server | bulk MiB/s, median (min-max) | bulk ÷ {servers[0]} | "
          f"connections/s, median (min-max) | conn/s ÷ {servers[0]} |")
    print("|---|---|---|---|---|")
    for name in servers:
        r = results[name]
        ratio = lambda key: statistics.median(a / b for a, b in zip(r[key], base[key]))
        print(f"| {name} | {summary(r['bulk'])} | {ratio('bulk'):.2f} | "
              f"{summary(r['conns'])} | {ratio('conns'):.2f} |")


if __name__ == "__main__":
    main()
