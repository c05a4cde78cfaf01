"""The stdio transport: the client's bytes on file descriptors, nothing else.

Works when stdin and stdout are one socket (inetd, systemd `Accept=yes`), one
end of a socketpair (mutt's and mbsync's tunnel commands), two pipes (ssh),
or a terminal.  Descriptors are made non-blocking for the event loop and
restored on close, so a terminal is left as it was found.  After STARTTLS
(or from the start with implicit TLS) bytes pass through a pyOpenSSL
memory-BIO session (`imapd.tls`), which is imported only then.
"""

from __future__ import annotations

import posix
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

READ_SIZE = 65536
PIPE_SIZE = 1 << 20  # what an output pipe is enlarged to (Linux's limit for an unprivileged user)


class StdioTransport:
    def __init__(self, rfd: int = 0, wfd: int = 1, tls_context_factory: Any = None, enlarge_pipe: bool = True) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._saved_blocking: dict[int, bool] = {}
        for fd in {rfd, wfd}:
            try:
                self._saved_blocking[fd] = posix.get_blocking(fd)
                posix.set_blocking(fd, False)
            except OSError:
                pass
        self.tls_context_factory = tls_context_factory
        self.tls: Any = None  # imapd.tls.TLSSession once TLS is on
        self._cipher_out = bytearray()  # TLS records not yet written
        self._plain_in = bytearray()  # decrypted bytes not yet handed out
        self.closed = False
        self.raw_written = 0  # bytes the client's descriptor took (progress of output)
        self._enlarge_tried = not enlarge_pipe

    # -------------------------------------------------------------- plain
    def _raw_read(self) -> bytes | None:
        """Bytes from the client fd; b"" if none now; None at EOF."""
        try:
            data = posix.read(self.rfd, READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError as e:
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
            if e.errno in (errno.EAGAIN, errno.EINTR):
                return b""
            if e.errno in (errno.ECONNRESET, errno.EIO, errno.EBADF):
                return None
            raise
        return data if data else None

    def _raw_write(self, data: bytes) -> int:
        try:
            n = posix.write(self.wfd, data)
        except BlockingIOError:
            n = 0
        except InterruptedError:
            return 0
        if n < len(data) and not self._enlarge_tried:
            self._enlarge_pipe()
        self.raw_written += n
        return n

    def _enlarge_pipe(self) -> None:
        """Output filled the client's descriptor.  If it is a pipe (ssh, a
        tunnel command), make it hold PIPE_SIZE, once: at the default 64 KB a
        FETCH of many messages spends its time waking the reader 64 KB at a
        time (all bodies of 100,000 messages: 570 MB/s, against 770 at 1 MB).
        Not allowed (the user's pipe memory is used up), it stays as it was."""
        self._enlarge_tried = True
        try:
            import _stat as stat

            if stat.S_ISFIFO(posix.fstat(self.wfd).st_mode):
                import fcntl

                if fcntl.fcntl(self.wfd, fcntl.F_GETPIPE_SZ) < PIPE_SIZE:
                    fcntl.fcntl(self.wfd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except (OSError, AttributeError):  # (AttributeError: not Linux)
            pass

    # ------------------------------------------------------------- public
    def read(self) -> bytes | None:
        """Plaintext from the client: b"" if nothing now, None at EOF."""
        if self.tls is None:
            return self._raw_read()
        if self._plain_in:
            data = bytes(self._plain_in)
            self._plain_in.clear()
            return data
        raw = self._raw_read()
        if raw is None:
            return None
        if raw:
            self.tls.receive(raw)
        plain = self.tls.read()
        self._flush_tls()
        if not plain and self.tls.closed:
            return None
        return plain

    def has_buffered_input(self) -> bool:
        return bool(self._plain_in)

    def write(self, data: bytes) -> int:
        """Write plaintext; returns how many bytes were taken (may be fewer)."""
        if self.tls is None:
            return self._raw_write(data)
        if len(self._cipher_out) > (1 << 20):
            self._flush_tls()
            return 0
        self.tls.write(bytes(data))  # (the caller may pass a view of its buffer)
        self._cipher_out += self.tls.outgoing()
        self._flush_tls()
        return len(data)

    def write_many(self, buffers: list[Any]) -> int:
        """Write buffers in order (one writev(2) in the clear); returns how many
        bytes were taken."""
        if self.tls is None:
            try:
                n = posix.writev(self.wfd, buffers)
            except (BlockingIOError, InterruptedError):
                n = 0
            if not self._enlarge_tried and n < sum(map(len, buffers)):
                self._enlarge_pipe()
            self.raw_written += n
            return n
        taken = 0
        for buf in buffers:
            n = self.write(buf)
            taken += n
            if n < len(buf) or taken >= (1 << 20):
                break
        return taken

    def has_pending_output(self) -> bool:
        if self.tls is not None:
            self._flush_tls()
        return bool(self._cipher_out)

    def _flush_tls(self) -> None:
        if self.tls is not None:
            self._cipher_out += self.tls.outgoing()
        while self._cipher_out:
            n = self._raw_write(bytes(self._cipher_out[:READ_SIZE]))
            if n <= 0:
                return
            del self._cipher_out[:n]

    def start_tls(self, timeout: float = 60.0) -> bool:
        """Run the TLS handshake on the client fds; True when it succeeded.

        The handshake blocks this connection's only task, so it is done here
        with its own small select loop and a deadline."""
        import selectors
        import time

        from . import log
        from .tls import TLSError, TLSSession

        try:
            context = self.tls_context_factory()
            self.tls = TLSSession(context)
        except Exception as e:  # noqa: BLE001
            log.error(f"TLS unavailable: {e}")
            return False
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.rfd, selectors.EVENT_READ)
        try:
            while not self.tls.handshake_done:
                self._flush_tls()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.info("TLS handshake timed out")
                    return False
                if not sel.select(min(remaining, 1.0)):
                    continue
                raw = self._raw_read()
                if raw is None:
                    log.info("client closed the connection during the TLS handshake")
                    return False
                if raw:
                    self.tls.receive(raw)
                    plain = self.tls.read()  # drives the handshake
                    if plain:
                        self._plain_in += plain
            self._flush_tls()
            log.info(f"TLS established: {getattr(self.tls, 'version', '?')} {getattr(self.tls, 'cipher', '')}")
            return True
        except TLSError as e:
            self._flush_tls()
            log.info(f"TLS handshake failed: {e}")
            return False
        finally:
            sel.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.tls is not None:
            try:
                self.tls.shutdown()
                self._flush_tls()
            except Exception:  # noqa: BLE001
                pass
        for fd, blocking in self._saved_blocking.items():
            try:
                posix.set_blocking(fd, blocking)
            except OSError:
                pass
