"""An HTTPS server for herald's integration tests (MTA-STS policy hosts), Python's standard library only.

Run with /usr/bin/python3; started and stopped by HttpsServer (tests/servers/https_server.h). It
listens on --host/--port with the certificate --cert/--key and answers GET requests from --routes, a
JSON object whose keys are "<host> <path>" (the Host header without port, lowercased) and whose
values are {"status": 200, "headers": {"Content-Type": "text/plain"}, "body": "..."}; anything
else is a 404. Every request is appended to --log as one line "<host> <path>". Stops on SIGTERM,
SIGINT, or after --lifetime seconds.
"""

import argparse
import http.server
import json
import os
import signal
import ssl
import threading


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--routes", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lifetime", type=int, default=900)
    args = parser.parse_args()
    with open(args.routes, encoding="utf-8") as routes_file:
        routes = json.load(routes_file)
    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            host = (self.headers.get("Host") or "").split(":")[0].lower()
            key = host + " " + self.path
            with log_lock, open(args.log, "a", encoding="utf-8") as log:
                log.write(key + "\n")
            route = routes.get(key, {"status": 404, "headers": {"Content-Type": "text/plain"}, "body": "not found\n"})
            body = route.get("body", "").encode("utf-8")
            self.send_response(route.get("status", 200))
            for name, value in route.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *unused):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server((args.host, args.port), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    # The handshake runs when a connection is accepted; one that fails (a client that only checks
    # the port is open) is dropped by the server loop.
    server.socket = context.wrap_socket(server.socket, server_side=True)
    stop = lambda *unused: os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Timer(args.lifetime, stop).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
