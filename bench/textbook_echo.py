"""The textbook echo server (socketserver.ThreadingTCPServer, recv(1024) and
sendall in a loop, the default backlog of 5), as the suite's Python peer.

    python3 bench/textbook_echo.py 0   # prints: listening on tcp://127.0.0.1:PORT
"""

import socketserver
import sys


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(1024)
            if not data:
                break
            self.request.sendall(data)


port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = socketserver.ThreadingTCPServer(("127.0.0.1", port), EchoHandler)
server.daemon_threads = True
print("listening on tcp://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
