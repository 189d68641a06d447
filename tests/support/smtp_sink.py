"""A real SMTP server for the notification tests (aiosmtpd).

    python3 smtp_sink.py PORT OUTDIR [CERT KEY]

Listens on 127.0.0.1:PORT; with CERT and KEY it offers STARTTLS and requires it before
MAIL. Every accepted message is written to OUTDIR/<n>.eml, preceded by one line
`X-Envelope-To: a@x, b@y` with the envelope recipients. Prints `READY` once listening,
then runs until stdin closes (the test holds stdin open and drops it to stop us).
"""

import os
import ssl
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        tmp = os.path.join(self.outdir, ".%d.tmp" % self.count)
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Envelope-TLS: " + (b"yes" if session.ssl else b"no") + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, os.path.join(self.outdir, "%d.eml" % self.count))
        return "250 OK"


def main():
    port = int(sys.argv[1])
    outdir = sys.argv[2]
    kwargs = {}
    if len(sys.argv) >= 5:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        kwargs = {"tls_context": ctx, "require_starttls": True}
    controller = Controller(Sink(outdir), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
