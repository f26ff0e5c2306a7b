"""An SMTP server for herald's integration tests, built on Debian's python3-aiosmtpd.

Run with /usr/bin/python3 (Debian's interpreter, the one that imports python3-aiosmtpd). Started and
stopped by AiosmtpdServer (tests/servers/mail_servers.h): it listens on --host/--port, and records
every accepted message in --out as two files, written in this order:

  NNNNNN.eml   the message exactly as the client sent it (after dot-unstuffing, CRLF line ends)
  NNNNNN.json  the envelope: mail_from, rcpt_tos, mail_options, rcpt_options, helo, peer,
               auth_user (null without AUTH), tls (true after STARTTLS or on an implicit-TLS port),
               sessions_open (client connections open at the end of data, this one included),
               max_sessions_open (the most open at once so far), received_at (Unix seconds)

so a .json file means its message is complete. Stops on SIGTERM, SIGINT, or after --lifetime seconds.
--greeting replaces the 220 greeting (a server that refuses every client: it then answers only QUIT);
--rcpt-reply ADDRESS=REPLY (repeatable) answers RCPT TO for that address with REPLY instead of 250.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    """aiosmtpd handler: writes each message and its envelope to the output folder."""

    def __init__(self, out_dir, implicit_tls, data_delay, rcpt_replies):
        self.out_dir = out_dir
        self.implicit_tls = implicit_tls
        self.data_delay = data_delay
        self.rcpt_replies = rcpt_replies  # lowercased address -> reply
        self.count = 0
        self.sessions_open = 0
        self.max_sessions_open = 0

    def SessionOpened(self):
        self.sessions_open += 1
        self.max_sessions_open = max(self.max_sessions_open, self.sessions_open)

    def SessionClosed(self):
        self.sessions_open -= 1

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay > 0:
            await asyncio.sleep(self.data_delay)  # a slow server: sessions overlap
        self.count += 1
        base = os.path.join(self.out_dir, "%06d" % self.count)
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "rcpt_options": envelope.rcpt_options,
            "helo": session.host_name,
            "peer": "%s:%s" % tuple(session.peer[:2]) if session.peer else None,
            "auth_user": auth_user,
            "tls": self.implicit_tls or session.ssl is not None,
            "sessions_open": self.sessions_open,
            "max_sessions_open": self.max_sessions_open,
            "received_at": time.time(),
        }
        WriteAtomically(base + ".eml", envelope.original_content)
        WriteAtomically(base + ".json", json.dumps(record, indent=1).encode("utf-8"))
        return "250 2.0.0 Ok: recorded as %06d" % self.count


class CountingSMTP(SMTP):
    """aiosmtpd's SMTP protocol, telling the recorder when a client connects and leaves."""

    def __init__(self, recorder, greeting=None, **kwargs):
        super().__init__(recorder, **kwargs)
        self.recorder = recorder
        self.greeting = greeting  # replaces the 220 greeting; then only QUIT is answered
        self.greeted = False

    async def push(self, status):
        if self.greeting is not None and not self.greeted:
            self.greeted = True
            status = self.greeting
        await super().push(status)

    async def smtp_EHLO(self, arg):
        if self.greeting is not None:
            return await self.push("503 5.5.1 Error: only QUIT after the refusal")
        return await super().smtp_EHLO(arg)

    async def smtp_HELO(self, arg):
        if self.greeting is not None:
            return await self.push("503 5.5.1 Error: only QUIT after the refusal")
        return await super().smtp_HELO(arg)

    def connection_made(self, transport):
        self.recorder.SessionOpened()
        super().connection_made(transport)

    def connection_lost(self, error):
        self.recorder.SessionClosed()
        super().connection_lost(error)


def WriteAtomically(path, data):
    temporary = path + ".tmp"
    with open(temporary, "wb") as out:
        out.write(data)
    os.rename(temporary, path)


def ReadUsers(path):
    """Reads 'name:password' lines (the first ':' separates them)."""
    users = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\r\n")
            if line:
                name, _, password = line.partition(":")
                users[name] = password
    return users


def MakeAuthenticator(users):
    def Authenticate(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        name = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if name in users and users[name] == password:
            return AuthResult(success=True, handled=False, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    return Authenticate


def main():
    # aiosmtpd 1.4 itself still sets the deprecated Session.login_data: keep the log quiet.
    warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="folder for the recorded messages")
    parser.add_argument("--cert", help="server certificate chain (PEM): offers STARTTLS")
    parser.add_argument("--key", help="the certificate's private key (PEM)")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte")
    parser.add_argument("--users", help="file of 'name:password' lines: offers AUTH PLAIN/LOGIN")
    parser.add_argument("--require-starttls", action="store_true")
    parser.add_argument("--auth-require-tls", action="store_true")
    parser.add_argument("--auth-required", action="store_true")
    parser.add_argument("--data-size-limit", type=int, default=33554432)
    parser.add_argument("--hostname", default="aiosmtpd.herald.test")
    parser.add_argument("--data-delay", type=float, default=0, help="seconds each message takes")
    parser.add_argument("--lifetime", type=float, default=600, help="stop after this many seconds")
    parser.add_argument("--greeting", help="instead of 220, e.g. '554 5.7.1 Client host blocked'")
    parser.add_argument("--rcpt-reply", action="append", default=[], help="ADDRESS=REPLY for RCPT TO")
    args = parser.parse_args()

    tls_context = None
    if args.cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)
    users = ReadUsers(args.users) if args.users else None
    rcpt_replies = {}
    for entry in args.rcpt_reply:
        address, _, reply = entry.partition("=")
        rcpt_replies[address.lower()] = reply
    recorder = Recorder(args.out, args.implicit_tls, args.data_delay, rcpt_replies)

    def Factory():
        return CountingSMTP(
            recorder,
            greeting=args.greeting,
            hostname=args.hostname,
            data_size_limit=args.data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=None if args.implicit_tls else tls_context,
            require_starttls=args.require_starttls,
            auth_required=args.auth_required,
            auth_require_tls=args.auth_require_tls,
            authenticator=MakeAuthenticator(users) if users is not None else None,
            # Without users, AUTH is not offered at all.
            auth_exclude_mechanism=None if users is not None else ["PLAIN", "LOGIN"],
            timeout=30,
        )

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(Factory, host=args.host, port=args.port,
                           ssl=tls_context if args.implicit_tls else None))
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, loop.stop)
    loop.call_later(args.lifetime, loop.stop)
    print("aiosmtpd_server: listening on %s:%d" % (args.host, args.port), flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
