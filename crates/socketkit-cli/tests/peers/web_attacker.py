"""Hostile and plain clients of the chat's web page, on raw sockets (no
socketkit code, no HTTP or WebSocket library): what a browser on another
site, a rebinding DNS name, or a slowloris attacker would send.

usage (--tls CAFILE first, for https:// pages, verified against CAFILE):
  web_attacker.py head HOST:PORT PATH [--host H] [--origin O] [--upgrade]
      one request; prints the response head (status line, then headers)
  web_attacker.py half-heads HOST:PORT N WITHIN
      N connections each send part of a request head and stop; prints
      "closed K of N" once the server closed them all or WITHIN seconds pass
  web_attacker.py silent-websocket HOST:PORT WITHIN
      opens the WebSocket, sends a nickname, never answers pings; prints
      "closed after PINGS pings" when the server closes it, or "still open"
  web_attacker.py wait-behind HOST:PORT N KIND WITHIN
      N connections of KIND (silent: send nothing; websocket: open the
      WebSocket, send a nickname, never answer pings) then one ordinary
      request; prints each event in order ("held K closed", "waiter
      answered STATUS") until the waiter is answered or WITHIN passes
"""
import base64
import os
import select
import socket
import ssl
import sys
import time

TLS = None  # an ssl.SSLContext with --tls


def connect(addr):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=20)
    if TLS:
        sock = TLS.wrap_socket(sock, server_hostname=host)
    return sock


def request(addr, path, host=None, origin=None, upgrade=False):
    lines = [f"GET {path} HTTP/1.1", f"Host: {host or addr}"]
    if upgrade:
        key = base64.b64encode(os.urandom(16)).decode()
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


def frames(buf):
    """Splits complete server frames off buf: ([(opcode, payload)], rest)."""
    out = []
    while len(buf) >= 2:
        opcode, length, at = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                break
            length, at = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                break
            length, at = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < at + length:
            break
        out.append((opcode, buf[at : at + length]))
        buf = buf[at + length :]
    return out, buf


def open_websocket(addr, nick):
    sock = connect(addr)
    sock.sendall(request(addr, "/ws", upgrade=True))
    head, rest = read_head(sock)
    assert head.startswith("HTTP/1.1 101"), head
    sock.sendall(masked_frame(0x1, nick.encode()))
    return sock, rest


def head(args):
    addr, path, opts = args[0], args[1], args[2:]
    host = opts[opts.index("--host") + 1] if "--host" in opts else None
    origin = opts[opts.index("--origin") + 1] if "--origin" in opts else None
    sock = connect(addr)
    sock.sendall(request(addr, path, host, origin, "--upgrade" in opts))
    print(read_head(sock)[0])


def half_heads(args):
    addr, count, within = args[0], int(args[1]), float(args[2])
    socks = []
    for _ in range(count):
        sock = connect(addr)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: " + addr.encode() + b"\r\nX-Slow: ")
        socks.append(sock)
    deadline = time.monotonic() + within
    still = set(socks)
    while still and time.monotonic() < deadline:
        ready, _, _ = select.select(list(still), [], [], 0.2)
        for sock in ready:
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                still.discard(sock)
                sock.close()
    print(f"closed {count - len(still)} of {count}")


def silent_websocket(args):
    addr, within = args[0], float(args[1])
    sock, buf = open_websocket(addr, "quiet")
    pings, deadline = 0, time.monotonic() + within
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if not ready:
            continue
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        got, buf = frames(buf + data)
        pings += sum(1 for opcode, _ in got if opcode == 0x9)
        if not data or any(opcode == 0x8 for opcode, _ in got):
            print(f"closed after {pings} pings")
            return
    print("still open")


def wait_behind(args):
    addr, count, kind, within = args[0], int(args[1]), args[2], float(args[3])
    held = []
    for i in range(count):
        if kind == "silent":
            held.append(connect(addr))
        else:
            held.append(open_websocket(addr, f"holder{i}")[0])
    waiter = connect(addr)
    waiter.sendall(request(addr, "/ws" if kind == "websocket" else "/", upgrade=kind == "websocket"))
    print("waiter sent", flush=True)
    deadline = time.monotonic() + within
    open_held = {sock: i for i, sock in enumerate(held)}
    while time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_held) + [waiter], [], [], 0.2)
        for sock in ready:
            if sock is waiter:
                status = read_head(waiter)[0].split("\r\n")[0]
                print(f"waiter answered {status}")
                return
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                # Close our side too, so the server's gentle close ends.
                print(f"held {open_held.pop(sock)} closed", flush=True)
                sock.close()
    print("waiter never answered")


COMMANDS = {
    "head": head,
    "half-heads": half_heads,
    "silent-websocket": silent_websocket,
    "wait-behind": wait_behind,
}

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[0] == "--tls":
        TLS = ssl.create_default_context(cafile=argv[1])
        argv = argv[2:]
    COMMANDS[argv[0]](argv[1:])
