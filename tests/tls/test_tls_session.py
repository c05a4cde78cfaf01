"""TLSSession against Python's own ssl client, both over memory BIOs.

Bytes are pumped by hand between the two, as the transport pumps them between
the TLSSession and a file descriptor.
"""

from __future__ import annotations

import ssl

import pytest
from OpenSSL import SSL

from imapd.tls import TLSConfigError, TLSError, TLSSession, make_server_context

from tls_certs import CertFiles, make_cert


class Client:
    """An ssl.SSLObject client on memory BIOs."""

    def __init__(self, ca_file: str, minimum=None, maximum=None, ciphers: str | None = None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca_file)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
        if ciphers:
            ctx.set_ciphers(ciphers)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")


def pump(client: Client, server: TLSSession, rounds: int = 20) -> None:
    """Move bytes both ways until neither side has anything more to say."""
    for _ in range(rounds):
        moved = False
        data = client.outgoing.read()
        if data:
            server.receive(data)
            moved = True
        data = server.outgoing()
        if data:
            client.incoming.write(data)
            moved = True
        if not moved:
            return


def handshake(client: Client, server: TLSSession) -> None:
    for _ in range(20):
        try:
            client.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        else:
            pump(client, server)
            return
        pump(client, server, rounds=1)
    raise AssertionError("handshake did not finish")


def client_read(client: Client) -> bytes:
    chunks = []
    while True:
        try:
            chunk = client.obj.read(65536)
        except ssl.SSLWantReadError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def connected(ec_cert: CertFiles):
    server = TLSSession(make_server_context(ec_cert.cert, ec_cert.key))
    client = Client(ec_cert.cert)
    handshake(client, server)
    return client, server


def test_handshake_and_names(connected):
    client, server = connected
    assert server.handshake_done and not server.closed
    assert server.version == "TLSv1.3" == client.obj.version()
    assert server.cipher == client.obj.cipher()[0]
    assert client.obj.compression() is None


def test_data_both_directions(connected):
    client, server = connected
    client.obj.write(b"a001 LOGIN alice secret\r\n")
    pump(client, server)
    assert server.read() == b"a001 LOGIN alice secret\r\n"
    assert server.read() == b""
    server.write(b"a001 OK LOGIN completed\r\n")
    pump(client, server)
    assert client_read(client) == b"a001 OK LOGIN completed\r\n"


def test_large_data(connected):
    client, server = connected
    blob = bytes(range(256)) * 8192  # 2 MiB, many records
    server.write(blob)
    received = bytearray()
    for _ in range(200):
        pump(client, server)
        received += client_read(client)
        if len(received) >= len(blob):
            break
    assert bytes(received) == blob

    sent = 0
    got = bytearray()
    while sent < len(blob):
        sent += client.obj.write(blob[sent:sent + 100000])
        pump(client, server)
        got += server.read()
    assert bytes(got) == blob


def test_client_close_notify(connected):
    client, server = connected
    client.obj.write(b"a LOGOUT\r\n")
    try:
        client.obj.unwrap()
    except ssl.SSLWantReadError:
        pass
    pump(client, server)
    assert server.read() == b"a LOGOUT\r\n"
    assert server.closed
    server.shutdown()
    server.shutdown()  # twice is harmless
    pump(client, server)
    client.obj.unwrap()  # the client sees our close_notify


def test_server_shutdown_first(connected):
    client, server = connected
    server.write(b"* BYE\r\n")
    server.shutdown()
    pump(client, server)
    assert client_read(client) == b"* BYE\r\n"
    with pytest.raises(TLSError, match="after TLS shutdown"):
        server.write(b"more")


def test_eof_without_close_notify_is_a_plain_close(connected):
    client, server = connected
    client.obj.write(b"partial")
    pump(client, server)
    server.receive(b"")
    assert server.read() == b"partial"
    assert server.closed


def test_eof_during_handshake(ec_cert):
    server = TLSSession(make_server_context(ec_cert.cert, ec_cert.key))
    client = Client(ec_cert.cert)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    server.receive(client.outgoing.read()[:20])  # half a ClientHello, then EOF
    server.receive(b"")
    assert server.closed and not server.handshake_done
    assert server.version is None and server.cipher is None


def test_writes_before_the_handshake_are_sent_after_it(ec_cert):
    server = TLSSession(make_server_context(ec_cert.cert, ec_cert.key))
    server.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")  # implicit TLS greeting
    assert server.outgoing() == b""  # nothing in clear, ever
    client = Client(ec_cert.cert)
    handshake(client, server)
    pump(client, server)
    assert client_read(client) == b"* OK [CAPABILITY IMAP4rev1] ready\r\n"


def test_tls12_with_rsa_certificate(rsa_cert):
    server = TLSSession(make_server_context(rsa_cert.combined))
    client = Client(rsa_cert.cert, maximum=ssl.TLSVersion.TLSv1_2)
    handshake(client, server)
    assert server.version == "TLSv1.2"
    assert server.cipher.startswith("ECDHE-RSA-") and ("GCM" in server.cipher or "CHACHA20" in server.cipher)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_tls11_client_is_refused(ec_cert):
    server = TLSSession(make_server_context(ec_cert.cert, ec_cert.key))
    client = Client(
        ec_cert.cert,
        minimum=ssl.TLSVersion.TLSv1_1,
        maximum=ssl.TLSVersion.TLSv1_1,
        ciphers="DEFAULT:@SECLEVEL=0",
    )
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    with pytest.raises(TLSError, match="handshake failed.*(unsupported protocol|version)"):
        server.receive(client.outgoing.read())
    client.incoming.write(server.outgoing())  # the alert that tells the client why
    with pytest.raises(ssl.SSLError):
        client.obj.do_handshake()
    assert not server.handshake_done


def test_min_version_tls13_refuses_tls12(ec_cert):
    server = TLSSession(make_server_context(ec_cert.cert, ec_cert.key, min_version="TLSv1.3"))
    client = Client(ec_cert.cert, maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    with pytest.raises(TLSError):
        server.receive(client.outgoing.read())


def test_weak_tls12_cipher_is_refused(rsa_cert):
    server = TLSSession(make_server_context(rsa_cert.cert, rsa_cert.key))
    client = Client(rsa_cert.cert, maximum=ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA:@SECLEVEL=0")
    with pytest.raises(ssl.SSLWantReadError):
        client.obj.do_handshake()
    with pytest.raises(TLSError, match="no shared cipher"):
        server.receive(client.outgoing.read())


def test_plaintext_to_a_tls_server(ec_cert):
    """A client speaking IMAP in clear to port 993 gets a TLS error, not a hang."""
    server = TLSSession(make_server_context(ec_cert.cert, ec_cert.key))
    with pytest.raises(TLSError, match="handshake failed"):
        server.receive(b"a001 CAPABILITY\r\n")


def test_context_options(ec_cert):
    ctx = make_server_context(ec_cert.cert, ec_cert.key)
    options = ctx.set_options(0)  # returns the current options
    for flag in (SSL.OP_NO_COMPRESSION, SSL.OP_NO_RENEGOTIATION, SSL.OP_NO_TICKET):
        assert options & flag
    assert ctx.get_session_cache_mode() == SSL.SESS_CACHE_OFF


def test_context_errors_name_the_file(tmp_path, ec_cert, rsa_cert):
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(TLSConfigError, match="missing.pem.*No such file"):
        make_server_context(missing, ec_cert.key)
    with pytest.raises(TLSConfigError, match="missing.pem"):
        make_server_context(ec_cert.cert, missing)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(TLSConfigError, match="cannot load TLS certificate from .*garbage.pem"):
        make_server_context(str(garbage), ec_cert.key)
    with pytest.raises(TLSConfigError, match="cannot load TLS key from .*garbage.pem"):
        make_server_context(ec_cert.cert, str(garbage))
    with pytest.raises(TLSConfigError, match="does not match|cannot load TLS key"):
        make_server_context(ec_cert.cert, rsa_cert.key)
    with pytest.raises(TLSConfigError, match="no TLS certificate configured"):
        make_server_context("", "")
    with pytest.raises(TLSConfigError, match="min_version 'TLSv1.1'"):
        make_server_context(ec_cert.cert, ec_cert.key, min_version="TLSv1.1")
    with pytest.raises(TLSConfigError, match="ciphers 'NOTHING-KNOWN'"):
        make_server_context(ec_cert.cert, ec_cert.key, ciphers="NOTHING-KNOWN")


def test_encrypted_key_fails_without_prompting(tmp_path):
    """OpenSSL must never ask for a passphrase on the terminal of a server."""
    files = make_cert(tmp_path, "enc", key_password=b"passphrase")
    with pytest.raises(TLSConfigError, match="enc.key"):
        make_server_context(files.cert, files.key)


def test_custom_cipher_list(rsa_cert):
    server = TLSSession(
        make_server_context(rsa_cert.cert, rsa_cert.key, ciphers="ECDHE-RSA-CHACHA20-POLY1305")
    )
    client = Client(rsa_cert.cert, maximum=ssl.TLSVersion.TLSv1_2)
    handshake(client, server)
    assert server.cipher == "ECDHE-RSA-CHACHA20-POLY1305"
