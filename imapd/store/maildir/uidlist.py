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

import posix
from imapd import arrays
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from array import array
    from types import ModuleType

from imapd.store.base import StoreError

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


def _writing() -> ModuleType:
    """Appending and rewriting (store/maildir/uidlist_write.py), loaded at first use."""
    from imapd.store.maildir import uidlist_write

    return uidlist_write


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
        self._uids: array | None = None  # (made at first use: see uids)
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

    @property
    def uids(self) -> array:
        """The records' UIDs, in file order.  Made at first use: learning the
        header and the last UID (`refresh_tail`, all a warm SELECT asks) needs
        no array, nor the C library behind it."""
        uids = self._uids
        if uids is None:
            uids = self._uids = arrays.array("I")
        return uids

    @uids.setter
    def uids(self, uids: array) -> None:
        self._uids = uids

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
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
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
            new_uids = arrays.array("I", map(int, heads))
        except (ValueError, OverflowError):
            if self.version == 1:
                return False
            try:
                parts = [h.split(" ", 1) for h in heads]
                new_uids = arrays.array("I", (int(p[0]) for p in parts))
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
        uids = self.uids if records else None
        bases = self.bases
        exts = self.exts
        last = uids[-1] if uids else 0
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
    def needs_rewrite(self) -> bool:
        return self.version != 3 or self.broken or not self.guid or self.ident is None

    def append(self, bases: list[str], exts: list[str | None] | None = None) -> list[int]:
        return _writing().append(self, bases, exts)

    def rewrite(self, drop: set[int] | None = None, uidvalidity: int | None = None) -> None:
        return _writing().rewrite(self, drop, uidvalidity)

    def set_records(self, uids: list[int], bases: list[str], exts: list[str | None] | None = None) -> None:
        return _writing().set_records(self, uids, bases, exts)


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
