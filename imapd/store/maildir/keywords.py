"""`dovecot-keywords`: which keyword each letter a-z in a file name stands for.

Lines are `<index> <keyword>` (0 = 'a' ... 25 = 'z').  Malformed lines,
indexes >= 26 and duplicate names are skipped.  Lookups are case-insensitive,
as in Dovecot.  The file is replaced only while the uidlist lock is held, by
writing `dovecot-keywords.lock` and renaming it over the file, so readers never
need a lock.
"""

from __future__ import annotations

import posix
import time

from imapd.store.base import StoreError, StoreLimit

NAME = "dovecot-keywords"
LOCK_NAME = NAME + ".lock"
MAX_KEYWORDS = 26
FIRST_LETTER = ord("a")


class Keywords:
    def __init__(self, dir_fd: int) -> None:
        self.dir_fd = dir_fd
        self.names: list[str | None] = [None] * MAX_KEYWORDS
        self._lookup: dict[str, int] = {}
        self._ident: tuple[int, int, int, int] | None = None
        self.generation = 0  # bumped whenever the mapping changes
        self._loaded = False

    def refresh(self) -> bool:
        """Re-read the file if it changed; True if the mapping changed."""
        try:
            st = posix.stat(NAME, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        ident = None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if self._loaded and ident == self._ident:
            return False
        self._loaded = True
        self._ident = ident
        names: list[str | None] = [None] * MAX_KEYWORDS
        lookup: dict[str, int] = {}
        if st is not None:
            try:
                fd = posix.open(NAME, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=self.dir_fd)
            except FileNotFoundError:
                fd = -1
            except OSError as exc:
                import errno  # (here, not at start-up: loading it costs 0.1 ms)
                if exc.errno == errno.ELOOP:
                    raise StoreError("%s is a symbolic link; it is not followed" % NAME, code="CANNOT") from None
                raise
            if fd >= 0:
                try:
                    from imapd.store.maildir.index import read_all

                    data = read_all(fd)
                finally:
                    posix.close(fd)
                for line in data.decode("utf-8", "replace").split("\n"):
                    idx_s, sep, kw = line.partition(" ")
                    if not sep or not idx_s.isdigit() or not kw:
                        continue
                    idx = int(idx_s)
                    if idx >= MAX_KEYWORDS or names[idx] is not None:
                        continue
                    key = kw.lower()
                    if key in lookup:
                        continue
                    names[idx] = kw
                    lookup[key] = idx
        if names != self.names:
            self.names = names
            self._lookup = lookup
            self.generation += 1
            return True
        self._lookup = lookup
        return False

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.refresh()

    def index_of(self, keyword: str) -> int | None:
        self.ensure_loaded()
        return self._lookup.get(keyword.lower())

    def letter_of(self, keyword: str) -> str | None:
        i = self.index_of(keyword)
        return None if i is None else chr(FIRST_LETTER + i)

    def name_of_letter(self, letter: str) -> str | None:
        self.ensure_loaded()
        return self.names[ord(letter) - FIRST_LETTER]

    def defined(self) -> list[str]:
        self.ensure_loaded()
        return [n for n in self.names if n is not None]

    def create(self, keywords: list[str]) -> None:
        """Give letters to keywords that have none.  The caller holds the
        uidlist lock (that is what makes this safe, as in Dovecot).
        StoreLimit when all 26 letters are taken."""
        self.refresh()
        missing = []
        for kw in keywords:
            if kw.lower() not in self._lookup and kw.lower() not in (m.lower() for m in missing):
                missing.append(kw)
        if not missing:
            return
        names = list(self.names)
        for kw in missing:
            try:
                slot = names.index(None)
            except ValueError:
                raise StoreLimit("Too many keywords in this mailbox (at most %d)" % MAX_KEYWORDS) from None
            names[slot] = kw
        self._write(names)

    def _write(self, names: list[str | None]) -> None:
        data = "".join("%d %s\n" % (i, n) for i, n in enumerate(names) if n is not None).encode("utf-8")
        # we hold the uidlist lock, so a leftover keywords lock is stale
        try:
            posix.unlink(LOCK_NAME, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        fd = posix.open(
            LOCK_NAME, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=self.dir_fd
        )
        try:
            posix.write(fd, data)
            st = posix.fstat(fd)
            if self._ident is not None and st.st_mtime_ns // 10**9 <= self._ident[3] // 10**9:
                # Dovecot notices a change only when the mtime *second* grows
                ns = max((self._ident[3] // 10**9 + 1) * 10**9, time.time_ns())
                posix.utime(fd, ns=(ns, ns))
            posix.fsync(fd)
        except BaseException:
            posix.close(fd)
            try:
                posix.unlink(LOCK_NAME, dir_fd=self.dir_fd)
            except OSError:
                pass
            raise
        posix.close(fd)
        posix.rename(LOCK_NAME, NAME, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        self._loaded = False
        self.refresh()
