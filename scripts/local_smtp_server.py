"""A local SMTP submission server for the example mailing (python3-aiosmtpd, Debian's).

It listens on 127.0.0.1, requires STARTTLS before anything else and authentication (PLAIN or
LOGIN) after it, and stores every message it accepts as an .eml file in a folder, with the envelope
in the file name's log line. It prints "ready <port>" once it listens and runs until it is
terminated (SIGTERM / SIGINT).

    /usr/bin/python3 scripts/local_smtp_server.py --port 2587 --cert server.pem --key server.key \
        --user news@example.org --password-env EXAMPLE_PASSWORD --folder received
"""

import argparse
import asyncio
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        os.makedirs(folder, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:05d}.eml")
        with open(path, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        print(f"received {path}: from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}", flush=True)
        return "250 2.0.0 Ok: stored"


class Authenticator:
    def __init__(self, user, password):
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and auth_data.login == self.user and auth_data.password == self.password:
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", required=True)
    parser.add_argument("--folder", required=True)
    args = parser.parse_args()
    password = os.environ.get(args.password_env)
    if not password:
        sys.exit(f"local_smtp_server: the environment variable {args.password_env} is not set")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.cert, args.key)
    controller = Controller(
        Store(args.folder),
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="localhost",
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=Authenticator(args.user, password),
    )
    controller.start()
    print(f"ready {args.port}", flush=True)
    stop = asyncio.Event()

    async def wait():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    asyncio.run(wait())
    controller.stop()


if __name__ == "__main__":
    main()
