"""An impostor exec server, written from PROTOCOL.md: it greets, admits
anyone, records every RUN it is sent, and answers each with STARTED and the
EXIT report given on the command line (which may be one no process could
produce).

usage: fake_exec_server.py (unix:PATH | tcp) RECORD-FILE EXIT-JSON
Prints "listening ADDRESS" once it accepts connections.
"""
import json
import os
import socket
import sys

# The framing, from the spec client next to this file.
from exec_client import HELLO, READY, RUN, STARTED, EXIT, recv_frame, send_json


def serve(conn, auth, record, exit_report):
    send_json(conn, HELLO, {"protocol": 1, "server": "impostor", "service": "exec",
                            "auth": auth, "shell": True})
    recv_frame(conn)
    send_json(conn, READY, {"identity": "victim"})
    while True:
        kind, body = recv_frame(conn)
        if kind != RUN:
            continue
        with open(record, "ab") as f:
            f.write(body + b"\n")
        send_json(conn, STARTED, {"pid": 1})
        send_json(conn, EXIT, exit_report)


def main():
    target, record, exit_report = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if target.startswith("unix:"):
        path = target[len("unix:"):]
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o777)
        auth, address = ["peer-uid"], "unix:" + path
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        auth, address = ["token"], "tcp://127.0.0.1:%d" % listener.getsockname()[1]
    listener.listen(16)
    print("listening", address, flush=True)
    while True:
        conn, _ = listener.accept()
        try:
            serve(conn, auth, record, exit_report)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
