"""TLS for the transport, sans-I/O: pyOpenSSL over memory BIOs.

The transport owns the file descriptors, which may be one socket (inetd,
systemd) or a pair of pipes, so a socket cannot be wrapped.  Instead the
transport hands every byte it reads to `TLSSession.receive()`, takes decrypted
text from `read()`, passes what the server says to `write()`, and writes whatever
`outgoing()` returns to the client.  The session never blocks and never touches
a descriptor.

Only this module imports OpenSSL, and only connections that use TLS import this
module, so plaintext connections never pay for loading it.

Policy: TLS 1.2 and 1.3 only, ECDHE key exchange with AEAD ciphers for TLS 1.2
(TLS 1.3's suites are all AEAD), no compression (CRIME), no renegotiation
(client-initiated renegotiation is a cheap DoS), no session tickets or session
cache (every connection is a fresh process, nothing could be resumed anyway).
"""

from __future__ import annotations

from OpenSSL import SSL

__all__ = ["DEFAULT_CIPHERS", "TLSConfigError", "TLSError", "TLSSession", "make_server_context"]

# Mozilla's "intermediate" TLS 1.2 list without the DHE suites: forward secrecy
# and AEAD only, ECDSA and RSA certificates both work.
DEFAULT_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)

_MIN_VERSIONS = {
    "TLSv1.2": SSL.TLS1_2_VERSION,
    "TLSv1.3": SSL.TLS1_3_VERSION,
}

_READ_CHUNK = 65536


class TLSError(Exception):
    """A TLS failure, with a message fit for the log (no OpenSSL error tuples)."""


class TLSConfigError(TLSError):
    """The certificate, key or settings cannot be used; names the file or key."""


def _describe(exc: BaseException) -> str:
    """Turn pyOpenSSL's list of (lib, func, reason) tuples into one line."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], list):
        reasons = []
        for item in args[0]:
            if isinstance(item, tuple) and item:
                reason = str(item[-1])
                if reason and reason not in reasons:
                    reasons.append(reason)
        if reasons:
            return "; ".join(reasons)
    if isinstance(exc, SSL.SysCallError) and len(args) >= 2:
        return str(args[1])
    return str(exc) or type(exc).__name__


def _read(path: str, what: str) -> bytes:
    """Fail with the OS's own reason (missing, permission) before OpenSSL's vaguer one."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TLSConfigError(f"cannot read TLS {what} {path}: {exc.strerror or exc}") from exc


def _load_key(key_file: str) -> object:
    """Load the private key with `cryptography`, never through OpenSSL's PEM callback.

    OpenSSL's default for an encrypted key is to ask for the passphrase on the
    terminal, which would hang a server; here an encrypted key is a clear error.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read(key_file, "key")
    try:
        return load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise TLSConfigError(
            f"TLS key {key_file} is protected by a passphrase; "
            "store it unencrypted, readable by root only"
        ) from exc
    except (ValueError, UnicodeError) as exc:
        reason = str(exc).split(". See ")[0]  # drop the FAQ link
        raise TLSConfigError(f"cannot load TLS key from {key_file} (PEM expected): {reason}") from exc


def make_server_context(
    cert_file: str,
    key_file: str = "",
    min_version: str = "TLSv1.2",
    ciphers: str | None = None,
) -> SSL.Context:
    """A server context for `TLSSession`; raises TLSConfigError naming what is wrong.

    `cert_file` is PEM, the server certificate first, then any intermediates.
    `key_file` is the PEM private key; empty means it is in `cert_file`.
    Create it before dropping privileges: the key is normally readable by root only.
    """
    if not cert_file:
        raise TLSConfigError("no TLS certificate configured ([tls] certificate)")
    key_file = key_file or cert_file
    try:
        version = _MIN_VERSIONS[min_version]
    except KeyError:
        raise TLSConfigError(
            f"[tls] min_version {min_version!r} is not supported; use one of "
            + ", ".join(_MIN_VERSIONS)
        ) from None

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(version)
    context.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_NO_RENEGOTIATION
        | SSL.OP_NO_TICKET
        | SSL.OP_SINGLE_ECDH_USE
    )
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    cipher_list = ciphers or DEFAULT_CIPHERS
    try:
        context.set_cipher_list(cipher_list.encode("ascii"))
    except (SSL.Error, UnicodeError) as exc:
        raise TLSConfigError(f"[tls] ciphers {cipher_list!r}: {_describe(exc)}") from exc

    _read(cert_file, "certificate")
    try:
        context.use_certificate_chain_file(cert_file)
    except SSL.Error as exc:
        raise TLSConfigError(
            f"cannot load TLS certificate from {cert_file}: {_describe(exc)}"
        ) from exc
    key = _load_key(key_file)
    try:
        try:
            context.use_privatekey(key)  # type: ignore[arg-type]
        except TypeError:  # pyOpenSSL before 24 wants its own PKey
            from OpenSSL import crypto

            context.use_privatekey(crypto.PKey.from_cryptography_key(key))  # type: ignore[arg-type]
    except (SSL.Error, TypeError, ValueError) as exc:
        raise TLSConfigError(f"cannot use TLS key from {key_file}: {_describe(exc)}") from exc
    try:
        context.check_privatekey()
    except SSL.Error as exc:
        raise TLSConfigError(
            f"TLS key {key_file} does not match certificate {cert_file}: {_describe(exc)}"
        ) from exc
    return context


class TLSSession:
    """One server-side TLS connection over memory buffers.

    After every `receive()`, `write()` or `shutdown()`, send what `outgoing()`
    returns to the client (also after a TLSError: it may hold the alert that tells
    the client why).  Plaintext written before the handshake has finished is kept
    and encrypted once it has.  `receive(b"")` means end of file from the client.
    """

    def __init__(self, context: SSL.Context) -> None:
        self._conn = SSL.Connection(context, None)
        self._conn.set_accept_state()
        self._plaintext = bytearray()
        self._early_writes = bytearray()
        self._eof = False
        self._shutdown_sent = False
        self.handshake_done = False
        self.closed = False

    # ---------------------------------------------------------------- input
    def receive(self, ciphertext: bytes) -> None:
        """Take bytes read from the client; b"" is end of file."""
        if self.closed:
            return
        if ciphertext:
            self._conn.bio_write(ciphertext)
        else:
            self._eof = True
            self._conn.bio_shutdown()
        if not self.handshake_done:
            self._handshake()
        if self.handshake_done:
            self._decrypt()

    def read(self) -> bytes:
        """Decrypted bytes available now (b"" if none)."""
        data = bytes(self._plaintext)
        self._plaintext.clear()
        return data

    def _handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            if self._eof:
                self.closed = True
            return
        except SSL.ZeroReturnError:
            self.closed = True
            return
        except SSL.Error as exc:
            if self._eof:  # the client went away mid-handshake: not our error
                self.closed = True
                return
            reason = _describe(exc)
            if "wrong version number" in reason or "http request" in reason:
                reason += " (the client does not speak TLS?)"
            raise TLSError(f"TLS handshake failed: {reason}") from exc
        self.handshake_done = True
        if self._early_writes:
            data = bytes(self._early_writes)
            self._early_writes.clear()
            self.write(data)

    def _decrypt(self) -> None:
        while True:
            try:
                data = self._conn.recv(_READ_CHUNK)
            except SSL.WantReadError:
                if self._eof:
                    self.closed = True
                return
            except SSL.ZeroReturnError:  # close_notify
                self.closed = True
                return
            except SSL.Error as exc:
                if self._eof:  # EOF without close_notify: a plain disconnect
                    self.closed = True
                    return
                raise TLSError(f"TLS error: {_describe(exc)}") from exc
            if not data:
                return
            self._plaintext += data

    # --------------------------------------------------------------- output
    def write(self, plaintext: bytes) -> None:
        """Encrypt bytes for the client; fetch them with `outgoing()`."""
        if self._shutdown_sent:
            raise TLSError("write after TLS shutdown")
        if not plaintext:
            return
        if not self.handshake_done:
            self._early_writes += plaintext
            return
        try:
            self._conn.sendall(plaintext)
        except SSL.Error as exc:
            raise TLSError(f"TLS write failed: {_describe(exc)}") from exc

    def outgoing(self) -> bytes:
        """Ciphertext (handshake records, data, alerts) to write to the client now."""
        chunks = []
        while True:
            try:
                chunk = self._conn.bio_read(_READ_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def shutdown(self) -> None:
        """Queue our close_notify (fetch it with `outgoing()`); safe to call twice."""
        if self._shutdown_sent:
            return
        self._shutdown_sent = True
        if not self.handshake_done:
            return
        try:
            self._conn.shutdown()
        except SSL.Error:
            pass  # the peer may already be gone; closing goes on regardless

    # ------------------------------------------------------------ for logs
    @property
    def version(self) -> str | None:
        """Protocol name such as "TLSv1.3", once the handshake is done."""
        return self._conn.get_protocol_version_name() if self.handshake_done else None

    @property
    def cipher(self) -> str | None:
        """Cipher name such as "TLS_AES_256_GCM_SHA384", once the handshake is done."""
        return self._conn.get_cipher_name() if self.handshake_done else None
