"""Writing `dovecot-uidlist`: appending records, and rewriting the whole list.

The functions are UidList's, written as its methods (`self`) and kept here
because a session that numbers no new mail never calls them: every session
would otherwise load them.  The class reaches them through stand-ins
of the same names.  See uidlist.py for the format and the locking.
"""

from __future__ import annotations

import posix
import time
from itertools import compress
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Iterator

    from imapd.store.maildir.uidlist import UidList

from imapd.arrays import array
from imapd.store.maildir.message import write_all
from imapd.store.maildir.uidlist import _ENC, _ERRS, new_guid

# records written per block when the whole list is rewritten
_REWRITE_CHUNK = 4096


def _record(uid: int, base: str, ext: str | None) -> str:
    if ext:
        return "%d %s :%s\n" % (uid, ext, base)
    return "%d :%s\n" % (uid, base)


def append(self: UidList, bases: list[str], exts: list[str | None] | None = None) -> list[int]:
    """Give UIDs to new base names (with their extension fields, if any)
    and write them.  Caller holds the lock and has called refresh() or
    refresh_tail() under it."""
    n = len(bases)
    if exts is None:
        exts = [None] * n
    first = self.next_uid
    new_uids = list(range(first, first + n))
    if new_uids and new_uids[-1] >= 0xFFFFFFFF:
        raise OverflowError("UID space exhausted")
    if self.loaded:
        start = len(self.bases)
        self.uids.extend(new_uids)
        self.bases.extend(bases)
        self.exts.extend(exts)
        if self._by_base is not None:
            self._by_base.update(zip(bases, range(start, start + n)))
    self.next_uid = first + n
    if self.needs_rewrite():
        return _append_by_rewrite(self, first, bases, exts, new_uids)
    fd = posix.open(self.name, posix.O_WRONLY | posix.O_APPEND | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=self.dir_fd)
    try:
        st = posix.fstat(fd)
        if (st.st_dev, st.st_ino) != self.ident or st.st_size != self.offset:
            # someone changed it without the lock: never guess, rewrite
            posix.close(fd)
            fd = -1
            return _append_by_rewrite(self, first, bases, exts, new_uids)
        try:
            for data in _encoded(self, new_uids, bases, exts):
                write_all(fd, data)
            posix.fdatasync(fd)
        except BaseException:
            # disk full, file size limit...: leave no partial record line
            # behind (the next appender would glue its line onto it), and
            # give the UIDs back, since nobody else will ever learn of them
            try:
                posix.ftruncate(fd, self.offset)
            except OSError:
                pass
            _take_back(self, first)
            raise
        st = posix.fstat(fd)
        self.offset = st.st_size
        self.mtime_ns = st.st_mtime_ns
    finally:
        if fd >= 0:
            posix.close(fd)
    return new_uids


def _encoded(self: UidList, uids: list[int], bases: list[str], exts: list[str | None]) -> Iterator[bytes]:
    """The record lines, 8,192 at a time: a cold SELECT numbers 100,000
    files, and their lines need not all exist at once (formatted in C
    when no record has extension fields)."""
    for k in range(0, len(uids), 8192):
        u, b, e = uids[k : k + 8192], bases[k : k + 8192], exts[k : k + 8192]
        if e.count(None) == len(e):
            text = "".join(map("%d :%s\n".__mod__, zip(u, b)))
        else:
            text = "".join(map(_record, u, b, e))
        yield text.encode(_ENC, _ERRS)


def _append_by_rewrite(self: UidList, first: int, bases: list[str], exts: list[str | None],
                       new_uids: list[int]) -> list[int]:
    """Finish an append with a full rewrite (which needs every record read first)."""
    if not self.loaded:
        self.next_uid = first
        self.load()
        return append(self, bases, exts)
    try:
        rewrite(self)
    except BaseException:
        _take_back(self, first)
        raise
    return new_uids


def _take_back(self: UidList, first: int) -> None:
    """Forget records from UID `first` on that were never written."""
    if self.loaded:
        k = len(self.uids)
        while k and self.uids[k - 1] >= first:
            k -= 1
        if k < len(self.uids):
            del self.uids[k:]
            del self.bases[k:]
            del self.exts[k:]
            self._by_base = None
    self.next_uid = first


def rewrite(self: UidList, drop: set[int] | None = None, uidvalidity: int | None = None) -> None:
    """Write the whole list via dovecot-uidlist.tmp + rename (lock held).

    `drop`: UIDs to leave out (expunged).  N never goes down."""
    assert self.loaded
    if uidvalidity is not None:
        self.uidvalidity = uidvalidity
    if not self.uidvalidity:
        self.uidvalidity = int(time.time())
    if not self.guid or len(self.guid) != 32:
        self.guid = new_guid()
    old = self.stat()
    if drop:
        mask = [u not in drop for u in self.uids]
        self.uids = array("I", compress(self.uids, mask))
        self.bases = list(compress(self.bases, mask))
        self.exts = list(compress(self.exts, mask))
        self._by_base = None
    hdr = ["3", "V%d" % self.uidvalidity, "N%d" % self.next_uid, "G" + self.guid]
    hdr.extend(self.hdr_extra)
    fd = posix.open(
        self.tmp_name,
        posix.O_RDWR | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW | posix.O_CLOEXEC,
        0o600,
        dir_fd=self.dir_fd,
    )
    try:
        write_all(fd, (" ".join(hdr) + "\n").encode(_ENC, _ERRS))
        # A few thousand records at a time: the whole text of 100,000
        # would be 10 MB of line strings, then 6 MB twice (text, bytes).
        uids, bases, exts = self.uids, self.bases, self.exts
        for start in range(0, len(uids), _REWRITE_CHUNK):
            end = start + _REWRITE_CHUNK
            chunk = "".join([f"{u} :{b}\n" if e is None else f"{u} {e} :{b}\n"
                             for u, b, e in zip(uids[start:end], bases[start:end], exts[start:end])])
            write_all(fd, chunk.encode(_ENC, _ERRS))
        posix.fdatasync(fd)
        st = posix.fstat(fd)
        if old is not None and st.st_mtime_ns <= old.st_mtime_ns:
            # readers compare mtimes: a rewrite must look newer
            ns = old.st_mtime_ns + 1_000_000
            posix.utime(fd, ns=(ns, ns))
            st = posix.fstat(fd)
    except BaseException:
        posix.close(fd)
        try:
            posix.unlink(self.tmp_name, dir_fd=self.dir_fd)
        except OSError:
            pass
        raise
    try:
        posix.rename(self.tmp_name, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
    except BaseException:
        posix.close(fd)
        raise
    self._hold(fd)
    self.version = 3
    self.hdr_next_uid = self.next_uid
    self.ident = (st.st_dev, st.st_ino)
    self.offset = st.st_size
    self.mtime_ns = st.st_mtime_ns
    self.broken = False
    self.header_broken = False
    self.tail_known = True


def set_records(self: UidList, uids: list[int], bases: list[str], exts: list[str | None] | None = None) -> None:
    """Replace the in-memory records (used when building a new list)."""
    self.uids = array("I", uids)
    self.bases = list(bases)
    self.exts = list(exts) if exts is not None else [None] * len(bases)
    self._by_base = None
    self.loaded = True
    self.tail_known = True
    if uids and uids[-1] >= self.next_uid:
        self.next_uid = uids[-1] + 1
