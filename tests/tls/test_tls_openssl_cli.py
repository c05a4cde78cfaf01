"""TLSSession on a real socket, as the transport would drive it, with `openssl s_client`.

The server side is a small non-blocking selectors loop over the accepted socket's
file descriptor: os.read -> receive -> read, and write -> outgoing -> os.write.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import time

import pytest

from imapd.tls import TLSSession, make_server_context

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def serve_one(conn: socket.socket, session: TLSSession, deadline: float) -> bytes:
    """Greet, echo one command, say BYE and close; return what the client sent."""
    fd = conn.fileno()
    os.set_blocking(fd, False)
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    received = bytearray()
    pending = bytearray()
    bye = False
    # Written at once, as with implicit TLS: kept until the handshake is done.
    session.write(b"* OK imapd ready\r\n")
    try:
        while time.monotonic() < deadline:
            pending += session.outgoing()
            while pending:
                try:
                    pending = pending[os.write(fd, pending):]
                except BlockingIOError:
                    break
            if bye and not pending:
                return bytes(received)
            events = sel.select(timeout=0.5)
            if not events:
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            session.receive(data)
            received += session.read()
            if b"\r\n" in received and not bye:
                tag = received.split(b" ", 1)[0]
                session.write(b"* BYE logging out\r\n" + tag + b" OK LOGOUT completed\r\n")
                session.shutdown()
                bye = True
            if session.closed:
                return bytes(received)
        raise AssertionError("server loop timed out")
    finally:
        sel.close()


@pytest.mark.parametrize("version_flag", ["-tls1_3", "-tls1_2"])
def test_openssl_s_client(ec_cert, version_flag):
    context = make_server_context(ec_cert.cert, ec_cert.key)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = subprocess.Popen(
            [
                "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                "-CAfile", ec_cert.cert, "-verify_return_error", "-crlf", "-quiet", version_flag,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            listener.settimeout(10)
            conn, _ = listener.accept()
            with conn:
                session = TLSSession(context)
                client.stdin.write(b"a1 LOGOUT\n")
                client.stdin.flush()
                got = serve_one(conn, session, time.monotonic() + 15)
                version = session.version
            out, err = client.communicate(timeout=10)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
    assert got == b"a1 LOGOUT\r\n"
    assert b"* OK imapd ready\r\n" in out
    assert b"a1 OK LOGOUT completed\r\n" in out
    assert version == ("TLSv1.3" if version_flag == "-tls1_3" else "TLSv1.2")
