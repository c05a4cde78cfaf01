"""MaildirMailbox: one selected (or examined) Maildir folder.

Per-message state lives in parallel arrays indexed by position (= sequence
number - 1): UIDs, base names, info suffixes (interned: a mailbox has few
distinct ones), a "still in new/" byte, wire sizes, internal dates and MODSEQs.
A 100,000-message mailbox costs a few tens of MB, not an object per message.

The view changes only in `sync()`.  Elsewhere a vanished file (renamed by mutt,
expunged by another session) is found again by its base name with one readdir
(`_relocate`), and whatever that teaches is reported by the next sync.
"""

from __future__ import annotations

import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)
import sys
import time
from imapd import arrays
from imapd.arrays import at_first_call
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from array import array
    from types import ModuleType
    from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

from imapd.store.base import (
    CopyResult,
    Mailbox,
    MailboxStatus,
    NoSuchMessage,
    ReadOnlyStore,
    StoreError,
    SyncChanges,
)
from imapd.store.maildir import index as idxmod
from imapd.store.maildir.flags import FORWARDED
from imapd.store.maildir.folder import VERIFY_AFTER, MaildirFolder
from imapd.store.maildir.layout import O_FILE

if TYPE_CHECKING:
    from imapd.store.maildir.cache import CacheColumn
    from imapd.store.maildir.store import MaildirStore

NO_TIME = -1.0e300  # internal date not known yet
# a cache key that may name a file: [a-z0-9][a-z0-9.,_-]* (checked without `re`,
# which a session that never caches anything should not import)
_KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_KEY_CHARS = _KEY_FIRST | frozenset(".,_-")
_intern = sys.intern


def _good_name(name: str) -> bool:
    return bool(name) and name[0] != "." and "\n" not in name and "\r" not in name and "/" not in name


def _list_dir(fd: int) -> list[str]:
    """Regular files of a directory (symlinks and subdirectories skipped,
    dot files and names with CR/LF ignored as Dovecot does)."""
    with posix.scandir(fd) as it:
        names = [e.name for e in it if e.is_file(follow_symlinks=False)]
    if names:
        j = "\n".join(names)
        if j[0] == "." or "\n." in j or "\r" in j or j.count("\n") != len(names) - 1:
            names = [n for n in names if _good_name(n)]
    return names


def _split_names(names: list[str]) -> dict[str, str]:
    """base -> info for a directory listing."""
    return {b: i for b, _, i in map(str.partition, names, [":"] * len(names))}


# (what `bisect` re-exports; loaded at its first call, which a warm SELECT never makes)
bisect_left = at_first_call("_bisect", "bisect_left", globals())
# (message.py, which reads a message's bytes: at the first FETCH of a body or a size)
read_wire = at_first_call("imapd.store.maildir.message", "read_wire", globals())
to_wire = at_first_call("imapd.store.maildir.message", "to_wire", globals())
wire_size_of_fd = at_first_call("imapd.store.maildir.message", "wire_size_of_fd", globals())


class _FlagsByInfo(dict):  # type: ignore[type-arg]
    """info suffix -> its flags, each made on first sight.  A FETCH 1:* meets
    a handful of distinct suffixes, and new ones as files are renamed under
    it (another client's flag changes, found while it runs)."""

    __slots__ = ("flags",)

    def __init__(self, flags: Callable[[str], frozenset[str]]) -> None:
        super().__init__()
        self.flags = flags

    def __missing__(self, info: str) -> frozenset[str]:
        fs = self[info] = self.flags(info)
        return fs


def _meta_column(attr: str, k: int, doc: str) -> property:
    """A column of sizes, dates or MODSEQs that a warm open leaves in the
    index file until first use (see MaildirMailbox._load_meta).  Replacing
    one reads the others first, so the three always line up with the view."""

    def get(self: "MaildirMailbox") -> array:
        a = getattr(self, attr)
        return a if a is not None else self._load_meta()[k]

    def put(self: "MaildirMailbox", a: array) -> None:
        if self._meta_src is not None:
            self._load_meta()
        setattr(self, attr, a)

    return property(get, put, doc=doc)


def _resync() -> ModuleType:
    """Listing the directories and rebuilding the view (store/maildir/resync.py),
    loaded at first use: a warm open of an unchanged mailbox never lists."""
    from imapd.store.maildir import resync

    return resync


def _changes() -> ModuleType:
    """STORE and EXPUNGE (store/maildir/changes.py), loaded at first use."""
    from imapd.store.maildir import changes

    return changes


def _index_unreadable() -> StoreError:
    """What a command gets when a column the view left in imapd.index turns
    out damaged (or cut short by another program) when first read."""
    return StoreError("The mailbox index can no longer be read; select the mailbox again", code="UNAVAILABLE")


class _Lend:
    """What uids_later() promised: the UIDs as they were then (None while
    they have not changed since and nobody has asked)."""

    __slots__ = ("uids",)

    def __init__(self) -> None:
        self.uids: array | None = None


class MaildirMailbox(Mailbox):
    def __init__(self, store: "MaildirStore", folder: MaildirFolder, name: str, readonly: bool) -> None:
        self.name = name
        self.readonly = readonly or not folder.writable
        self._store = store
        self._f = folder
        self._closed = False
        # the columns by position: made by _open (a warm one leaves them in
        # the index file: see _uids and _load_meta)
        self._uids_a: array | None = None
        self._uids_src: idxmod.IndexData | None = None
        self._uids_lent: array | _Lend | None = None  # what uids() or uids_later() lent last
        self._hint = 0
        self._bases_list: list[str] | None = []
        self._names_src: idxmod.IndexData | None = None  # names not read yet (see _bases)
        self._infos_list: list[str] | None = []  # None: still _info_ids (see _infos)
        self._info_ids: array | bytearray | None = None
        self._info_table: list[str] = []
        self._innew_a = bytearray()
        self._flags_src: idxmod.IndexData | None = None  # info ids and new/ flags not read yet (see _read_flags)
        self._meta_src: idxmod.IndexData | None = None  # columns not read yet (see _wsize)
        self._wsize_a: array | None = None
        self._mtime_a: array | None = None
        self._modseq_a: array | None = None
        self._hms = 1
        self._uidvalidity = 0
        self._max_seen = 0
        self._virtual: dict[str, int] = {}  # read-only store: UIDs we could not write
        self._virtual_next = 0
        self._recent: list[tuple[int, int]] = []  # [lo, hi) ranges this session holds
        self._peek_first_recent = 0
        self._pending = SyncChanges()
        self._pending_flags: set[int] = set()
        self._log_pos = folder.log_base + len(folder.log)
        self._ul_changes = -1  # folder.uidlist.changes when the view last took in the uidlist
        self._epoch = -1
        self._synced_ul: tuple | None = None
        self._ul_spare = -1  # records of that uidlist with no file in the view (-1: unknown)
        self._synced_dirs: tuple | None = None
        self._last_full = 0.0
        self._index_dirty = False
        # the cache: one file per key, opened when a command first asks for that key
        self._columns: dict[str, CacheColumn] = {}
        self._cache_dropped: set[int] = set()  # UIDs whose entries are void in every key
        self._old_cache_gone = False
        self._client_keys: set[str] | None = None  # cache files of client-made keys
        self._watch = None
        self._wtrust = [False, False]  # cur/, new/: the watch vouches for the view
        folder.boxes.add(self)
        try:
            self._open()
        except BaseException:
            folder.boxes.discard(self)
            raise
        folder.clean_tmp()

    # ================================================================ open
    def _open(self) -> None:
        f = self._f
        ul = f.uidlist
        st = ul.stat()
        idx = idxmod.load_index(f.fd) if self._store.use_index else None
        ident = None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        same_list = idx is not None and st is not None and idx.uidlist_ident == ident and idx.uidvalidity
        if same_list:
            ul.refresh_tail()
            same_list = ul.uidvalidity == idx.uidvalidity and ul.version == 3  # type: ignore[union-attr]
        if same_list:
            assert idx is not None
            # the index is the view as of this very uidlist: adopt it
            self._uidvalidity = idx.uidvalidity
            self._uids_a, self._uids_src = None, idx  # read when first used (see _uids)
            self._bases_list = idx.bases
            self._names_src = idx
            self._infos_list = None  # the index's compact ids until a list is needed
            self._info_table = idx.info_table
            self._flags_src = idx  # info ids, new/ flags: read when first used
            self._meta_src = idx  # sizes, dates, MODSEQs: read when first used
            self._hms = idx.highestmodseq
            self._max_seen = idx.uid_ends[-1] if idx.uid_ends else 0
            self._synced_ul = idx.uidlist_ident
            self._ul_spare = idx.ul_spare
            t_ns = time.time_ns()
            dirs = f.dir_state()
            warm = (
                idx.dirs is not None
                and tuple(dirs) == tuple(idx.dirs)
                and all(m < t_ns - 1_000_000_000 for m in dirs)
            )
            others = [b for b in f.boxes if b is not self]
            if warm and (not others or f.expected == list(idx.dirs)):
                # nothing changed since the snapshot: no readdir at all
                if f.expected != list(idx.dirs):
                    f.expected = list(idx.dirs)
                    f.from_own_op = False
                    f.epoch += 1
                self._epoch = f.epoch
                self._synced_dirs = idx.dirs
                self._last_full = time.monotonic()
                self._ul_changes = ul.changes
            else:
                # same UIDs, but files may have been renamed/removed/added;
                # nothing was reported to anyone yet, so every UID may appear
                self._max_seen = 0
                self._full_sync(initial=True)
                if self._synced_dirs is not None and self._synced_dirs != idx.dirs:
                    # a snapshot the index did not have (it was saved after our
                    # own changes, or the directories were too fresh): save it,
                    # so that the next open needs no readdir of 100,000 files
                    self._index_dirty = True
        else:
            array = arrays.array
            self._uids_a = array("I")
            self._wsize_a, self._mtime_a, self._modseq_a = array("q"), array("d"), array("Q")
            if idx is not None:
                self._hms = max(self._hms, idx.highestmodseq)
                idx.bases = []  # not needed to seed
                try:
                    idx.info_list()
                    idx.uid_array()
                    idx.meta()
                except idxmod.IndexCorrupt:
                    idx = None  # no seed: sizes and dates are read again
                else:
                    idx.close()
            self._full_sync(seed=idx, initial=True)
        del idx
        self._pending = SyncChanges()
        self._pending_flags.clear()
        # (the first and the last UID are all that either needs)
        ends = self._uid_ends()
        if not self.readonly:
            self._claim_recent(ends, initial=True)
        else:
            self._peek_first_recent = f.peek_first_recent() if ends else 0

    # ============================================================ helpers
    @property
    def _uids(self) -> array:
        """UIDs by position.  A warm open leaves them in the index file
        (`_uids_src`) until first used: a SELECT answers from their count and
        the first and last, and a session that names no message never reads
        the 400 KB of 100,000 (nor takes their hundred page faults)."""
        uids = self._uids_a
        if uids is None:
            src = self._uids_src
            assert src is not None
            try:
                uids = src.uid_array()
            except idxmod.IndexCorrupt:
                raise _index_unreadable() from None
            self._uids_a, self._uids_src = uids, None
        return uids

    @_uids.setter
    def _uids(self, uids: array) -> None:
        self._settle_lend()
        self._uids_a, self._uids_src = uids, None

    def _uid_count(self) -> int:
        return len(self._uids_a) if self._uids_a is not None else self._uids_src.count  # type: ignore[union-attr]

    def _uid_ends(self) -> tuple[int, ...]:
        """(first UID, last UID), or () for an empty view, without reading them all."""
        uids = self._uids_a
        if uids is None:
            return self._uids_src.uid_ends  # type: ignore[union-attr]
        return (uids[0], uids[-1]) if len(uids) else ()

    def _settle_lend(self) -> None:
        """Before the view's UIDs change: what uids_later() promised, as it is now."""
        lent = self._uids_lent
        if type(lent) is _Lend and lent.uids is None:
            lent.uids = self._uids_lent = self._uids

    @property
    def _bases(self) -> list[str]:
        """Base names by position.  A warm open keeps them as the index's
        blob: a session that never touches a file never splits 100,000 names."""
        names = self._bases_list
        if names is None:
            src, self._names_src = self._names_src, None
            try:
                names = src.names() if src is not None else []
            except idxmod.IndexCorrupt:
                names = self._names_from_uidlist()
            self._bases_list = names
        return names

    @_bases.setter
    def _bases(self, names: list[str]) -> None:
        self._bases_list = names
        if self._names_src is not None:
            self._names_src.drop_names()
            self._names_src = None

    def _load_meta(self) -> tuple[array, array, array]:
        """Sizes, dates and MODSEQs by position, as of the index a warm open
        adopted: SELECT needs none of them, so they stay in that file until a
        command asks (`_wsize`, `_mtime`, `_modseq`).  Every change to the
        view's positions reads them first, so they always line up with it."""
        src, self._meta_src = self._meta_src, None
        if src is not None and self._wsize_a is None:
            try:
                self._wsize_a, self._mtime_a, self._modseq_a = src.meta()
            except idxmod.IndexCorrupt:
                # the file could not be read again: sizes and dates are
                # looked up afresh; every message counts as changed now
                n = src.count
                self._wsize_a = arrays.array("q", [-1]) * n
                self._mtime_a = arrays.array("d", [NO_TIME]) * n
                self._modseq_a = arrays.array("Q", [self._hms]) * n
                self._index_dirty = True
        assert self._wsize_a is not None and self._mtime_a is not None and self._modseq_a is not None
        return self._wsize_a, self._mtime_a, self._modseq_a

    _wsize = _meta_column("_wsize_a", 0, "Wire size by position (-1: not known yet).")
    _mtime = _meta_column("_mtime_a", 1, "Internal date by position (NO_TIME: not known yet).")
    _modseq = _meta_column("_modseq_a", 2, "MODSEQ by position.")

    @property
    def _infos(self) -> list[str]:
        """Info suffixes by position.  A warm open keeps the index's ids (one
        byte per message) and builds this list of 100,000 strings only when
        a command needs it: SELECT does not (see first_unseen_index)."""
        infos = self._infos_list
        if infos is None:
            if self._flags_src is not None:
                self._read_flags()
            ids, table = self._info_ids, self._info_table
            infos = self._infos_list = list(map(table.__getitem__, ids)) if ids is not None else []
            self._info_ids = None
        return infos

    @_infos.setter
    def _infos(self, infos: list[str]) -> None:
        if self._flags_src is not None:
            self._read_flags()  # (the new/ flags line up with the view before it changes)
        self._infos_list = infos
        self._info_ids = None

    @property
    def _innew(self) -> bytearray:
        """By position, 1 if the file is in new/.  Left in the index file by a
        warm open, as the info ids are (see _read_flags)."""
        if self._flags_src is not None:
            self._read_flags()
        return self._innew_a

    @_innew.setter
    def _innew(self, innew: bytearray) -> None:
        if self._flags_src is not None:
            self._read_flags()
        self._innew_a = innew

    def _read_flags(self) -> None:
        """The info ids and the new/ flags of the index a warm open adopted.
        SELECT needs neither: UNSEEN is in the index's header, as of these
        very columns (`first_unseen_index`).  An index found damaged only
        now fails the command, and every later one on this view, with
        UNAVAILABLE; it is deleted, so that the next open rebuilds it from
        the directories (it is only a cache)."""
        src = self._flags_src
        assert src is not None
        readable = src.fd >= 0  # (else the view was closed: nothing is wrong with the file)
        try:
            self._info_ids, self._innew_a = src.flag_columns()
        except idxmod.IndexCorrupt:
            if readable:
                try:
                    posix.unlink(idxmod.INDEX_NAME, dir_fd=self._f.fd)
                except OSError:
                    pass
            raise _index_unreadable() from None
        self._flags_src = None

    def _names_from_uidlist(self) -> list[str]:
        """Base names for the view's UIDs from dovecot-uidlist, when the
        index's names turn out damaged (a UID always names the same file)."""
        ul = self._f.uidlist
        with self._f.lock:
            if not ul.loaded:
                ul.load()
            else:
                ul.refresh()
        by_uid = dict(zip(ul.uids, ul.bases))
        self._f.expected = [None, None]  # names we could not find: rescan at sync
        return [by_uid.get(u, "") for u in self._uids]

    def _pos(self, uid: int) -> int:
        uids = self._uids_a  # (once per message of a FETCH: not through the property unless unread)
        if uids is None:
            uids = self._uids
        h = self._hint
        try:
            if uids[h] == uid:
                return h
            if uids[h + 1] == uid:  # FETCH walks the mailbox in order
                self._hint = h + 1
                return h + 1
        except IndexError:
            pass
        i = bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            self._hint = i
            return i
        return -1

    def _must_pos(self, uid: int) -> int:
        p = self._pos(uid)
        if p < 0:
            raise NoSuchMessage("No such message (UID %d)" % uid)
        return p

    def _filename(self, p: int) -> str:
        info = self._infos[p]
        return self._bases[p] + ":" + info if info else self._bases[p]

    def _dirfd(self, p: int) -> int:
        return self._f.new_fd if self._innew[p] else self._f.cur_fd

    def _require_rw(self) -> None:
        if self.readonly:
            raise ReadOnlyStore("Mailbox is read-only")

    def _lookup_all(self) -> dict[str, tuple[str, int]]:
        """One readdir of new/ and cur/: base -> (info, in_new)."""
        found: dict[str, tuple[str, int]] = {}
        for b, i in _split_names(_list_dir(self._f.new_fd)).items():
            found[b] = (i, 1)
        for b, i in _split_names(_list_dir(self._f.cur_fd)).items():
            found[b] = (i, 0)
        return found

    def _relocate(self) -> dict[str, tuple[str, int]]:
        """Find every message's current file name again (after ENOENT).  The
        UID list is not changed; changed flags are reported at the next sync."""
        found = self._lookup_all()
        codec = self._f.codec
        for p, b in enumerate(self._bases):
            e = found.get(b)
            if e is None:
                continue
            info, innew = e
            if info != self._infos[p] or innew != self._innew[p]:
                if codec.flags(info) != codec.flags(self._infos[p]):
                    self._pending_flags.add(self._uids[p])
                    self._hms += 1
                    self._modseq[p] = self._hms
                self._infos[p] = _intern(info)
                self._innew[p] = innew
                self._index_dirty = True
        self._f.expected = [None, None]  # something moved under us: rescan at sync
        return found

    def _open_file(self, p: int) -> int:
        try:
            return posix.open(self._filename(p), O_FILE, dir_fd=self._dirfd(p))
        except FileNotFoundError:
            pass
        except OSError as exc:
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
            if exc.errno == errno.ELOOP:
                raise NoSuchMessage("Message file is a symlink; not served") from None
            raise
        found = self._relocate()
        if self._bases[p] not in found:
            raise NoSuchMessage("Message was expunged (UID %d)" % self._uids[p])
        try:
            return posix.open(self._filename(p), O_FILE, dir_fd=self._dirfd(p))
        except FileNotFoundError:
            raise NoSuchMessage("Message was expunged (UID %d)" % self._uids[p]) from None
        except OSError as exc:
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
            if exc.errno == errno.ELOOP:
                raise NoSuchMessage("Message file is a symlink; not served") from None
            raise

    def _check_file(self, p: int, fd: int) -> int:
        """A file whose mtime differs from what we knew was replaced: forget
        cached data for it.  Returns the file's size."""
        st = posix.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            posix.close(fd)
            raise NoSuchMessage("Message file is not a regular file")
        self._note_mtime(p, st.st_mtime)
        return st.st_size

    def _note_mtime(self, p: int, mtime: float) -> None:
        old = self._mtime[p]
        if old != NO_TIME and old != mtime:
            uid = self._uids[p]
            self._wsize[p] = -1
            self._cache_drop((uid,))
        if old != mtime:
            self._mtime[p] = mtime
            self._index_dirty = True

    def build_ahead(self, uids: Sequence[int], builder: tuple[str, str, tuple[Any, ...]]) -> Any:
        """The value `builder` names (see prebuild) for each of `uids`
        (ascending), shared with a helper process.  Returns its handle
        (`take(uid)` in UID order, `close()`), or None when no helper can
        run (one core, it failed to start)."""
        from imapd.store.maildir.prebuild import helpers_to_use, start

        count = helpers_to_use()
        if not count:
            return None
        if any(map(int.__ge__, uids, uids[1:])):
            return None  # (results are matched up in ascending order)
        return start(uids, self._locate, builder, O_FILE, self._adopt_read, [self._f.cur_fd, self._f.new_fd], count)

    def _locate(self, uid: int) -> tuple[int, str] | None:
        p = self._pos(uid)
        return None if p < 0 else (self._dirfd(p), self._filename(p))

    def _adopt_read(self, uid: int, mtime: float, wire_size: int) -> bool:
        """What reading the file tells (as `read` learns it), for a file a
        helper read; False if the message is not in the view."""
        p = self._pos(uid)
        if p < 0:
            return False
        self._note_mtime(p, mtime)
        if self._wsize[p] != wire_size:
            self._wsize[p] = wire_size
            self._index_dirty = True
        return True

    # ====================================================== Mailbox API
    @property
    def uidvalidity(self) -> int:
        return self._uidvalidity

    @property
    def uidnext(self) -> int:
        n = self._f.uidlist.next_uid if self._f.uidlist.tail_known else 1
        n = max(n, self._max_seen + 1, self._virtual_next)
        return n

    @property
    def highestmodseq(self) -> int:
        return self._hms

    def uids(self) -> Sequence[int]:
        self._settle_lend()  # (a promise still open shares what it promised)
        self._uids_lent = self._uids  # (copied before it changes: _own_uids)
        return self._uids

    def uids_later(self) -> tuple[int, Callable[[], Sequence[int]]]:
        if self._uids_a is not None or type(self._uids_lent) is _Lend:
            return super().uids_later()
        lend = self._uids_lent = _Lend()

        def take() -> Sequence[int]:
            if lend.uids is None:  # (unchanged since: read them now)
                lend.uids = self._uids
                if self._uids_lent is lend:
                    self._uids_lent = lend.uids
            return lend.uids

        return self._uid_count(), take

    def _own_uids(self) -> None:
        """Before changing `_uids` in place: a copy of it if it was lent."""
        self._settle_lend()
        if self._uids is self._uids_lent:
            self._uids = self._uids[:]

    def modseq(self, uid: int) -> int:
        return self._modseq[self._must_pos(uid)]

    def flags(self, uid: int) -> frozenset[str]:
        return self._f.codec.flags(self._infos[self._must_pos(uid)])

    def is_recent(self, uid: int) -> bool:
        if self.readonly:
            return bool(self._peek_first_recent) and uid >= self._peek_first_recent
        for lo, hi in self._recent:
            if lo <= uid < hi:
                return True
        return False

    def recent_count(self) -> int:
        if self.readonly:
            first = self._peek_first_recent
            return len(self._uids) - bisect_left(self._uids, first) if first else 0
        if not self._recent:
            return 0  # (the usual warm SELECT: its UIDs stay unread)
        uids = self._uids
        return sum(bisect_left(uids, hi) - bisect_left(uids, lo) for lo, hi in self._recent)

    def first_unseen_index(self) -> int:
        src = self._flags_src
        if src is not None and src.first_unseen is not None:
            return src.first_unseen  # (the index's flags are unread, so unchanged since it was written)
        # few distinct info suffixes: decide per suffix, then find the first
        # position in C (compress/map), not with a Python loop per message
        flags = self._f.codec.flags
        if src is not None:
            self._read_flags()
            self._index_dirty = True  # (written by an imapd that did not keep the position there: once more)
        ids = self._info_ids
        if self._infos_list is None and type(ids) is bytearray:
            # still the index's one byte per message: one memchr per unseen suffix
            found = [ids.find(k) for k, info in enumerate(self._info_table) if "\\Seen" not in flags(info)]
            return min((p for p in found if p >= 0), default=-1)
        unseen = {i for i in set(self._infos) if "\\Seen" not in flags(i)}
        if not unseen:
            return -1
        from itertools import compress, count  # (here, not at start-up: loading it costs 0.1 ms)

        return next(compress(count(), map(unseen.__contains__, self._infos)), -1)

    def _run_of(self, uids: Sequence[int]) -> tuple[int, int] | None:
        """(lo, hi) if `uids` are exactly the view's messages lo..hi-1 (a
        FETCH 1:* or n:m), else None: the caller then looks up each UID."""
        n = len(uids)
        lo = self._pos(uids[0]) if n else -1
        if lo < 0 or lo + n > len(self._uids):
            return None
        view = self._uids
        if lo == 0 and n == len(view) and isinstance(uids, arrays.array):
            same = view == uids
        else:
            same = view[lo : lo + n].tolist() == (uids if isinstance(uids, list) else list(uids))
        return (lo, lo + n) if same else None

    def message_meta(self, uids: Iterable[int], size: bool, date: bool) -> Iterator[tuple | None]:
        flags = self._f.codec.flags
        infos, wsize, mtime, modseq = self._infos, self._wsize, self._mtime, self._modseq
        if not isinstance(uids, (list, arrays.array)):
            uids = list(uids)
        run = self._run_of(uids)
        if run is not None:
            lo, hi = run
            whole = lo == 0 and hi == len(self._uids)

            def cols(a: Any) -> Any:
                """a[lo:hi], without a copy when that is all of it (FETCH 1:*)"""
                return a if whole else a[lo:hi]

            if not (size and -1 in cols(wsize)) and not (date and NO_TIME in cols(mtime)):
                # a run of consecutive messages with everything known (FETCH 1:*):
                # straight from the arrays, no lookup per message, and no copy
                # of 100,000 entries (nor a list of 100,000 ints); the flags of
                # each distinct info suffix (a handful) looked up in C
                from itertools import repeat

                yield from zip(
                    map(_FlagsByInfo(flags).__getitem__, cols(infos)),
                    cols(wsize) if size else repeat(0),
                    cols(mtime) if date else repeat(0),
                    cols(modseq),
                )
                return
        pos = self._pos
        for u in uids:
            p = pos(u)
            if p < 0:
                yield None
                continue
            try:
                w = wsize[p] if size else 0
                if w < 0:
                    w = self.size(u)
                t = mtime[p] if date else 0.0
                if t == NO_TIME:
                    t = self.internal_date(u)
            except NoSuchMessage:
                yield None
                continue
            yield flags(infos[p]), w, t, modseq[p]

    def keywords(self) -> list[str]:
        kws = self._f.keywords.defined()
        if not any(k.lower() == FORWARDED.lower() for k in kws):
            kws = [FORWARDED] + kws
        return kws

    def can_create_keywords(self) -> bool:
        if self.readonly:
            return False
        return len(self._f.keywords.defined()) < 26

    def internal_date(self, uid: int) -> float:
        p = self._must_pos(uid)
        t = self._mtime[p]
        if t != NO_TIME:
            return t
        try:
            st = posix.stat(self._filename(p), dir_fd=self._dirfd(p), follow_symlinks=False)
        except FileNotFoundError:
            found = self._relocate()
            if self._bases[p] not in found:
                raise NoSuchMessage("Message was expunged (UID %d)" % uid) from None
            st = posix.stat(self._filename(p), dir_fd=self._dirfd(p), follow_symlinks=False)
        self._mtime[p] = st.st_mtime
        self._index_dirty = True
        return st.st_mtime

    def size(self, uid: int) -> int:
        p = self._must_pos(uid)
        w = self._wsize[p]
        if w >= 0:
            return w
        w = self._size_from_names(p)
        if w < 0:
            fd = self._open_file(p)
            try:
                self._check_file(p, fd)
                _, w = wire_size_of_fd(fd)
            finally:
                posix.close(fd)
            self._remember_ext_w(p, w)
        self._wsize[p] = w
        self._index_dirty = True
        return w

    def _size_from_names(self, p: int) -> int:
        base = self._bases[p]
        i = base.find(",W=")
        if i >= 0:
            j = i + 3
            k = j
            while k < len(base) and base[k].isdigit():
                k += 1
            if k > j:
                return int(base[j:k])
        ul = self._f.uidlist
        if ul.loaded:
            ri = ul.by_base().get(base)
            if ri is not None:
                v = ul.ext_value(ri, "W")
                if v and v.isdigit():
                    return int(v)
        return -1

    def _remember_ext_w(self, p: int, w: int) -> None:
        """Dovecot keeps W<size> in the uidlist record when the name lacks it;
        we set it in memory and it is written with the next rewrite."""
        ul = self._f.uidlist
        if ul.loaded:
            ri = ul.by_base().get(self._bases[p])
            if ri is not None and ul.ext_value(ri, "W") is None:
                ul.set_ext(ri, "W", str(w))

    def read(self, uid: int) -> bytes:
        data = self.read_up_to(uid, -1)
        assert data is not None
        return data

    def read_up_to(self, uid: int, limit: int) -> bytes | None:
        """One open: None if the file holds more than `limit` bytes (-1: no limit)."""
        p = self._must_pos(uid)
        fd = self._open_file(p)
        try:
            size = self._check_file(p, fd)
            if 0 <= limit < size:
                return None
            data = read_wire(fd, size)
        finally:
            posix.close(fd)
        wsize = self._wsize
        if wsize[p] != len(data):
            wsize[p] = len(data)
            self._index_dirty = True
        return data

    def read_many(self, uids: Iterable[int], limit: int) -> Iterator[bytes | None | NoSuchMessage]:
        """`read_up_to` of each of `uids` with what one read looks up (the
        columns, the directories, the open flags) taken once: for every body
        of 100,000 messages that was a tenth of the time.  A file that cannot
        be opened under its known name, or is not a regular file, goes the
        ordinary way (found again, or reported gone)."""
        bases, infos, innew, mtime, wsize = self._bases, self._infos, self._innew, self._mtime, self._wsize
        cur_fd, new_fd = self._f.cur_fd, self._f.new_fd
        pos, open_, fstat, close, is_reg = self._pos, posix.open, posix.fstat, posix.close, _stat.S_ISREG
        for uid in uids:
            p = pos(uid)
            st = None
            if p >= 0:
                info = infos[p]
                try:
                    fd = open_(bases[p] + ":" + info if info else bases[p], O_FILE, dir_fd=new_fd if innew[p] else cur_fd)
                except OSError:
                    fd = -1
                if fd >= 0:
                    try:
                        st = fstat(fd)
                        size = st.st_size
                        if not is_reg(st.st_mode):
                            st = None
                        elif not 0 <= limit < size:
                            data = read_wire(fd, size)
                    finally:
                        close(fd)
            if st is None:
                try:
                    yield self.read_up_to(uid, limit)
                except NoSuchMessage as e:
                    yield e
                continue
            if st.st_mtime != mtime[p]:
                self._note_mtime(p, st.st_mtime)  # (replaced, or its date not known yet)
            if 0 <= limit < size:
                yield None  # too large to hold: the caller streams it
                continue
            if wsize[p] != len(data):
                wsize[p] = len(data)
                self._index_dirty = True
            yield data

    def read_header(self, uid: int) -> bytes:
        p = self._must_pos(uid)
        fd = self._open_file(p)
        try:
            self._check_file(p, fd)
            raw = b""
            want = 8192
            while True:
                chunk = posix.pread(fd, want - len(raw), len(raw))
                raw += chunk
                # the wire form of a prefix is a prefix of the wire form
                wire = to_wire(raw)
                if wire.startswith(b"\r\n"):
                    return b"\r\n"
                i = wire.find(b"\r\n\r\n")
                if i >= 0:
                    return wire[: i + 4]
                if len(raw) < want:  # end of file: all header
                    return wire
                want *= 2
        finally:
            posix.close(fd)

    def open_stream(self, uid: int) -> BinaryIO:
        p = self._must_pos(uid)
        fd = self._open_file(p)
        try:
            self._check_file(p, fd)
        except BaseException:
            try:
                posix.close(fd)
            except OSError:
                pass
            raise
        w = self._wsize[p]
        import io

        from imapd.store.maildir.wirestream import CRLFReader

        return io.BufferedReader(CRLFReader(fd, w if w >= 0 else None), 65536)  # type: ignore[return-value]

    # ------------------------------------------ flags, expunge (changes.py)
    def store_flags(self, uids: Iterable[int], mode: str, flags: Iterable[str]) -> dict[int, frozenset[str]]:
        return _changes().store_flags(self, uids, mode, flags)

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        return _changes().expunge(self, uids)

    def remove(self, uids: Iterable[int]) -> list[int]:
        return _changes().remove(self, uids)

    # -------------------------------------------------------------- copy
    def copy_to(self, uids: Sequence[int], dest: str) -> CopyResult:
        return self._store._copy_messages(self, uids, dest)

    def _copy_sources(self, uids: Sequence[int]) -> list[tuple[int, int]]:
        out = []
        for u in uids:
            p = self._pos(u)
            if p >= 0:
                out.append((u, p))
        return out

    # ============================================================== sync
    def sync(self) -> SyncChanges:
        f = self._f
        if f.closed:
            return SyncChanges()
        changes = SyncChanges()
        # Records this process read from the uidlist since the view took it in
        # stand for messages others added, maybe with UIDs below those of our
        # own additions: then our additions wait for the listing, which shows
        # all of them in UID order (a UID shown first would hide lower ones).
        foreign = f.uidlist.changes != self._ul_changes
        w = self._watch
        wdirty = None
        if w is not None and w.ok:
            w.drain()
            if w.ok:
                wdirty = w.take_dirty()
                # a directory with events others caused: the mtime rules
                # below decide; the watch vouches again once it is listed
                if wdirty[0]:
                    self._wtrust[0] = False
                if wdirty[1]:
                    self._wtrust[1] = False
        self._apply_log(changes, take_adds=not foreign)
        need_full = self._epoch != f.epoch or foreign
        list_cur = list_new = need_full
        if not need_full:
            st = f.dir_state()
            list_cur = f.expected[0] is None or st[0] != f.expected[0]
            list_new = f.expected[1] is None or st[1] != f.expected[1]
            if f.from_own_op and time.monotonic() - f.first_own_op > VERIFY_AFTER:
                list_cur = list_new = True  # verify what our own changes left
            if wdirty is not None:
                # inotify watched the directory since our last listing of it
                # and saw nothing but our own renames: no readdir needed (the
                # view already holds what our own operations did)
                if self._wtrust[0] and not wdirty[0]:
                    list_cur = False
                if self._wtrust[1] and not wdirty[1]:
                    list_new = False
            if not (list_cur or list_new):
                ust = f.uidlist.stat()
                if ust is not None and f.uidlist.ident is not None and (
                    (ust.st_dev, ust.st_ino) != f.uidlist.ident or ust.st_size != f.uidlist.offset
                ):
                    list_cur = list_new = True  # someone else numbered something
        if list_new and not list_cur and not need_full and self._sync_new_only(changes):
            if wdirty is not None and self._watch is w and w.ok:
                self._wtrust[1] = True  # new/ was listed after the drain above
        elif list_cur or list_new or need_full:
            lc, ln = list_cur or need_full, list_new or need_full
            self._full_sync(list_cur=lc, list_new=ln, changes=changes)
            if wdirty is not None and self._watch is w and w.ok:
                # listed after the drain above: later changes show up as events
                self._wtrust[0] = self._wtrust[0] or lc
                self._wtrust[1] = self._wtrust[1] or ln
        self._merge_pending(changes)
        if changes.added and not self.readonly:
            self._claim_recent(changes.added, initial=False)
        f.trim_log()
        return changes

    def _merge_pending(self, changes: SyncChanges) -> None:
        gone = set(changes.expunged)
        present_flags = {u for u in self._pending_flags if self._pos(u) >= 0 and u not in gone}
        if present_flags:
            s = set(changes.flags_changed) | present_flags
            s -= set(changes.added)
            changes.flags_changed = sorted(s)
        self._pending_flags.clear()

    def _apply_log(self, changes: SyncChanges, take_adds: bool = True) -> None:
        f = self._f
        start = self._log_pos - f.log_base
        if start < 0:
            start = 0
        events = f.log[start:]
        self._log_pos = f.log_base + len(f.log)
        if not events:
            return
        add_uids: list[int] = []
        add_rows: list[tuple] = []
        gone: set[int] = set()
        for ev in events:
            kind = ev[0]
            if kind == "add":
                _, uid, base, info, innew, wsize, mtime = ev
                if take_adds and uid > self._max_seen and self._pos(uid) < 0:
                    add_uids.append(uid)
                    add_rows.append((uid, base, info, innew, wsize, mtime))
            elif kind == "expunge":
                gone.add(ev[1])
            elif kind in ("flags", "move"):
                uid, info = ev[1], ev[2]
                src = ev[3] if kind == "flags" else None
                p = self._pos(uid)
                if p >= 0 and self._infos[p] != info:
                    if src != id(self) and kind == "flags":
                        if self._f.codec.flags(self._infos[p]) != self._f.codec.flags(info):
                            self._pending_flags.add(uid)
                            self._hms += 1
                            self._modseq[p] = self._hms
                    self._infos[p] = _intern(info)
                    self._innew[p] = 0
                    self._index_dirty = True
        if gone:
            self._drop(gone, changes)
        if add_rows:
            add_rows.sort()
            self._own_uids()
            self._hms += 1
            for uid, base, info, innew, wsize, mtime in add_rows:
                if uid <= self._max_seen:
                    continue
                self._uids.append(uid)
                self._bases.append(base)
                self._infos.append(_intern(info))
                self._innew.append(innew)
                self._wsize.append(wsize)
                self._mtime.append(mtime)
                self._modseq.append(self._hms)
                self._max_seen = uid
                changes.added.append(uid)
            self._index_dirty = True
            self._synced_dirs = None  # own op: not a verified snapshot
            ul = self._f.uidlist
            if ul.ident is not None:
                st = ul.stat()
                if st is not None and (st.st_dev, st.st_ino) == ul.ident and st.st_size == ul.offset:
                    self._synced_ul = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _drop(self, gone: set[int], changes: SyncChanges) -> None:
        mask = [u not in gone for u in self._uids]
        if all(mask):
            return
        from itertools import compress

        removed = sorted(u for u, k in zip(self._uids, mask) if not k)
        self._uids = arrays.array("I", compress(self._uids, mask))
        self._bases = list(compress(self._bases, mask))
        self._infos = list(compress(self._infos, mask))
        self._innew = bytearray(compress(self._innew, mask))
        self._wsize = arrays.array("q", compress(self._wsize, mask))
        self._mtime = arrays.array("d", compress(self._mtime, mask))
        self._modseq = arrays.array("Q", compress(self._modseq, mask))
        self._hint = 0
        changes.expunged = sorted(set(changes.expunged) | set(removed))
        self._pending_flags -= gone
        self._index_dirty = True
        self._synced_dirs = None

    # Bringing the view in line with the directories (listing them, numbering
    # new files, rebuilding the arrays) lives in resync.py, loaded when first
    # needed: a warm open of an unchanged mailbox never runs it.
    def _sync_new_only(self, changes: SyncChanges) -> bool:
        return _resync()._sync_new_only(self, changes)

    def _full_sync(
        self,
        list_cur: bool = True,
        list_new: bool = True,
        changes: SyncChanges | None = None,
        seed: idxmod.IndexData | None = None,
        initial: bool = False,
    ) -> None:
        return _resync()._full_sync(self, list_cur, list_new, changes, seed, initial)

    def _claim_recent(self, uids: Sequence[int], initial: bool) -> None:
        """Take \\Recent for `uids` (ascending) that no session took yet.  The
        shared "first recent UID" only grows, so what we get is always the
        tail [first, next) of the UID space: kept as ranges, not a set."""
        if not len(uids) or not self._f.writable:
            return
        f = self._f
        if f.peek_first_recent() >= max(self.uidnext, uids[-1] + 1):
            # Claimed already, as on every warm open with no new mail: the
            # state file is replaced atomically, so reading it needs no lock,
            # and the "first recent UID" only grows.  (UIDs a tail refresh
            # would add are claimed when a sync adds them to the view.)
            return
        with f.lock:
            if not f.uidlist.tail_known:
                f.uidlist.refresh_tail()
            nxt = max(self.uidnext, uids[-1] + 1)
            first = f.claim_recent_range(nxt)
        lo = max(first, uids[0])
        if lo < nxt:
            if self._recent and self._recent[-1][1] >= lo:
                self._recent[-1] = (self._recent[-1][0], nxt)
            else:
                self._recent.append((lo, nxt))

    # ============================================================ status
    def status(self, items: Iterable[str] | None = None) -> MailboxStatus:
        want = None if items is None else {x.upper() for x in items}
        codec = self._f.codec
        counts: dict[str, int] = {}
        for info in self._infos:
            counts[info] = counts.get(info, 0) + 1
        unseen = sum(c for info, c in counts.items() if "\\Seen" not in codec.flags(info))
        size = 0
        if want is None or "SIZE" in want:
            for u in self._uids:
                size += self.size(u)
        return MailboxStatus(
            messages=len(self._uids),
            recent=self.recent_count(),
            uidnext=self.uidnext,
            uidvalidity=self._uidvalidity,
            unseen=unseen,
            size=size,
            highestmodseq=self._hms,
        )

    # ============================================================= cache
    def _column(self, key: str) -> CacheColumn:
        col = self._columns.get(key)
        if col is None:
            # imported on first use: SELECT, STORE and flag FETCHes cache nothing
            from imapd.store.maildir.cache import CacheColumn

            persistent = self._store.use_index and self._key_gets_file(key)
            col = self._columns[key] = CacheColumn(self._f.fd, key, self._uidvalidity, persistent)
            for u in self._cache_dropped:
                col.drop(u)
        return col

    def _key_gets_file(self, key: str) -> bool:
        """Keys name files: only plain names, and at most MAX_CLIENT_KEYS keys
        made from what clients ask (header field sets, searched fields) per
        mailbox, so no client can litter the Maildir with cache files."""
        from imapd.store.maildir.cache import CLIENT_KEY_PREFIXES, MAX_CLIENT_KEYS, PREFIX

        if not (0 < len(key) <= 120 and key[0] in _KEY_FIRST and _KEY_CHARS.issuperset(key)):
            return False
        if not key.startswith(CLIENT_KEY_PREFIXES):
            return True
        if self._client_keys is None:
            try:
                names = posix.listdir(self._f.fd)
            except OSError:
                names = []
            self._client_keys = {n for n in names if n.startswith(tuple(PREFIX + p for p in CLIENT_KEY_PREFIXES))}
        name = PREFIX + key
        if name in self._client_keys:
            return True
        if len(self._client_keys) >= MAX_CLIENT_KEYS:
            return False
        self._client_keys.add(name)
        return True

    def _cache_drop(self, uids: Iterable[int]) -> None:
        """Forget cached values of these UIDs (file replaced, expunged)."""
        for u in uids:
            self._cache_dropped.add(u)
            for col in self._columns.values():
                col.drop(u)

    def cache_get(self, uid: int, key: str) -> object | None:
        p = self._pos(uid)
        if p < 0:
            return None
        return self._column(key).get(uid, self._mtime[p])

    def cache_get_many(self, uids: Sequence[int], key: str) -> Iterator[object | None]:
        pos, mtime = self._pos, self._mtime
        run = self._run_of(uids)
        if run is not None:
            # consecutive messages of the view (FETCH 1:*): their dates are a
            # slice of the array, not a lookup per message
            lo, hi = run
            whole = lo == 0 and hi == len(self._uids)
            return self._column(key).get_many(uids, mtime if whole else mtime[lo:hi])
        gone = float("nan")  # matches no recorded time: a vanished message gets no value
        times = (mtime[p] if p >= 0 else gone for p in map(pos, uids))
        return self._column(key).get_many(uids, times)

    def cache_put(self, uid: int, key: str, value: object, marshalled: bool = False) -> None:
        p = self._pos(uid)
        if p >= 0:
            self._cache_put(uid, self._mtime[p], key, value, marshalled)

    def cache_put_row(self, uid: int, row: Iterable[tuple[str, object, bool]]) -> None:
        p = self._pos(uid)
        if p >= 0:
            mtime = self._mtime[p]  # (looked up once for the row)
            for key, value, marshalled in row:
                self._cache_put(uid, mtime, key, value, marshalled)

    def _cache_put(self, uid: int, mtime: float, key: str, value: object, marshalled: bool) -> None:
        col = self._columns.get(key) or self._column(key)
        try:
            full = col.put(uid, mtime, value, marshalled)
        except ValueError:
            return  # not marshal-able: not cached
        self._cache_dropped.discard(uid)
        if full and self._f.writable:
            try:
                col.flush(self._uids)  # bounded memory during a FETCH 1:*
            except OSError:
                pass

    def cache_find(self, key: str, needle: bytes) -> tuple[set[int], list[int]] | None:
        """Messages whose cached raw value for `key` contains `needle`: (UIDs
        that match, UIDs whose value is not cached as of their file and must
        be checked one by one); None if the key has no cache file at all."""
        col = self._column(key)
        hits = col.find_raw(needle)
        if hits is None:
            return None
        mtime = self._mtime
        if not (col.tail or col.pending or col.dropped) and col.uids == self._uids and col.mtimes == mtime:
            return hits, []  # the usual warm case: the cache covers exactly this view
        entry_time = col.main_entry_time
        unsure = []
        for p, u in enumerate(self._uids):
            t = entry_time(u)
            if t is None or (t != mtime[p] and t != NO_TIME and mtime[p] != NO_TIME):
                unsure.append(u)
        return hits, unsure

    # =========================================================== closing
    def checkpoint(self) -> None:
        """Write the index (and cache) if they changed.  Cheap to call often."""
        if self._closed or not self._f.writable or not self._store.use_index:
            return
        f = self._f
        try:
            if self._index_dirty:
                d = idxmod.IndexData(
                    uidvalidity=self._uidvalidity,
                    highestmodseq=self._hms,
                    uidlist_ident=self._synced_ul,
                    ul_spare=self._ul_spare,
                    dirs=self._synced_dirs,
                    uids=self._uids,
                    bases=self._bases,
                    infos=self._infos,
                    innew=self._innew,
                    wsize=self._wsize,
                    mtime=self._mtime,
                    modseq=self._modseq,
                    first_unseen=self.first_unseen_index(),
                )
                idxmod.save_index(f.fd, d)
                self._index_dirty = False
            for col in self._columns.values():
                if col.pending and not self._old_cache_gone:
                    self._old_cache_gone = True
                    try:  # the single-file cache of imapd before 0.2: superseded
                        posix.unlink(idxmod.OLD_CACHE_NAME, dir_fd=f.fd)
                    except OSError:
                        pass
                col.flush(self._uids, final=True)
        except (OSError, StoreError):
            # only a cache: never fail the session for it (StoreError: the
            # columns of a damaged index the view had not read yet)
            pass

    def close(self) -> None:
        if self._closed:
            return
        self.checkpoint()
        self._closed = True
        for src in (self._names_src, self._meta_src, self._uids_src, self._flags_src):
            if src is not None:
                src.close()
        self._names_src = self._meta_src = None
        for col in self._columns.values():
            col.close()
        self._columns = {}
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._f.boxes.discard(self)
        self._store._release_folder(self._f)

    # ============================================================= watch
    def watch_fds(self) -> list[int]:
        if self._watch is None:
            if not self._store.use_inotify:
                return []
            from imapd.store.maildir.watch import Watch

            self._watch = Watch.create(
                [
                    self._f.cur_fd,
                    self._f.new_fd,
                    self._f.fd,
                ]
            )
            if self._watch is None:
                return []
            # armed now: a directory whose mtime is still the one the view
            # was synced to has not changed since, and any change from here
            # on is an event -- trusted without listing 100,000 entries again.
            # Not after own changes no scan has verified yet: their mtime may
            # hide someone else's change in the same tick, from before the
            # watch (the verifying scan lists it, and the watch vouches after)
            f = self._f
            if self._epoch == f.epoch and not f.from_own_op:
                st = f.dir_state()
                self._wtrust = [f.expected[k] is not None and f.expected[k] == st[k] for k in (0, 1)]
        return [self._watch.fd]

    def drain_watch(self) -> bool:
        """Consume pending inotify events; True if there were any (then call
        sync()).  Safe to call when watch_fds() returned []."""
        if self._watch is None:
            return False
        return self._watch.drain()
