"""Give the memory that bulk work freed back to the system.

A FETCH or SEARCH over 100,000 messages reads each message into a bytes
object (plus its CRLF form) and drops it a moment later.  glibc's malloc
serves those from its heap, and after one large message it raises its mmap
threshold, so from then on every message up to that size comes from the
heap too: the heap fills with free holes that are never handed back.  A cold
`FETCH 1:* (ENVELOPE BODYSTRUCTURE)` grew to ~72 MB resident while holding
~35 MB of live objects.  `malloc_trim(0)` after every few megabytes of
message data returns the holes (~0.2 ms a call) and kept the same session
at ~62 MB, at no cost in time.

Where there is no `malloc_trim` (another C library), or ctypes cannot be
imported (after the privilege drop, an interpreter only root may read),
this does nothing.
"""

from __future__ import annotations

TRIM_EVERY = 8 << 20  # bytes of message data read between two trims

_read = 0
_trim = None  # malloc_trim, once looked up; False: there is none


def note_read(nbytes: int) -> None:
    """Count message data read (and soon dropped); trim every TRIM_EVERY bytes."""
    global _read
    _read += nbytes
    if _read >= TRIM_EVERY:
        _read = 0
        trim()


def trim() -> None:
    """Hand freed heap memory back to the system, if the C library can."""
    global _trim
    if _trim is None:
        try:
            import ctypes  # only sessions that read megabytes of mail pay for it

            _trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
        except (ImportError, OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)
