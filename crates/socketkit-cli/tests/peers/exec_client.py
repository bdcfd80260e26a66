"""A remote-exec client written from PROTOCOL.md alone (no socketkit code).

usage: exec_client.py (unix:PATH | tcp:HOST:PORT) TOKEN-or-- ARGV...
Prints the command's stdout to stdout and its stderr to stderr, and exits
with the command's status (128 + signal when a signal ended it).
"""
import json
import socket
import struct
import sys

HELLO, READY, RUN, STARTED, EXIT, ERROR = 0x01, 0x02, 0x10, 0x11, 0x13, 0x1F
STDOUT, STDERR = 0x22, 0x23


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed inside a frame")
        data += chunk
    return data


def recv_frame(sock):
    length, kind = struct.unpack(">IB", recv_exactly(sock, 5))
    return kind, recv_exactly(sock, length - 1)


def send_frame(sock, kind, body):
    sock.sendall(struct.pack(">IB", len(body) + 1, kind) + body)


def send_json(sock, kind, obj):
    send_frame(sock, kind, json.dumps(obj).encode())


def connect(target):
    if target.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(target[len("unix:"):])
    else:
        host, port = target[len("tcp:"):].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    return sock


def main():
    target, token, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    sock = connect(target)
    kind, body = recv_frame(sock)
    assert kind == HELLO, kind
    hello = json.loads(body)
    assert hello["protocol"] == 1, hello
    answer = {"protocol": 1, "client": "python-from-spec"}
    if "token" in hello["auth"]:
        answer["token"] = token
    send_json(sock, HELLO, answer)
    kind, body = recv_frame(sock)
    if kind == ERROR:
        print("refused:", json.loads(body), file=sys.stderr)
        return 255
    assert kind == READY, kind
    send_json(sock, RUN, {"argv": argv, "stdin": False})
    kind, body = recv_frame(sock)
    if kind == ERROR:
        print("refused:", json.loads(body), file=sys.stderr)
        return 255
    assert kind == STARTED and json.loads(body)["pid"] > 0
    while True:
        kind, body = recv_frame(sock)
        if kind == STDOUT:
            sys.stdout.buffer.write(body)
        elif kind == STDERR:
            sys.stderr.buffer.write(body)
        elif kind == EXIT:
            exit_report = json.loads(body)
            sys.stdout.flush()
            if "code" in exit_report:
                return exit_report["code"]
            return 128 + exit_report["signal"]
        else:
            raise ValueError("unexpected frame type %#x" % kind)


if __name__ == "__main__":
    sys.exit(main())
