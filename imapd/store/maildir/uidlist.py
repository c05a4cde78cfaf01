"""`dovecot-uidlist`: the UID <-> base-name map that Dovecot, and now imapd, keep.

Format (version 3, what Dovecot >= 1.1 writes)::

    3 V<uidvalidity> N<nextuid> G<32 hex mailbox guid>[ <other header keys>]
    <uid>[ <K><value>...] :<base name>

Version 1 (Dovecot 1.0, Courier's `courierimapuiddb`) is `1 <uidvalidity>
<nextuid>` then `<uid> <name>` lines; it is read, and replaced by version 3 on
the next write, as Dovecot does.

Readers take no lock.  Writers hold `dovecot-uidlist.lock` (see dotlock.py),
re-read what others appended since their last read, and then either append
records at the end (the common case: it costs one write, whatever the size of
the mailbox) or write the whole list to `dovecot-uidlist.tmp` and rename it
over.  The effective next UID is max(header N, last record + 1): Dovecot does
not rewrite the header when it appends, and neither do we.

Records are kept as parallel arrays (uids, base names, extension strings)
because a 100,000-message mailbox must fit a small memory budget.

"Is it still the file I read?" is answered by (device, inode, size), and the
inode number only means something while the file is open: once the last
reference to a replaced list is gone, ext4 hands its inode number to the next
new file (often the next `dovecot-uidlist.tmp`).  So, as Dovecot does, the
version we read stays open (`_held`) until a newer one replaces it.
"""

from __future__ import annotations

import errno
import posix
import time
from imapd.arrays import array
from itertools import compress
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Iterator

from imapd.store.base import StoreError
from imapd.store.maildir.message import write_all

NAME = "dovecot-uidlist"
TMP_NAME = "dovecot-uidlist.tmp"
_ENC = "utf-8"
_ERRS = "surrogateescape"  # the same mapping posix.listdir() uses for names
# refresh_tail reads this much of the end for the last records (about 25 of
# them; all it needs is the last UID), more only if no whole record is in it
TAIL_WINDOW = 2048


def _split_base(name: str) -> str:
    i = name.find(":")
    return name if i < 0 else name[:i]


def new_guid() -> str:
    return posix.urandom(16).hex()


class UidListCorrupt(Exception):
    pass


class UidList:
    """One mailbox's dovecot-uidlist, read incrementally."""

    def __init__(self, dir_fd: int, name: str = NAME, tmp_name: str = TMP_NAME) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.tmp_name = tmp_name
        self._held = -1  # fd of the version `ident` names (keeps its inode number ours)
        # bumped whenever we read something of the file we had not read before
        # (written by someone else): a view of the mailbox that was built
        # before may lack the messages those records stand for
        self.changes = 0
        self._reset()

    def _hold(self, fd: int) -> None:
        """Keep `fd` (the version just read or written) open; let the old one go."""
        if self._held >= 0 and self._held != fd:
            try:
                posix.close(self._held)
            except OSError:
                pass
        self._held = fd

    def close(self) -> None:
        self._hold(-1)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _reset(self) -> None:
        self.version = 0           # 0: no (readable) file
        self.uidvalidity = 0
        self.hdr_next_uid = 0
        self.next_uid = 1
        self.guid = ""
        self.hdr_extra: list[str] = []
        self.uids = array("I")
        self.bases: list[str] = []
        self.exts: list[str | None] = []
        self._by_base: dict[str, int] | None = None
        self.loaded = False        # all records are in memory
        self.tail_known = False    # header + last uid known (enough to append)
        self.ident: tuple[int, int] | None = None  # (dev, ino) of what we read
        self.offset = 0            # bytes of that file already parsed
        self.mtime_ns = 0
        self.broken = False        # something was skipped: rewrite on next change
        self.header_broken = False

    # ------------------------------------------------------------- reading
    def stat(self) -> posix.stat_result | None:
        try:
            return posix.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _open(self) -> int | None:
        try:
            return posix.open(self.name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError("%s is a symbolic link; it is not followed" % self.name, code="CANNOT") from None
            raise

    def _parse_header(self, line: str) -> bool:
        parts = line.split(" ")
        if not parts or not parts[0].isdigit():
            return False
        ver = int(parts[0])
        v = n = 0
        guid = ""
        extra: list[str] = []
        if ver == 1:
            if len(parts) < 3 or not parts[1].isdigit() or not parts[2].isdigit():
                return False
            v, n = int(parts[1]), int(parts[2])
        elif ver == 3:
            for f in parts[1:]:
                if not f:
                    continue
                k, val = f[0], f[1:]
                if k == "V":
                    v = int(val) if val.isdigit() else 0
                elif k == "N":
                    n = int(val) if val.isdigit() else 0
                elif k == "G":
                    guid = val
                else:
                    extra.append(f)
        else:
            return False
        if v == 0 or n == 0 or v >= 2**32 or n >= 2**32:
            return False
        if self.uidvalidity == v and n < self.hdr_next_uid:
            return False  # next_uid lowered: Dovecot calls that corrupt too
        self.version = ver
        self.uidvalidity = v
        self.hdr_next_uid = n
        self.guid = guid
        self.hdr_extra = extra
        if self.next_uid < n:
            self.next_uid = n
        return True

    def _parse_records(self, text: str, records: bool) -> None:
        """Parse record lines; `records` False only tracks the last UID."""
        lines = text.split("\n")
        if lines and not lines[-1]:
            lines.pop()
        if not lines:
            return
        if records and self._parse_fast(lines):
            return
        self._parse_slow(lines, records)

    def _parse_fast(self, lines: list[str]) -> bool:
        """The usual file, parsed with C-level list operations (a 100,000-line
        list in tens of milliseconds).  False: leave it to the careful loop."""
        sep = " :" if self.version != 1 else " "
        try:
            pairs = [ln.split(sep, 1) for ln in lines]
            heads = [p[0] for p in pairs]
            names = [p[1] for p in pairs]
        except IndexError:
            return False
        del pairs
        exts: list[str | None] | None = None
        try:
            new_uids = array("I", map(int, heads))
        except (ValueError, OverflowError):
            if self.version == 1:
                return False
            try:
                parts = [h.split(" ", 1) for h in heads]
                new_uids = array("I", (int(p[0]) for p in parts))
                exts = [p[1].strip() or None if len(p) > 1 else None for p in parts]
            except (ValueError, OverflowError):
                return False
        lst = new_uids.tolist()
        last = self.uids[-1] if self.uids else 0
        if lst[0] <= last or lst != sorted(lst) or len(set(lst)) != len(lst) or lst[-1] >= 0xFFFFFFFF:
            return False
        joined = "\x00".join(names)
        if "/" in joined or "\x00\x00" in joined or not names[0] or not names[-1]:
            return False
        if ":" in joined:
            names = [n.partition(":")[0] for n in names]
        self.uids.extend(new_uids)
        self.bases.extend(names)
        self.exts.extend(exts if exts is not None else [None] * len(names))
        if lst[-1] >= self.next_uid:
            self.next_uid = lst[-1] + 1
        self._by_base = None
        return True

    def _parse_slow(self, lines: list[str], records: bool) -> None:
        uids = self.uids
        bases = self.bases
        exts = self.exts
        last = uids[-1] if (uids and records) else 0
        v3 = self.version != 1
        for line in lines:
            if not line:
                continue
            sp = line.find(" ")
            if sp <= 0:
                self.broken = True
                continue
            try:
                uid = int(line[:sp])
            except ValueError:
                self.broken = True
                continue
            if uid <= last or uid >= 0xFFFFFFFF:
                self.broken = True  # not ascending: skip, rewrite later
                continue
            rest = line[sp + 1 :]
            ext: str | None = None
            if v3:
                if rest.startswith(":"):
                    name = rest[1:]
                else:
                    i = rest.find(" :")
                    if i < 0:
                        self.broken = True
                        continue
                    ext = rest[:i].strip() or None
                    name = rest[i + 2 :]
            else:
                name = rest.lstrip(" ")
            if not name or "/" in name:
                self.broken = True
                continue
            last = uid
            if records:
                uids.append(uid)
                c = name.find(":")
                bases.append(name if c < 0 else name[:c])
                exts.append(ext)
        if last >= self.next_uid:
            self.next_uid = last + 1
        if records:
            self._by_base = None

    def _read_from(self, fd: int, offset: int, st: posix.stat_result, records: bool) -> None:
        """Parse complete lines from `offset` on, a block at a time so that a
        100,000-line file never exists as one big string plus its lines."""
        size = st.st_size
        pos = offset
        carry = b""
        first = offset == 0
        self.changes += 1
        while pos < size or carry:
            block = posix.pread(fd, min(size - pos, 1 << 18), pos) if pos < size else b""
            pos += len(block)
            data = carry + block if carry else block
            end = data.rfind(b"\n") + 1
            if not block or end == 0:
                if not block:
                    carry = data  # an incomplete last line: not ours to parse yet
                    break
                carry = data
                continue
            carry = data[end:]
            text = data[:end].decode(_ENC, _ERRS)
            del data
            if first:
                first = False
                nl = text.find("\n")
                if not self._parse_header(text[:nl]):
                    self.header_broken = True
                    self.broken = True
                    self.version = 0
                text = text[nl + 1 :]
            self._parse_records(text, records)
        if first and carry:
            # a header with no newline after it: still the header
            if not self._parse_header(carry.decode(_ENC, _ERRS)):
                self.header_broken = True
                self.broken = True
                self.version = 0
            carry = b""
        self.offset = pos - len(carry)
        self.ident = (st.st_dev, st.st_ino)
        self.mtime_ns = st.st_mtime_ns

    def load(self) -> bool:
        """Read the whole file.  False if it does not exist."""
        old_v, old_n = self.uidvalidity, self.next_uid
        fd = self._open()
        self._reset()
        if fd is None:
            # keep what we knew: a vanished list is recreated from memory
            self._hold(-1)
            self.uidvalidity, self.next_uid = old_v, old_n
            self.loaded = True
            self.tail_known = True
            return False
        try:
            st = posix.fstat(fd)
            if old_v:
                self.uidvalidity = old_v  # so a lowered N is noticed
            self._read_from(fd, 0, st, True)
            if old_v and self.uidvalidity == old_v and self.next_uid < old_n:
                self.next_uid = old_n  # never let UIDs go backwards
        except BaseException:
            posix.close(fd)
            raise
        self._hold(fd)
        self.loaded = True
        self.tail_known = True
        return True

    def refresh(self) -> bool:
        """Bring the records up to date; True if anything may have changed."""
        if not self.loaded:
            self.load()
            return True
        st = self.stat()
        if st is None:
            if self.ident is None:
                return False
            self._hold(-1)
            self.changes += 1
            self.ident = None
            self.offset = 0
            self.version = 0
            return True
        if self._held < 0 or (st.st_dev, st.st_ino) != self.ident or st.st_size < self.offset:
            self.load()
            return True
        if st.st_size == self.offset:
            return False
        # the same file, grown (we hold it open: its inode number is not reused)
        self._read_from(self._held, self.offset, posix.fstat(self._held), True)
        return True

    def refresh_tail(self) -> None:
        """Learn the header and the last UID without loading every record
        (what APPEND needs: one read of the head and the tail)."""
        if self.loaded:
            self.refresh()
            return
        fd = self._open()
        if fd is None:
            self._hold(-1)
            self.version = 0
            self.ident = None
            self.offset = 0
            self.tail_known = True
            return
        try:
            st = posix.fstat(fd)
            if (self.tail_known and self._held >= 0 and (st.st_dev, st.st_ino) == self.ident
                    and st.st_size >= self.offset):
                if st.st_size > self.offset:
                    self._read_from(fd, self.offset, st, False)
                return
            head = posix.pread(fd, 4096, 0)
            nl = head.find(b"\n")
            if nl < 0:
                # header longer than 4k or no newline: fall back to a full read
                posix.close(fd)
                fd = None
                self.load()
                return
            self.uidvalidity = 0
            self.hdr_next_uid = 0
            self.next_uid = 1
            if not self._parse_header(head[:nl].decode(_ENC, _ERRS)):
                posix.close(fd)
                fd = None
                self.load()
                return
            window = TAIL_WINDOW
            while True:
                start = max(nl + 1, st.st_size - window)
                tail = posix.pread(fd, st.st_size - start, start)
                if start == nl + 1:
                    base_off = start
                    break
                tail = tail[tail.find(b"\n") + 1 :]  # (the first line is cut, unless found empty)
                if b"\n" in tail:
                    base_off = st.st_size - len(tail)
                    break
                window *= 8  # no whole record in it (names of 255 bytes, long extensions)
            end = tail.rfind(b"\n") + 1
            self._parse_records(tail[:end].decode(_ENC, _ERRS), False)
            self.offset = base_off + end
            self.ident = (st.st_dev, st.st_ino)
            self.mtime_ns = st.st_mtime_ns
            self.tail_known = True
            self._hold(fd)
            fd = None
        finally:
            if fd is not None:
                posix.close(fd)

    # ------------------------------------------------------------- lookups
    def by_base(self) -> dict[str, int]:
        """base name -> index into the record arrays (built on demand)."""
        if self._by_base is None:
            d: dict[str, int] = {}
            for i, b in enumerate(self.bases):
                if b in d:
                    self.broken = True  # duplicate: the later record wins
                d[b] = i
            self._by_base = d
        return self._by_base

    def uid_of(self, base: str) -> int | None:
        i = self.by_base().get(base)
        return None if i is None else self.uids[i]

    def ext_value(self, idx: int, key: str) -> str | None:
        ext = self.exts[idx]
        if not ext:
            return None
        for f in ext.split(" "):
            if f[:1] == key:
                return f[1:]
        return None

    def set_ext(self, idx: int, key: str, value: str | None) -> None:
        """Change one extension field in memory (written on the next rewrite)."""
        fields = [f for f in (self.exts[idx] or "").split(" ") if f and f[0] != key]
        if value is not None:
            fields.append(key + value)
        self.exts[idx] = " ".join(fields) or None

    # ------------------------------------------------------------- writing
    @staticmethod
    def _record(uid: int, base: str, ext: str | None) -> str:
        if ext:
            return "%d %s :%s\n" % (uid, ext, base)
        return "%d :%s\n" % (uid, base)

    def needs_rewrite(self) -> bool:
        return self.version != 3 or self.broken or not self.guid or self.ident is None

    def append(self, bases: list[str], exts: list[str | None] | None = None) -> list[int]:
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
            return self._append_by_rewrite(first, bases, exts, new_uids)
        fd = posix.open(self.name, posix.O_WRONLY | posix.O_APPEND | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=self.dir_fd)
        try:
            st = posix.fstat(fd)
            if (st.st_dev, st.st_ino) != self.ident or st.st_size != self.offset:
                # someone changed it without the lock: never guess, rewrite
                posix.close(fd)
                fd = -1
                return self._append_by_rewrite(first, bases, exts, new_uids)
            try:
                for data in self._encoded(new_uids, bases, exts):
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
                self._take_back(first)
                raise
            st = posix.fstat(fd)
            self.offset = st.st_size
            self.mtime_ns = st.st_mtime_ns
        finally:
            if fd >= 0:
                posix.close(fd)
        return new_uids

    def _encoded(self, uids: list[int], bases: list[str], exts: list[str | None]) -> Iterator[bytes]:
        """The record lines, 8,192 at a time: a cold SELECT numbers 100,000
        files, and their lines need not all exist at once (formatted in C
        when no record has extension fields)."""
        for k in range(0, len(uids), 8192):
            u, b, e = uids[k : k + 8192], bases[k : k + 8192], exts[k : k + 8192]
            if e.count(None) == len(e):
                text = "".join(map("%d :%s\n".__mod__, zip(u, b)))
            else:
                text = "".join(map(self._record, u, b, e))
            yield text.encode(_ENC, _ERRS)

    def _append_by_rewrite(self, first: int, bases: list[str], exts: list[str | None],
                           new_uids: list[int]) -> list[int]:
        """Finish an append with a full rewrite (which needs every record read first)."""
        if not self.loaded:
            self.next_uid = first
            self.load()
            return self.append(bases, exts)
        try:
            self.rewrite()
        except BaseException:
            self._take_back(first)
            raise
        return new_uids

    def _take_back(self, first: int) -> None:
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

    def rewrite(self, drop: set[int] | None = None, uidvalidity: int | None = None) -> None:
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

    def set_records(self, uids: list[int], bases: list[str], exts: list[str | None] | None = None) -> None:
        """Replace the in-memory records (used when building a new list)."""
        self.uids = array("I", uids)
        self.bases = list(bases)
        self.exts = list(exts) if exts is not None else [None] * len(bases)
        self._by_base = None
        self.loaded = True
        self.tail_known = True
        if uids and uids[-1] >= self.next_uid:
            self.next_uid = uids[-1] + 1


_REWRITE_CHUNK = 4096


def read_courier_uiddb(dir_fd: int) -> tuple[int, int, list[int], list[str]] | None:
    """Parse Courier's `courierimapuiddb` (version 1 layout): (uidvalidity,
    nextuid, uids, base names), or None if absent or unreadable."""
    ul = UidList(dir_fd, name="courierimapuiddb", tmp_name="courierimapuiddb.tmp")
    try:
        if not ul.load() or ul.version != 1 or not ul.uidvalidity:
            return None
        return ul.uidvalidity, ul.next_uid, list(ul.uids), list(ul.bases)
    finally:
        ul.close()
