"""A stored message read as a stream in wire form (`Mailbox.open_stream`),
for messages too large to hold: apart from the module that opens them, so
that the class (an io.RawIOBase, among the costliest to build) is made only
by a session that streams one."""

from __future__ import annotations

import io
import posix

from .message import CHUNK, to_wire


class CRLFReader(io.RawIOBase):
    """A read-only stream of a message file in wire form, never holding more
    than one chunk in memory (a 50 MB message stays on disk)."""

    def __init__(self, fd: int, wire_size: int | None = None) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0          # position in the file
        self._out = b""        # converted bytes not yet returned
        self._held_cr = False  # a CR at the end of the last chunk
        self._eof = False
        self._wire_pos = 0
        self.wire_size = wire_size

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def _fill(self) -> None:
        while not self._out and not self._eof:
            chunk = posix.pread(self._fd, CHUNK, self._pos)
            if not chunk:
                self._eof = True
                if self._held_cr:
                    self._out = b"\r"
                    self._held_cr = False
                return
            self._pos += len(chunk)
            if self._held_cr:
                chunk = b"\r" + chunk
                self._held_cr = False
            if chunk[-1:] == b"\r":
                chunk = chunk[:-1]
                self._held_cr = True
            self._out = to_wire(chunk)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("I/O operation on closed file")
        self._fill()
        n = min(len(b), len(self._out))
        b[:n] = self._out[:n]
        self._out = self._out[n:]
        self._wire_pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        self._fill()
        out = self._out[:size]
        self._out = self._out[size:]
        self._wire_pos += len(out)
        return out

    def readall(self) -> bytes:
        parts = []
        while True:
            self._fill()
            if not self._out:
                break
            parts.append(self._out)
            self._wire_pos += len(self._out)
            self._out = b""
        return b"".join(parts)

    def tell(self) -> int:
        return self._wire_pos

    def close(self) -> None:
        if not self.closed:
            try:
                posix.close(self._fd)
            except OSError:
                pass
        super().close()
