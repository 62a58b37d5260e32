"""A STAND-IN for the operators' alert receiver (test only): Alertmanager's webhook posts land here,
one JSON document per line in the file given, so verify.yml can read which alerts were delivered.

Usage: alert_receiver.py ADDRESS PORT FILE
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

MAX_BODY = 1 << 20


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self.send_error(400, "a JSON body of at most 1 MiB")
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_error(400, "not JSON")
            return
        with open(self.server.out, "a", encoding="utf-8") as out:
            out.write(json.dumps(body, sort_keys=True) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    address, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = HTTPServer((address, port), Receiver)
    server.out = out
    server.serve_forever()


if __name__ == "__main__":
    main()
