"""One Maildir directory as this process sees it, shared by every user of it in
the process (the Store's APPEND/COPY and any open Mailbox objects).

It owns the directory fds (so every later open is relative to a directory we
checked, never re-resolving a path that a symlink could redirect), the
uidlist, the keywords, the dotlock, and two things that make a big mailbox
cheap to keep in sync:

* `expected`: the mtimes of cur/ and new/ that this process can fully account
  for.  A directory whose mtime still equals it needs no readdir.  It is set
  by a full scan (only when the mtime was at least a second old when it was
  read, since file-system timestamps are coarse) and carried forward across
  our own renames/links/unlinks (each checked before and after).
* `log`: what this process itself did (messages added, flags written, files
  removed or moved new/ -> cur/), so every Mailbox object on the folder learns
  of them without a readdir.
"""

from __future__ import annotations

import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)
import time
from _weakref import ref as _weak_ref
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from imapd.store.base import OverQuota, StoreError, StoreLimit
from imapd.store.maildir import index as idxmod
from imapd.store.maildir.flags import FlagCodec
from imapd.store.maildir.keywords import Keywords
from imapd.store.maildir.layout import O_DIR
from imapd.store.maildir.uidlist import UidList, read_courier_uiddb

if TYPE_CHECKING:
    from typing import Iterator, Sequence

    from imapd.store.maildir.dotlock import DotLock
    from imapd.store.maildir.store import MaildirStore


class BoxSet:
    """The Mailbox objects open on a folder, held weakly: one dropped without
    close() leaves the set as it is freed.  (weakref.WeakSet would import
    `weakref`, `_weakrefset` and `types` into every start-up: about 1 ms.)"""

    __slots__ = ("_refs", "__weakref__")

    def __init__(self) -> None:
        self._refs: dict[int, Any] = {}  # id(box) -> weak reference to it

    def add(self, box: Any) -> None:
        key = id(box)
        old = self._refs.get(key)
        if old is not None and old() is box:
            return
        me = _weak_ref(self)  # the callback must not keep the set alive

        def gone(r: Any) -> None:
            s = me()
            if s is not None and s._refs.get(key) is r:
                del s._refs[key]

        self._refs[key] = _weak_ref(box, gone)

    def discard(self, box: Any) -> None:
        r = self._refs.get(id(box))
        if r is not None and r() is box:
            del self._refs[id(box)]

    def __contains__(self, box: object) -> bool:
        r = self._refs.get(id(box))
        return r is not None and r() is box

    def __iter__(self) -> Iterator[Any]:
        """The live boxes (a snapshot: the set may change meanwhile)."""
        return iter([b for b in [r() for r in list(self._refs.values())] if b is not None])

    def __len__(self) -> int:
        return len(self._refs)

# A directory mtime must be this much older than the moment we read it before
# we trust that a later equal mtime means "unchanged" (coarse timestamps).
TRUST_AGE_NS = 1_000_000_000
# After our own changes, verify with a full scan this long after the first of
# them: a change someone else made to the same directory while ours ran moved
# the mtime we then adopted, so only a scan can show it.  (Counting from the
# first, not the last, own change bounds the delay for a busy session too.)
VERIFY_AFTER = 2.0
# Leftovers in tmp/ (a delivery or APPEND that died half way) are removed
# when their ctime is this old -- 36 hours, the Maildir convention Dovecot
# follows -- and tmp/ is looked at no more often than every TMP_SCAN_SECS
# (its atime, set after each scan, says when the last one was).
TMP_DELETE_SECS = 36 * 3600
TMP_SCAN_SECS = 8 * 3600


def full_error(exc: OSError) -> StoreError | None:
    """What the client hears when a write failed for lack of room: NO
    [OVERQUOTA] for a full disk or quota (as Dovecot answers, RFC 5530), NO
    [LIMIT] for a file-size limit (RLIMIT_FSIZE: EFBIG).  None: not that."""
    import errno  # (here, not at start-up: loading it costs 0.1 ms)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OverQuota("Not enough disk space")
    if exc.errno == errno.EFBIG:
        return StoreLimit("File size limit exceeded")
    return None


class MaildirFolder:
    def __init__(self, store: "MaildirStore", name: str, dirname: str, fd: int) -> None:
        self.store = store
        self.name = name
        self.dirname = dirname
        self.fd = fd
        st = posix.fstat(fd)
        self.ident = (st.st_dev, st.st_ino)
        self.writable = not store.readonly
        self.cur_fd = -1
        self.new_fd = -1
        self.tmp_fd = -1
        try:
            self.cur_fd = self._subdir("cur")
            self.new_fd = self._subdir("new")
            try:
                self.tmp_fd = self._subdir("tmp")
            except OSError:
                if self.writable:
                    raise
        except BaseException:
            self.close()
            raise
        self.uidlist = UidList(fd)
        self.keywords = Keywords(fd)
        self.codec = FlagCodec(self.keywords)
        self._lock: DotLock | None = None  # made at first use: a warm SELECT takes no lock
        self._lock_timeout = store.lock_timeout
        self.boxes = BoxSet()
        self.expected: list[int | None] = [None, None]  # cur, new
        self.from_own_op = False
        self.last_own_op = 0.0
        self.first_own_op = 0.0  # first own change since the last verified scan
        self.epoch = 0
        self.log: list[tuple] = []
        self.log_base = 0
        self.closed = False
        self.tmp_checked = False

    # ------------------------------------------------------------ basics
    def _subdir(self, sub: str) -> int:
        try:
            return posix.open(sub, O_DIR, dir_fd=self.fd)
        except FileNotFoundError:
            if not self.writable:
                raise
            try:
                posix.mkdir(sub, 0o700, dir_fd=self.fd)
            except FileExistsError:
                pass
            return posix.open(sub, O_DIR, dir_fd=self.fd)

    def still_there(self) -> bool:
        """True if our fd still is the directory the name points to (not
        renamed or deleted by someone else since we opened it)."""
        root = self.store.root_fd
        try:
            st = posix.stat(self.dirname or ".", dir_fd=root, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.ident

    @property
    def lock(self) -> DotLock:
        """The dotlock on dovecot-uidlist that every writer takes."""
        if self._lock is None:
            from imapd.store.maildir.dotlock import DotLock

            self._lock = DotLock(self.fd, "dovecot-uidlist", stale_timeout=120.0, timeout=self._lock_timeout)
        return self._lock

    def close(self) -> None:
        ul = getattr(self, "uidlist", None)
        if ul is not None:
            ul.close()
        for attr in ("cur_fd", "new_fd", "tmp_fd", "fd"):
            fd = getattr(self, attr, -1)
            if fd >= 0:
                try:
                    posix.close(fd)
                except OSError:
                    pass
                setattr(self, attr, -1)
        self.closed = True

    def dir_state(self) -> tuple[int, int]:
        return posix.stat(self.cur_fd).st_mtime_ns, posix.stat(self.new_fd).st_mtime_ns

    def require_writable(self) -> None:
        if not self.writable:
            from imapd.store.base import ReadOnlyStore

            raise ReadOnlyStore("Mailbox store is read-only")

    # ------------------------------------------------------ own changes
    def begin_own(self) -> tuple[bool, bool]:
        st = self.dir_state()
        return (
            self.expected[0] is not None and st[0] == self.expected[0],
            self.expected[1] is not None and st[1] == self.expected[1],
        )

    def end_own(self, ok: tuple[bool, bool]) -> None:
        st = self.dir_state()
        self.expected = [st[0] if ok[0] else None, st[1] if ok[1] else None]
        now = time.monotonic()
        if not self.from_own_op:
            self.first_own_op = now
        self.from_own_op = True
        self.last_own_op = now

    def after_scan(self, pre: tuple[int, int], t_ns: int) -> None:
        """A full scan read the directories as they were at `pre` (stat'ed at
        wall time t_ns): trust those mtimes only if they were old enough."""
        self.expected = [m if m < t_ns - TRUST_AGE_NS else None for m in pre]
        self.from_own_op = False
        self.epoch += 1

    def add_log(self, event: tuple) -> None:
        if self.boxes:
            self.log.append(event)

    def trim_log(self) -> None:
        if not self.log:
            return
        boxes = list(self.boxes)
        low = min((b._log_pos for b in boxes), default=self.log_base + len(self.log))
        cut = low - self.log_base
        if cut > 0:
            del self.log[:cut]
            self.log_base += cut

    # ---------------------------------------------------------- uidlist
    def ensure_uidlist(self, number_present: bool = False) -> None:
        """Make sure a usable uidlist exists (lock held): import Courier's
        courierimapuiddb, or rebuild from our index, before inventing a new
        UIDVALIDITY — a list is only "lost" when nothing remembers it.
        `number_present`: a new list numbers the messages already in cur/
        and new/ (APPEND and COPY, which list nothing themselves; a sync
        numbers what its own listing found)."""
        ul = self.uidlist
        ul.refresh_tail()
        if ul.version == 3 and ul.uidvalidity and not ul.header_broken:
            return
        if ul.version == 1 and ul.uidvalidity:
            ul.load()
            ul.rewrite()  # upgrade to version 3, as Dovecot does
            return
        if not ul.loaded:
            ul.load()
        if ul.ident is not None and ul.uids:
            # header broken but records readable: keep the UIDs
            v = ul.uidvalidity
            if not v:
                d = idxmod.load_index(self.fd)
                if d is not None:
                    d.close()
                v = d.uidvalidity if d and d.uidvalidity else self.store.new_uidvalidity()
            ul.rewrite(uidvalidity=v)
            return
        courier = read_courier_uiddb(self.fd)
        if courier is not None:
            v, n, uids, bases = courier
            ul.uidvalidity = v
            ul.next_uid = max(n, 1)
            ul.set_records(uids, bases)
            ul.rewrite()
            return
        d = idxmod.load_index(self.fd)
        uids: Sequence[int] = ()
        try:
            if d is not None:
                uids = d.uid_array()
            names = d.names() if d is not None else []
        except idxmod.IndexCorrupt:
            d = None
        finally:
            if d is not None:
                d.close()
        if d is not None and d.uidvalidity and not ul.uidvalidity:
            ul.uidvalidity = d.uidvalidity
            n = max(uids[-1] + 1 if uids else 1, ul.next_uid)
            ul.next_uid = n
            ul.set_records(list(uids), list(names))
            ul.rewrite()
            return
        if not ul.uidvalidity:
            ul.uidvalidity = self.store.new_uidvalidity()
        # For an APPEND or COPY, a new list numbers the messages already
        # here, in Maildir order, before the new one (as Dovecot does): else
        # a first APPEND into a folder that no IMAP server had opened yet
        # would put the newest message first.
        bases = self._present_bases() if number_present else []
        ul.set_records(list(range(1, len(bases) + 1)), bases)
        ul.rewrite()

    def _present_bases(self) -> list[str]:
        """The base names of the messages in cur/ and new/, in Maildir order."""
        from imapd.store.maildir.resync import _scan_dir, _sort_maildir_names

        present = set(_scan_dir(self.cur_fd)[0])
        present.update(_scan_dir(self.new_fd)[0])
        bases = list(present)
        _sort_maildir_names(bases)
        return bases

    def read_uidvalidity(self) -> int:
        """UIDVALIDITY without loading every record (header only)."""
        ul = self.uidlist
        if not ul.tail_known:
            ul.refresh_tail()
        return ul.uidvalidity

    # ----------------------------------------------------------- recent
    def claim_recent_range(self, next_uid: int) -> int:
        """Under the lock: return the shared "first recent UID" and move it to
        `next_uid`.  UIDs in [returned value, next_uid) are \\Recent for the
        caller and for nobody else."""
        state = idxmod.read_state(self.fd)
        v = self.uidlist.uidvalidity
        first = state.get("R", 1) if state.get("V") == v else 1
        if next_uid > first:
            try:
                idxmod.write_state(self.fd, {"V": v, "R": next_uid})
            except OSError:
                # (disk full...) what is not written down is not ours: take
                # nothing, and a later session will
                return next_uid
        return first

    def peek_first_recent(self) -> int:
        state = idxmod.read_state(self.fd)
        if state.get("V") != self.uidlist.uidvalidity:
            return 1
        return state.get("R", 1)

    # -------------------------------------------------------- delivery
    def clean_tmp(self, now: float | None = None) -> int:
        """Remove stale leftovers from tmp/ (at most once per folder object,
        and only when tmp/'s atime says the last scan is TMP_SCAN_SECS old),
        as Dovecot does when it opens a mailbox.  Returns how many."""
        if self.tmp_checked or not self.writable or self.tmp_fd < 0:
            return 0
        self.tmp_checked = True
        now = time.time() if now is None else now
        try:
            st = posix.fstat(self.tmp_fd)
        except OSError:
            return 0
        if st.st_atime > st.st_ctime + TMP_DELETE_SECS:
            return 0  # scanned after the last change by more than the age limit: empty
        if st.st_atime >= now - TMP_SCAN_SECS:
            return 0
        removed = 0
        try:
            with posix.scandir(self.tmp_fd) as it:
                entries = list(it)
            for e in entries:
                try:
                    est = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if not _stat.S_ISDIR(est.st_mode) and est.st_ctime <= now - TMP_DELETE_SECS:
                    try:
                        posix.unlink(e.name, dir_fd=self.tmp_fd)
                        removed += 1
                    except OSError:
                        pass
            # remember the scan (noatime and relatime mounts would not)
            posix.utime(self.tmp_fd, ns=(int(now * 1e9), st.st_mtime_ns))
        except OSError:
            pass
        return removed

    def new_tmp_file(self) -> tuple[str, int]:
        """A fresh uniquely named file in tmp/ (O_EXCL), as (name, fd)."""
        self.require_writable()
        for _ in range(100):
            name = self.store.unique_name()
            try:
                fd = posix.open(
                    name,
                    posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                    0o600,
                    dir_fd=self.tmp_fd,
                )
                return name, fd
            except FileExistsError:
                continue
        raise StoreError("Could not create a unique temporary file")

    def unlink_tmp(self, name: str) -> None:
        try:
            posix.unlink(name, dir_fd=self.tmp_fd)
        except OSError as exc:
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
            if exc.errno != errno.ENOENT:
                raise

    def link_into_cur(self, src_name: str, src_fd: int, suffix: str, info: str) -> str:
        """Hard-link a complete file into cur/ under a fresh unique base name;
        returns the base name.  EEXIST picks another name (never overwrite)."""
        for _ in range(100):
            base = self.store.unique_name() + suffix
            try:
                posix.link(src_name, base + ":" + info, src_dir_fd=src_fd, dst_dir_fd=self.cur_fd, follow_symlinks=False)
                return base
            except FileExistsError:
                continue
        raise StoreError("Could not create a unique file name")
