"""A counting SMTP sink for herald's crash test (test_crash.py), built on Debian's python3-aiosmtpd.

Run with /usr/bin/python3 (the interpreter that imports python3-aiosmtpd). It accepts every message
on 127.0.0.1 and counts, per recipient, the messages whose end of data it accepted (aiosmtpd calls
handle_DATA only for a complete message, before it answers 250). With --personal, each message
must name its one recipient ("this is for ADDRESS.", as the crash test's personalised task writes):
one that names another is counted as a mix-up.

It prints "smtp=PORT control=PORT" on its first line once both ports listen. The control port
answers one command per connection and closes:
  STATE   {"active": open SMTP connections, "deliveries": recipients delivered, "mixups": n}
  COUNTS  {"counts": {recipient: deliveries}, "active": ..., "deliveries": ..., "mixups": ...}
An SMTP connection counts as open until aiosmtpd has seen it end; aiosmtpd then cancels whatever
of it was not yet processed, so once "active" is 0 after the client died, no count can change.

--progress FILE gets one byte appended per delivered recipient, so a test can follow the progress
without a connection. Stops on SIGTERM or SIGINT, or after --lifetime seconds.
"""

import argparse
import asyncio
import json
import signal
import sys

from aiosmtpd.smtp import SMTP


class Counter:
    """aiosmtpd handler: counts each accepted message per recipient."""

    def __init__(self, progress, personal):
        self.personal = personal
        self.counts = {}
        self.deliveries = 0
        self.mixups = 0
        self.active = 0
        self.progress = progress

    async def handle_DATA(self, server, session, envelope):
        for recipient in envelope.rcpt_tos:
            self.counts[recipient] = self.counts.get(recipient, 0) + 1
            self.deliveries += 1
            if self.personal and ("this is for %s." % recipient).encode("utf-8") not in envelope.original_content:
                self.mixups += 1
        if self.progress is not None:
            self.progress.write(b"." * len(envelope.rcpt_tos))
        return "250 2.0.0 Ok: counted"

    def state(self, with_counts):
        state = {"active": self.active, "deliveries": self.deliveries, "mixups": self.mixups}
        if with_counts:
            state["counts"] = self.counts
        return state


class CountingSMTP(SMTP):
    """Keeps the number of open connections in the handler."""

    def connection_made(self, transport):
        if self.transport is None:  # not the second call after STARTTLS
            self.event_handler.active += 1
        super().connection_made(transport)

    def connection_lost(self, error):
        self.event_handler.active -= 1
        super().connection_lost(error)


async def Control(counter, reader, writer):
    try:
        command = (await asyncio.wait_for(reader.readline(), 10)).strip().upper()
        if command in (b"STATE", b"COUNTS"):
            writer.write(json.dumps(counter.state(command == b"COUNTS")).encode("utf-8") + b"\n")
        else:
            writer.write(b'{"error": "unknown command"}\n')
        await writer.drain()
    except (asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--progress", help="file that gets one byte per delivered recipient")
    parser.add_argument("--personal", action="store_true", help="each message names its recipient: check it")
    parser.add_argument("--lifetime", type=float, default=600, help="stop after this many seconds")
    args = parser.parse_args()

    progress = open(args.progress, "ab", buffering=0) if args.progress else None
    counter = Counter(progress, args.personal)
    loop = asyncio.new_event_loop()
    smtp = loop.run_until_complete(loop.create_server(
        lambda: CountingSMTP(counter, hostname="sink.herald.test", decode_data=False, timeout=30),
        host="127.0.0.1", port=0, backlog=256))
    control = loop.run_until_complete(
        asyncio.start_server(lambda r, w: Control(counter, r, w), host="127.0.0.1", port=0))
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, loop.stop)
    loop.call_later(args.lifetime, loop.stop)
    print("smtp=%d control=%d" % (smtp.sockets[0].getsockname()[1], control.sockets[0].getsockname()[1]),
          flush=True)
    try:
        loop.run_forever()
    finally:
        smtp.close()
        control.close()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
