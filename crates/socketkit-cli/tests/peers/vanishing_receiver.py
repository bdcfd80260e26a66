"""A file receiver written from PROTOCOL.md that vanishes mid-file: it takes
the offer, reads 64 KiB of the data and closes its Unix socket, so the
sender's next write fails with EPIPE.

usage: vanishing_receiver.py SOCKET_PATH
Prints `ready` once listening, then each frame it receives; exits when its
stdin closes.
"""
import socket
import sys

from transfer_client import ACCEPT, HELLO, READY, recv_exactly, recv_frame, send_json

srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(4)
print("ready", flush=True)
conn, _ = srv.accept()
conn.settimeout(10)
send_json(conn, HELLO, {"protocol": 1, "server": "vanishing", "service": "recv", "auth": [], "shell": False})
recv_frame(conn)  # HELLO
send_json(conn, READY, {"identity": "anonymous"})
recv_frame(conn)  # OFFER
send_json(conn, ACCEPT, {"offset": 0})
recv_frame(conn)  # START
recv_exactly(conn, 65536)
conn.close()
sys.stdin.read()  # until the test has the sender's verdict
