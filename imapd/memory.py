"""Give the memory that bulk work freed back to the system.

The first FETCH of ENVELOPE/BODYSTRUCTURE over 100,000 messages reads and
parses each one (the message, its CRLF form, the part tree) and drops it a
moment later.  glibc's malloc serves those from its heap, and after one
large message it raises its mmap threshold, so from then on every message up
to that size comes from the heap too: the heap fills with free holes that
are never handed back.  That FETCH grew to ~72 MB resident while holding ~35
MB of live objects.  `malloc_trim(0)` after every few megabytes of parsed
mail returns the holes (~0.2 ms a call): ~62 MB, at no cost in time.

Only parsing counts, not every read: a FETCH of whole bodies streams 2.5 GB
through one output buffer, and trimming under it cost a third of its
throughput (pages handed back and faulted in again).

Where there is no `malloc_trim` (another C library), or ctypes cannot be
imported (after the privilege drop, an interpreter only root may read),
this does nothing.
"""

from __future__ import annotations

TRIM_EVERY = 8 << 20  # bytes of mail parsed between two trims

_parsed = 0
_trim = None  # malloc_trim, once looked up; False: there is none


def note_parsed(nbytes: int) -> None:
    """Count mail parsed (and soon dropped); trim every TRIM_EVERY bytes."""
    global _parsed
    _parsed += nbytes
    if _parsed >= TRIM_EVERY:
        _parsed = 0
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
