"""Message bytes: stored form (LF line ends, as Dovecot saves by default and as
local mail tools expect) <-> wire form (CRLF), streamed in chunks.

Wire form = every LF not already preceded by CR becomes CRLF; nothing else
changes.  Converting chunk by chunk must not split a CR from its LF, so a CR
at the end of a chunk is held back until the next chunk is seen.
"""

from __future__ import annotations

import posix
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import BinaryIO

CHUNK = 256 * 1024


def to_wire(data: bytes) -> bytes:
    """Whole-buffer conversion (bare LF -> CRLF, existing CRLF kept)."""
    # (LF and CR as ints: `int in bytes` is one memchr, while a bytes needle
    # is first tried as an int, raising and dropping a TypeError each time)
    if _LF not in data:
        return data
    if _CR not in data:
        return data.replace(b"\n", b"\r\n")  # the usual stored form: one pass
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


_LF, _CR = 0x0A, 0x0D


def wire_size_of_fd(fd: int) -> tuple[int, int]:
    """(physical size, wire size) of an open file, read in chunks."""
    size = 0
    bare = 0
    prev_cr = False
    pos = 0
    while True:
        chunk = posix.pread(fd, CHUNK, pos)
        if not chunk:
            break
        pos += len(chunk)
        size += len(chunk)
        bare += chunk.count(b"\n") - chunk.count(b"\r\n")
        if prev_cr and chunk[:1] == b"\n":
            bare -= 1
        prev_cr = chunk[-1:] == b"\r"
    return size, size + bare


def read_wire(fd: int, size: int) -> bytes:
    """The whole file in wire form; `size` is its size from an fstat the
    caller already made."""
    first = posix.pread(fd, size + 1, 0)  # all of it in one read, as a rule
    if len(first) != size:  # it grew, shrank or came short: read to the end
        parts = [first]
        pos = len(first)
        while True:
            chunk = posix.pread(fd, 1 << 20, pos)
            if not chunk:
                break
            parts.append(chunk)
            pos += len(chunk)
        first = b"".join(parts)
    return to_wire(first)


def write_stored(fd: int, src: BinaryIO) -> tuple[int, int]:
    """Copy a wire-form message to `fd` in stored form (CRLF -> LF).

    Returns (physical size, wire size of what was stored).  OSError from
    write (ENOSPC, EDQUOT, ...) propagates; the caller removes the file."""
    size = 0
    bare = 0
    prev_cr = False   # last *stored* byte was CR
    held = False      # a CR at the end of the last *input* chunk
    read = getattr(src, "read")
    while True:
        chunk = read(CHUNK)
        if not chunk:
            break
        if held:
            chunk = b"\r" + chunk
            held = False
        if chunk[-1:] == b"\r":
            chunk = chunk[:-1]
            held = True
        if not chunk:
            continue
        data = chunk.replace(b"\r\n", b"\n") if b"\r\n" in chunk else chunk
        write_all(fd, data)
        size += len(data)
        bare += data.count(b"\n") - data.count(b"\r\n")
        if prev_cr and data[:1] == b"\n":
            bare -= 1
        prev_cr = data[-1:] == b"\r"
    if held:
        write_all(fd, b"\r")
        size += 1
    return size, size + bare


def copy_fd(src_fd: int, dst_fd: int) -> None:
    """Copy a stored message verbatim (COPY across file systems)."""
    pos = 0
    while True:
        chunk = posix.pread(src_fd, CHUNK, pos)
        if not chunk:
            break
        write_all(dst_fd, chunk)
        pos += len(chunk)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = posix.write(fd, view)
        view = view[n:]
