"""Python's http.server as a peer for `socketkit get`: HTTP/1.0, one
response per connection. Serves the directory given as argv[1]; the path
/close-delimited sends argv[1]/data.bin with no Content-Length, so the body
ends only when the server closes the connection. Prints
`listening on http://127.0.0.1:PORT` once ready."""

import functools
import http.server
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if self.path != "/close-delimited":
            return super().do_GET()
        with open(os.path.join(self.directory, "data.bin"), "rb") as data:
            body = data.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(
    ("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1])
)
print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
