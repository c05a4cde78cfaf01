"""imapd's own per-mailbox files beside dovecot-uidlist.  All are caches or
hints: delete any of them and nothing is lost but speed (and \\Recent state).

* `imapd.index` — small per-message data as parallel arrays (UID, base name,
  info suffix, wire size, internal date, MODSEQ) plus HIGHESTMODSEQ and the
  identity of the uidlist and of cur/ and new/ when the snapshot was taken.  A
  warm SELECT whose uidlist and directories are unchanged needs nothing else:
  no uidlist parse, no readdir, no stat per message.  One `marshal` blob of a
  few large objects (bytes, one joined string) loads in milliseconds.
* `imapd.cache-<key>` — big derived values (ENVELOPE, BODYSTRUCTURE, ...) per
  UID, one file per key, read only when a command asks for that key (see
  cache.py), so a SELECT that needs flags never reads them.
* `imapd.state` — the "first recent UID": the only state that must be
  changed atomically between sessions (under the uidlist lock).

Files are written to a unique temporary name and renamed into place.
"""

from __future__ import annotations

import marshal
import posix
import sys
from imapd import arrays
from imapd.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from array import array
    from typing import Iterable, Iterator

INDEX_NAME = "imapd.index"
OLD_CACHE_NAME = "imapd.cache"  # before the per-key files of cache.py
STATE_NAME = "imapd.state"
_MAGIC = "imapd-index"
_VERSION = 3


class IndexCorrupt(Exception):
    """The index file turned out to be damaged after it was adopted."""


class IndexData(Record):
    __slots__ = ('uidvalidity', 'highestmodseq', 'uidlist_ident', 'ul_spare', 'dirs', 'uids', 'bases', 'infos', 'info_ids', 'info_table', 'innew', 'wsize', 'mtime', 'modseq', 'fd', 'names_at', 'meta_at', 'uids_at', 'flags_at', 'uid_ends', 'count', 'first_unseen')
    _defaults = {'uidvalidity': 0, 'highestmodseq': 1, 'uidlist_ident': None, 'ul_spare': -1, 'dirs': None, 'uids': lambda: arrays.array("I"), 'bases': list, 'infos': list, 'info_ids': None, 'info_table': list, 'innew': bytearray, 'wsize': lambda: arrays.array("q"), 'mtime': lambda: arrays.array("d"), 'modseq': lambda: arrays.array("Q"), 'fd': -1, 'names_at': None, 'meta_at': None, 'uids_at': None, 'flags_at': None, 'uid_ends': (), 'count': 0, 'first_unseen': None}
    uidvalidity: int
    highestmodseq: int
    uidlist_ident: tuple | None   # (dev, ino, size, mtime_ns)
    ul_spare: int                 # records of that uidlist with no file (-1: unknown)
    dirs: tuple | None            # (cur mtime_ns, new mtime_ns) if trusted
    uids: array | None            # None: still in the file (see uid_array)
    bases: list | None            # None: still the "name\\n" blob below
    infos: list | None            # None: still `info_ids` into `info_table` (see info_list)
    info_ids: array | bytearray | None  # per message, the position of its info suffix in info_table
    info_table: list              # the distinct info suffixes (interned)
    innew: bytearray | None       # None, and info_ids too: still in the file (see flag_columns)
    wsize: array | None           # None: still in the file (see meta)
    mtime: array | None
    modseq: array | None
    fd: int                       # the index file, open until UIDs, names and meta are read
    names_at: tuple | None        # (offset, length, count) of the names in it
    meta_at: tuple | None         # (offset, count) of the sizes, dates and MODSEQs in it
    uids_at: tuple | None         # (offset, count) of the UIDs in it
    flags_at: tuple | None        # (offset, count, typecode) of the info ids and new/ flags in it
    uid_ends: tuple               # (first UID, last UID), () if none: read with the header
    count: int                    # messages in the file (the arrays above may grow)
    first_unseen: int | None      # position of the first message without \Seen, -1 if none;
                                  # None if not known (its writer did not say)

    def info_list(self) -> list:
        """The info suffix of every message, as a list (built on first use:
        100,000 list entries cost milliseconds a SELECT need not pay)."""
        if self.infos is None:
            ids, table = self.flag_columns()[0], self.info_table
            self.infos = list(map(table.__getitem__, ids)) if ids is not None else []
            self.info_ids = None
        return self.infos

    def flag_columns(self) -> tuple[array | bytearray | None, bytearray]:
        """The info ids (one byte per message, as a rule; None once
        `info_list` has made them a list) and the new/ flags, read on first
        use: a SELECT answers UNSEEN from the header (`first_unseen`) and
        needs neither (200 KB and fifty page faults for 100,000 messages).
        Every id must name an entry of the table, or IndexCorrupt."""
        if self.innew is None:
            where, self.flags_at = self.flags_at, None
            idtype = where[2] if where is not None else "B"
            ids, innew = self._read_columns(where and where[:2], idtype + "B", "the flags")
            if type(ids) is bytearray:  # every id names an entry: nothing is left once they are deleted
                bad = bool(ids.translate(None, bytes(range(len(self.info_table)))))
            else:
                bad = bool(ids) and max(ids) >= len(self.info_table)
            if bad:
                raise IndexCorrupt("imapd.index: a flag id names no entry of the table")
            self.info_ids, self.innew = ids, innew
        return self.info_ids, self.innew

    def names(self) -> list:
        """The base names, read on first use: a SELECT that opens no message
        file never reads (or splits) 100,000 names."""
        if self.bases is None:
            names: list[str] = []
            where, self.names_at = self.names_at, None
            if self.fd >= 0 and where is not None:
                at, length, n = where
                try:
                    names = read_names(self.fd, at, length)
                except OSError:
                    names = []
                if len(names) != n:
                    self._release()
                    raise IndexCorrupt("imapd.index: the names segment does not match")
            self._release()
            self.bases = names
        return self.bases

    def meta(self) -> tuple[array, array, array]:
        """Sizes, dates and MODSEQs, read on first use: SELECT needs none of
        them (2.4 MB for 100,000 messages).  They come from the file this
        index was loaded from (its descriptor stays open until then), never
        from one that has replaced it since."""
        if self.wsize is None or self.mtime is None or self.modseq is None:
            where, self.meta_at = self.meta_at, None
            self.wsize, self.mtime, self.modseq = self._read_columns(where, "qdQ", "the sizes, dates and MODSEQs")
        return self.wsize, self.mtime, self.modseq

    def uid_array(self) -> array:
        """The UIDs, read on first use: a SELECT answers from the count and
        the first and last UID (`uid_ends`), and a session that names no
        message never reads the 400 KB of 100,000."""
        if self.uids is None:
            where, self.uids_at = self.uids_at, None
            self.uids, = self._read_columns(where, "I", "the UIDs")
        return self.uids

    def _read_columns(self, where: tuple | None, typecodes: str, what: str) -> list:
        """The columns at `where` (offset, count), one per typecode, from the
        file this index was loaded from; the file is closed once nothing
        more is to be read from it (the caller has cleared its `*_at`).  A
        column of bytes ("B") is a bytearray, which checks and searches in
        place (no copy as bytes); the others are arrays."""
        if where is None or self.fd < 0:
            raise IndexCorrupt(f"imapd.index: {what} are no longer readable")
        at, n = where
        cols = [bytearray(n) if t == "B" else _zeros(t, n) for t in typecodes]
        try:
            ok = _read_into(self.fd, cols, at)
        except OSError:
            ok = False
        self._release()
        if not ok:
            raise IndexCorrupt(f"imapd.index: {what} cannot be read")
        return cols

    def drop_names(self) -> None:
        """The names are not needed (the view has its own): release them."""
        self.names_at = None
        self._release()

    def _release(self) -> None:
        """Close the file once nothing more is to be read from it."""
        if self.names_at is None and self.meta_at is None and self.uids_at is None and self.flags_at is None:
            self.close()

    def close(self) -> None:
        """Close the file; what was not read yet can no longer be."""
        self.names_at = self.meta_at = self.uids_at = self.flags_at = None
        if self.fd >= 0:
            try:
                posix.close(self.fd)
            except OSError:
                pass
            self.fd = -1


def read_all(fd: int) -> bytes:
    """Everything left to read on `fd` (small control files: uidlist, keywords...).
    (64 KB at a time: a 1 MB read buffer is a fresh mapping of its own, made,
    shrunk and unmapped again for a file of 22 bytes.)"""
    parts = []
    while True:
        chunk = posix.read(fd, 65536)
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def read_file(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return read_all(fd)
    except OSError:
        return None
    finally:
        posix.close(fd)


def write_atomic(dir_fd: int, name: str, data: bytes | Iterable[bytes], fsync: bool = False) -> None:
    """Write `name` (bytes, or chunks produced one at a time) via a unique
    temporary file and rename()."""
    tmp = "%s.tmp.%d" % (name, posix.getpid())
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        for chunk in [data] if isinstance(data, bytes) else data:
            view = memoryview(chunk)
            while view:
                n = posix.write(fd, view)
                view = view[n:]
        if fsync:
            posix.fsync(fd)
    except BaseException:
        posix.close(fd)
        try:
            posix.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    posix.close(fd)
    posix.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


_SEGMENTS = ("uids", "bases", "infoids", "innew", "wsize", "mtime", "modseq")


def _open_ro(dir_fd: int, name: str) -> int | None:
    try:
        return posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None


_ITEMSIZE = {"B": 1, "H": 2, "I": 4}  # (the info ids' typecodes: array.itemsize without an array)


def _zeros(typecode: str, n: int) -> array:
    return arrays.array(typecode, [0]) * n


def _read_into(fd: int, buffers: list, offset: int) -> bool:
    """Fill `buffers` (arrays, bytearrays) from `offset`, straight from the
    file with no intermediate bytes; False if the file is shorter."""
    want = sum(memoryview(b).nbytes for b in buffers)
    if hasattr(posix, "preadv"):
        return posix.preadv(fd, buffers, offset) == want
    raw = posix.pread(fd, want, offset)
    if len(raw) != want:
        return False
    at = 0
    for b in buffers:
        m = memoryview(b).cast("B")
        m[:] = raw[at : at + len(m)]
        at += len(m)
    return True


def split_names(blob: bytes) -> list[str]:
    """The base names of a "name\n"-joined segment."""
    if not blob:
        return []
    names = blob.decode("utf-8", "surrogateescape").split("\n")
    names.pop()
    return names


NAMES_CHUNK = 1 << 20


def read_names(fd: int, at: int, length: int) -> list[str]:
    """`split_names` of the `length` bytes at `at`, read a megabyte at a time:
    the 100,000 names of a large mailbox never sit in memory three times
    over (the segment, its decoded text, the list), which made a 12 MB
    spike in every session's peak.  [] if the file is shorter."""
    names: list[str] = []
    carry = b""
    pos, end = at, at + length
    while pos < end:
        chunk = posix.pread(fd, min(NAMES_CHUNK, end - pos), pos)
        if not chunk:
            return []
        pos += len(chunk)
        cut = chunk.rfind(b"\n") + 1
        if not cut:  # no whole name in it yet
            carry += chunk
            continue
        names += split_names(carry + chunk[:cut])
        carry = chunk[cut:]
    # (an unterminated last piece is dropped, as split_names drops it)
    return names


def load_index(dir_fd: int, names: bool = True) -> IndexData | None:
    """The index, or None if missing, foreign or corrupt (then it is rebuilt).

    Layout: one line "imapd-index <version> <byteorder> <header length>",
    a marshal'd header (segment lengths, the table of distinct info
    suffixes), then the raw segments.  They load with no per-message Python
    work, read straight into their arrays: the UIDs stay in the file until a
    command names a message (`IndexData.uid_array`; the first and the last
    are read now), base names until someone needs a file name
    (`IndexData.names`), info suffixes (small integers into the table) and
    new/ flags until someone needs a message's flags (`flag_columns`,
    `info_list`: the header holds the first unseen position), and sizes,
    dates and MODSEQs until first asked for (`IndexData.meta`).  A warm
    SELECT of 100,000 messages reads the header and two UIDs.

    With `names` (the default) the result holds the file open until the
    lazy parts are read; a caller that may not read them calls `close()`.
    Without, everything is read now and the file is closed."""
    fd = _open_ro(dir_fd, INDEX_NAME)
    if fd is None:
        return None
    try:
        head = posix.pread(fd, 128, 0)
        nl = head.find(b"\n")
        parts = head[:nl].decode("ascii", "replace").split(" ")
        if len(parts) != 4 or parts[0] != _MAGIC or parts[1] != str(_VERSION) or parts[2] != sys.byteorder:
            return None
        hlen = int(parts[3])
        pos = nl + 1
        hdr = marshal.loads(posix.pread(fd, hlen, pos))
        pos += hlen
        n = hdr["count"]
        lens = hdr["segments"]
        table = hdr["infos"]
        if not isinstance(table, list) or not all(type(x) is str for x in table):
            return None
        if len(lens) != len(_SEGMENTS):
            return None
        names_at = pos + lens[0]
        rest_at = names_at + lens[1]
        d = IndexData(
            uidvalidity=hdr["uidvalidity"],
            highestmodseq=hdr["highestmodseq"],
            uidlist_ident=hdr["uidlist"],
            ul_spare=hdr.get("spare", -1),
            dirs=hdr["dirs"],
            count=n,
            uids=None,  # read on demand: IndexData.uid_array()
            bases=None,  # read on demand: IndexData.names()
            wsize=None,  # these three: IndexData.meta()
            mtime=None,
            modseq=None,
        )
        # one byte per message (a handful of distinct suffixes, the rule)
        idtype = hdr["idtype"]
        if [lens[0]] + lens[2:] != [4 * n, _ITEMSIZE[idtype] * n, n, 8 * n, 8 * n, 8 * n]:
            return None
        meta_at = rest_at + lens[2] + lens[3]
        if posix.fstat(fd).st_size < meta_at + 24 * n:
            return None  # truncated: found now, not when a command needs the sizes
        unseen = hdr.get("unseen")
        if type(unseen) is int and -1 <= unseen < n:
            d.first_unseen = unseen
        # of the UIDs, the first and the last
        if n:
            first, last = posix.pread(fd, 4, pos), posix.pread(fd, 4, pos + 4 * (n - 1))
            if len(first) != 4 or len(last) != 4:
                return None
            d.uid_ends = (int.from_bytes(first, sys.byteorder), int.from_bytes(last, sys.byteorder))
        intern = sys.intern
        d.info_table = [intern(x) for x in table]
        d.infos = d.info_ids = d.innew = None  # read on demand: IndexData.flag_columns(), info_list()
        # (UIDs are not checked for order: only save_index writes this file,
        # atomically, from a sorted view; the check cost 5 ms per SELECT)
        # keep the file as it is now (it may be replaced) for what is read later
        d.fd, fd = fd, -1
        d.names_at = (names_at, lens[1], n)
        d.meta_at = (meta_at, n)
        d.uids_at = (pos, n)
        d.flags_at = (rest_at, n, idtype)
        if not names:
            d.names_at = None
            d.flag_columns()
            d.uid_array()
            d.meta()  # (closes the file)
        return d
    except (ValueError, TypeError, EOFError, KeyError, IndexError, AttributeError, OSError, OverflowError,
            IndexCorrupt):
        return None
    finally:
        if fd >= 0:
            posix.close(fd)


def _names_chunks(names: list[str]) -> Iterator[bytes]:
    """The names segment, 8,192 names at a time (made while being written)."""
    for k in range(0, len(names), 8192):
        yield ("\n".join(names[k : k + 8192]) + "\n").encode("utf-8", "surrogateescape")


def _names_length(names: list[str]) -> int:
    """The byte length of the names segment, without making it."""
    if all(map(str.isascii, names)):
        return sum(map(len, names)) + len(names)
    return sum(len(x) for x in _names_chunks(names))


def save_index(dir_fd: int, d: IndexData) -> None:
    """Write the index segment by segment: no segment is copied into bytes
    first, and the names are encoded as they are written (for 100,000
    messages they would be 9 MB at once, at the end of a session)."""
    n = len(d.uids)
    table = list(dict.fromkeys(d.infos))
    number = {info: k for k, info in enumerate(table)}
    idtype = "B" if len(table) <= 256 else ("H" if len(table) <= 65536 else "I")
    ids = arrays.array(idtype, map(number.__getitem__, d.infos))
    names = d.names()
    columns = [d.uids, None, ids, d.innew, d.wsize, d.mtime, d.modseq]
    lengths = [_names_length(names) if c is None else memoryview(c).nbytes for c in columns]
    hdr = marshal.dumps(
        {
            "uidvalidity": d.uidvalidity,
            "highestmodseq": d.highestmodseq,
            "uidlist": d.uidlist_ident,
            "spare": d.ul_spare,
            "dirs": d.dirs,
            "count": n,
            "infos": table,
            "idtype": idtype,
            "segments": lengths,
            **({} if d.first_unseen is None else {"unseen": d.first_unseen}),
        }
    )
    first = ("%s %d %s %d\n" % (_MAGIC, _VERSION, sys.byteorder, len(hdr))).encode("ascii")

    def chunks() -> Iterator[bytes | memoryview]:
        yield first
        yield hdr
        for c in columns:
            if c is None:
                yield from _names_chunks(names)
            else:
                yield memoryview(c).cast("B")

    write_atomic(dir_fd, INDEX_NAME, chunks())


def read_state(dir_fd: int) -> dict[str, int]:
    """`imapd.state`: "1 V<uidvalidity> R<first recent uid>"."""
    raw = read_file(dir_fd, STATE_NAME)
    out: dict[str, int] = {}
    if not raw:
        return out
    parts = raw.decode("ascii", "replace").split()
    if not parts or parts[0] != "1":
        return out
    for p in parts[1:]:
        if len(p) > 1 and p[1:].isdigit():
            out[p[0]] = int(p[1:])
    return out


def write_state(dir_fd: int, state: dict[str, int]) -> None:
    text = "1 " + " ".join("%s%d" % (k, v) for k, v in sorted(state.items())) + "\n"
    write_atomic(dir_fd, STATE_NAME, text.encode("ascii"))
