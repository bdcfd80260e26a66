"""A file-transfer sender written from PROTOCOL.md, able to misbehave.

usage:
  transfer_client.py HOST:PORT partial FILE NAME COUNT  send the first COUNT bytes, then vanish
  transfer_client.py HOST:PORT lie NAME OFFERED SENT     offer OFFERED bytes, send SENT bytes
  transfer_client.py HOST:PORT offer NAME SIZE          offer SIZE bytes, print the answer
  transfer_client.py HOST:PORT send FILE NAME HASH MODE  send FILE whole with permission MODE (octal);
                                                         HASH is its BLAKE3 (not in Python's stdlib)
  transfer_client.py HOST:PORT hold FILE NAME COUNT HASH send COUNT bytes, print HELD, wait for a
                                                         line on stdin, then send the rest and END
Prints the server's answers (frame type and JSON) one per line. With
SK_TOKEN set in the environment, the HELLO carries it.
"""
import os
import json
import socket
import struct
import sys

HELLO, READY, ERROR = 0x01, 0x02, 0x1F
OFFER, ACCEPT, START, END, DONE, FILE_DATA = 0x40, 0x41, 0x42, 0x43, 0x44, 0x24
NAMES = {READY: "READY", ERROR: "ERROR", ACCEPT: "ACCEPT", DONE: "DONE"}


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def recv_frame(sock):
    length, kind = struct.unpack(">IB", recv_exactly(sock, 5))
    body = recv_exactly(sock, length - 1)
    print(NAMES.get(kind, hex(kind)), body.decode(), flush=True)
    return kind, json.loads(body)


def send(sock, kind, body):
    sock.sendall(struct.pack(">IB", len(body) + 1, kind) + body)


def send_json(sock, kind, obj):
    send(sock, kind, json.dumps(obj).encode())


def open_session(target):
    host, port = target.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    kind, hello = recv_frame(sock)
    assert kind == HELLO and hello["service"] == "recv", hello
    hello = {"protocol": 1, "client": "python"}
    if os.environ.get("SK_TOKEN"):
        hello["token"] = os.environ["SK_TOKEN"]
    send_json(sock, HELLO, hello)
    kind, _ = recv_frame(sock)
    assert kind == READY
    return sock


def send_data(sock, data):
    for start in range(0, len(data), 65536):
        send(sock, FILE_DATA, data[start:start + 65536])


def send_first(sock, path, name, count):
    """Offers FILE from offset 0 and sends its first COUNT bytes; returns it."""
    data = open(path, "rb").read()
    send_json(sock, OFFER, {"name": name, "size": len(data)})
    kind, accept = recv_frame(sock)
    assert kind == ACCEPT and accept["offset"] == 0, accept
    send_json(sock, START, {"offset": 0})
    send_data(sock, data[:count])
    return data


def main():
    target, mode = sys.argv[1], sys.argv[2]
    sock = open_session(target)
    if mode == "partial":
        count = int(sys.argv[5])
        send_first(sock, sys.argv[3], sys.argv[4], count)
        print("SENT", count, flush=True)
        # Wait to be killed or for the peer to go away.
        sys.stdin.read()
    elif mode == "lie":
        name, offered, sent = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        send_json(sock, OFFER, {"name": name, "size": offered})
        recv_frame(sock)
        send_json(sock, START, {"offset": 0})
        data = b"x" * sent
        try:
            send_data(sock, data)
            # BLAKE3 is not in Python's standard library; the receiver's
            # size checks come before the hash check anyway.
            send_json(sock, END, {"size": sent, "hash": "0" * 64})
        except ConnectionError:
            pass
        try:
            recv_frame(sock)
        except (EOFError, ConnectionError):
            print("CLOSED", flush=True)
    elif mode == "offer":
        name, size = sys.argv[3], int(sys.argv[4])
        send_json(sock, OFFER, {"name": name, "size": size})
        recv_frame(sock)
    elif mode == "send":
        path, name, digest, perm = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6], 8)
        data = open(path, "rb").read()
        send_json(sock, OFFER, {"name": name, "size": len(data), "mode": perm})
        kind, _ = recv_frame(sock)
        if kind == ACCEPT:
            send_json(sock, START, {"offset": 0})
            send_data(sock, data)
            send_json(sock, END, {"size": len(data), "hash": digest})
            recv_frame(sock)
    elif mode == "hold":
        count, digest = int(sys.argv[5]), sys.argv[6]
        data = send_first(sock, sys.argv[3], sys.argv[4], count)
        print("HELD", count, flush=True)
        sys.stdin.readline()
        send_data(sock, data[count:])
        send_json(sock, END, {"size": len(data), "hash": digest})
        recv_frame(sock)


if __name__ == "__main__":
    main()
