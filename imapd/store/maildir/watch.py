"""inotify on a mailbox's cur/, new/ and its own directory (dovecot-uidlist is
appended to or renamed over there), so IDLE costs no CPU.

Why ctypes and not the `inotify_simple` package: we need three libc calls
(inotify_init1, inotify_add_watch, and read() which os.read already does);
ctypes is in the standard library, so the server gains no dependency that
pyproject.toml would have to carry, and ctypes is imported only when a
session first asks for a watch (start-up stays light).  Any failure —
ENOSPC/EMFILE when `fs.inotify.max_user_instances` or `max_user_watches` is
exhausted (common with one process per connection), ENOSYS, a missing libc —
yields None and the caller falls back to polling.
"""

from __future__ import annotations

import os

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_DIR_MASK = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF
_ROOT_MASK = IN_MOVED_TO | IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF

_libc = None


def _get_libc():  # type: ignore[no-untyped-def]
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c") or "libc.so.6"
        lib = ctypes.CDLL(name, use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_init1.restype = ctypes.c_int
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_add_watch.restype = ctypes.c_int
        _libc = lib
    return _libc


class Watch:
    """An inotify fd watching some directories (given as open fds)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.wds: dict[int, int] = {}  # watch descriptor -> index in dir_fds
        # per watched directory: an event not explained by `expect` was seen
        self.dirty: list[bool] = []
        # False once a watch was lost (directory removed/renamed): the
        # events then say nothing reliable
        self.ok = True
        self._expected: set[tuple[int, int, str]] = set()  # (index, mask, name)

    def expect(self, index: int, mask: int, name: str) -> None:
        """An event this process is about to cause itself (e.g. its own
        new/ -> cur/ rename): when it arrives it does not make the directory
        dirty."""
        if len(self._expected) < 100_000:
            self._expected.add((index, mask, name))
        else:
            self.ok = False

    def take_dirty(self) -> list[bool]:
        """The dirty flags since the last call (and reset them)."""
        d = self.dirty
        self.dirty = [False] * len(d)
        return d

    def _parse(self, data: bytes) -> None:
        import struct

        pos = 0
        n = len(data)
        exp = self._expected
        while pos + 16 <= n:
            wd, mask, _cookie, ln = struct.unpack_from("iIII", data, pos)
            raw = data[pos + 16 : pos + 16 + ln]
            pos += 16 + ln
            if mask & IN_Q_OVERFLOW or wd < 0:
                self.dirty = [True] * len(self.dirty)
                exp.clear()
                continue
            i = self.wds.get(wd)
            if i is None:
                continue
            if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF):
                self.ok = False
                self.dirty[i] = True
                continue
            if exp:
                name = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                key = (i, mask & (IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE), name)
                if key in exp:
                    exp.discard(key)
                    continue
            self.dirty[i] = True

    @classmethod
    def create(cls, dir_fds: list[int]) -> "Watch | None":
        """None when inotify is unavailable for any reason (then poll)."""
        try:
            lib = _get_libc()
        except (OSError, AttributeError, ImportError):
            return None
        fd = lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return None
        w = cls(fd)
        for i, dfd in enumerate(dir_fds):
            # inotify wants a path: /proc/self/fd/N names exactly the directory
            # we opened (no re-resolution of a user-controlled path)
            path = ("/proc/self/fd/%d" % dfd).encode()
            mask = _ROOT_MASK if i == len(dir_fds) - 1 else _DIR_MASK
            wd = lib.inotify_add_watch(fd, path, mask)
            if wd < 0:
                w.close()
                return None
            w.wds[wd] = i
        w.dirty = [False] * len(dir_fds)
        return w

    def drain(self) -> bool:
        """Read all pending events; True if there was at least one."""
        got = False
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not data:
                break
            got = True
            try:
                self._parse(data)
            except Exception:  # noqa: BLE001 -- never trust a half-understood queue
                self.ok = False
        return got

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
