"""imapd's cache of derived per-message values (ENVELOPE, BODYSTRUCTURE, header
fields, search texts, MIME trees), one file per key: `imapd.cache-<key>`.

A file is a *main part* sorted by UID -- a directory of fixed-size arrays
(UID, the message file's mtime, offset, kind) followed by the values -- and
a *tail* of records appended since, each `<uid, mtime, length, kind>` and its
value.  Why this shape:

* A session reads only the keys its commands ask for, and of a key only the
  directory (20 bytes a message): a value is read when it is asked for, and a
  FETCH 1:* reads the values in one sequential sweep through a window, so
  memory stays a few MB however large the mailbox is.
* New entries (the few messages that arrived since) are appended to the
  tail with one write; the file is rewritten, sorted, only when the tail
  grows past a quarter of the main part.
* Many new entries in ascending UID order above everything cached (the
  first FETCH 1:* of a mailbox) go to a *run*: their values are appended
  to an unlinked temporary file as they come, and only their directory
  (21 bytes an entry) stays in memory.  At the end the file is written
  once: directory, then the old main part and the run copied as blocks.
  (Rewriting the whole file every few MB instead made the first FETCH of
  100,000 messages rewrite ~100 MB twenty times over.)
* SEARCH over a text key scans the main part's values as one block (`find`
  in C) instead of looking at 100,000 values one by one.

It is only a cache: a damaged, foreign or half-written file is ignored (a
torn tail record ends the tail), concurrent writers may lose each other's
entries, and deleting the files loses nothing but speed.  An entry is valid
while the message file's mtime is the one recorded with it.
"""

from __future__ import annotations

import marshal
import os
import struct
from array import array
from bisect import bisect_left
from itertools import accumulate, chain, islice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Iterator

from imapd.store.maildir.index import write_atomic

PREFIX = "imapd.cache-"
# keys made from what a client asks for (the header fields it fetches, the
# fields it searches): a few per mailbox get files, the rest stay in memory
CLIENT_KEY_PREFIXES = ("hdr.", "search.")
MAX_CLIENT_KEYS = 8
_MAGIC = b"IMAPDC4\n"
_HEAD = struct.Struct("<IIQ")  # uidvalidity, count, length of the values
_REC = struct.Struct("<IdIB")  # uid, mtime, length, kind
RAW, MARSHAL = 0, 1
WINDOW = 1 << 20  # bytes read at a time from the main part
BLOCK = 1024  # values read at a time by get_many's usual case
FLUSH_BYTES = 4 << 20  # pending values written out beyond this (bounds memory)
RUN_BYTES = 512 << 10  # pending values in UID order go to the run beyond this
_ANY_TIME = -1.0e300  # "mtime unknown" in the mailbox's arrays: matches anything


def file_name(key: str) -> str:
    return PREFIX + key


def _encode(value: object) -> tuple[int, bytes]:
    if type(value) is bytes:
        return RAW, value  # type: ignore[return-value]
    return MARSHAL, marshal.dumps(value)


def _decode(kind: int, raw: bytes) -> object:
    return raw if kind == RAW else marshal.loads(raw)


class CacheColumn:
    """The cached values of one key in one mailbox."""

    def __init__(self, dir_fd: int, key: str, uidvalidity: int, persistent: bool = True) -> None:
        self.dir_fd = dir_fd
        self.key = key
        self.uidvalidity = uidvalidity
        self.fd = -1
        self.uids = array("I")
        self.mtimes = array("d")
        self.offs = array("Q", [0])
        self.kinds = bytearray()
        self.data_at = 0  # file offset of the main part's values
        self.main_end = 0
        self.tail: dict[int, tuple[float, int, int, int]] = {}  # uid -> (mtime, kind, offset, length)
        self.tail_bytes = 0
        self.pending: dict[int, tuple[float, int, bytes]] = {}  # uid -> (mtime, kind, value)
        self.pending_bytes = 0
        self._last_put = 0
        self._in_order = True  # pending UIDs were put in ascending order
        # the run (see the module docstring): values in a temporary file,
        # their directory here; every UID above all of main part and tail
        self.run_fd = -1
        self.run_uids = array("I")
        self.run_mtimes = array("d")
        self.run_offs = array("Q", [0])
        self.run_kinds = bytearray()
        self.dropped: set[int] = set()
        self._win_at = 0
        self._win = b""
        self._hint = 0
        self.generation = 0  # bumped when the file is replaced under us
        self.persistent = persistent
        if persistent:
            self._open()

    # ------------------------------------------------------------ reading
    def _open(self) -> None:
        try:
            fd = os.open(file_name(self.key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        except OSError:
            return
        try:
            size = os.fstat(fd).st_size
            head = os.pread(fd, len(_MAGIC) + _HEAD.size, 0)
            if len(head) < len(_MAGIC) + _HEAD.size or head[: len(_MAGIC)] != _MAGIC:
                raise ValueError
            uv, n, datalen = _HEAD.unpack_from(head, len(_MAGIC))
            if uv != self.uidvalidity:
                raise ValueError
            at = len(head)
            dirlen = n * 4 + n * 8 + (n + 1) * 8 + n
            raw = os.pread(fd, dirlen, at)
            if len(raw) != dirlen or at + dirlen + datalen > size:
                raise ValueError
            view = memoryview(raw)
            uids, mtimes, offs = array("I"), array("d"), array("Q")
            uids.frombytes(view[: n * 4])
            mtimes.frombytes(view[n * 4 : n * 12])
            offs.frombytes(view[n * 12 : n * 20 + 8])
            kinds = bytearray(view[n * 20 + 8 :])
            del view
            if offs[0] != 0 or offs[-1] != datalen:
                raise ValueError
            self.uids, self.mtimes, self.offs, self.kinds = uids, mtimes, offs, kinds
            self.data_at = at + dirlen
            self.main_end = self.data_at + datalen
            self.fd = fd
            self._read_tail(size)
        except (OSError, ValueError, struct.error):
            os.close(fd)
            self.fd = -1

    def _read_tail(self, size: int) -> None:
        """Records appended after the main part; a torn last record ends it."""
        pos = self.main_end
        buf = b""
        buf_at = pos
        while pos + _REC.size <= size:
            if pos + _REC.size > buf_at + len(buf):
                buf_at = pos
                buf = os.pread(self.fd, min(WINDOW, size - pos), pos)
            uid, mtime, ln, kind = _REC.unpack_from(buf, pos - buf_at)
            value_at = pos + _REC.size
            if value_at + ln > size or kind > MARSHAL:
                break
            self.tail[uid] = (mtime, kind, value_at, ln)
            pos = value_at + ln
        self.tail_bytes = pos - self.main_end

    def _main_pos(self, uid: int) -> int:
        uids = self.uids
        h = self._hint
        if h < len(uids) and uids[h] == uid:
            self._hint = h + 1
            return h
        i = bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            self._hint = i + 1
            return i
        return -1

    def _read_main(self, start: int, length: int) -> bytes:
        """Bytes of the main part's values, through a window that a FETCH 1:*
        sweeps forward (one pread per megabyte, not one per message)."""
        w = self._win_at
        if w <= start and start + length <= w + len(self._win):
            return self._win[start - w : start - w + length]
        if length >= WINDOW:
            return os.pread(self.fd, length, self.data_at + start)
        self._win = os.pread(self.fd, WINDOW, self.data_at + start)
        self._win_at = start
        return self._win[:length]

    def get(self, uid: int, mtime: float) -> object | None:
        """The value for `uid` if one is cached for the file with this mtime."""
        if uid in self.dropped:
            return None
        ent = self.pending.get(uid)
        if ent is not None:
            return _decode(ent[1], ent[2]) if _same_time(ent[0], mtime) else None
        if self.run_uids and uid >= self.run_uids[0]:
            return self._run_get(uid, mtime)
        if self.fd < 0:
            return None
        try:
            t = self.tail.get(uid)
            if t is not None:
                if not _same_time(t[0], mtime):
                    return None
                raw = os.pread(self.fd, t[3], t[2])
                return _decode(t[1], raw) if len(raw) == t[3] else None
            i = self._main_pos(uid)
            if i < 0 or not _same_time(self.mtimes[i], mtime):
                return None
            start = self.offs[i]
            raw = self._read_main(start, self.offs[i + 1] - start)
            return _decode(self.kinds[i], raw)
        except (OSError, ValueError, EOFError, TypeError):
            return None

    def _run_get(self, uid: int, mtime: float) -> object | None:
        ru = self.run_uids
        i = bisect_left(ru, uid)
        if i == len(ru) or ru[i] != uid or not _same_time(self.run_mtimes[i], mtime):
            return None
        start = self.run_offs[i]
        ln = self.run_offs[i + 1] - start
        try:
            raw = os.pread(self.run_fd, ln, start)
            return _decode(self.run_kinds[i], raw) if len(raw) == ln else None
        except (OSError, ValueError, EOFError, TypeError):
            return None

    def get_many(self, uids: "Iterable[int]", mtimes: "Iterable[float]") -> "Iterator[object | None]":
        """`get` for a run of UIDs in ascending order (FETCH 1:*).

        The usual warm FETCH 1:* asks for a stretch of the main part, all
        there and all of the files' current mtimes: that is read BLOCK
        values at a time, one pread and a list of slices each, at a small
        fraction of the cost of a lookup per message."""
        if type(uids) in (array, list) and type(mtimes) is array:
            j0 = self._whole_stretch(uids, mtimes)  # type: ignore[arg-type]
            if j0 >= 0:
                return chain.from_iterable(self._blocks(j0, uids, mtimes))  # type: ignore[arg-type]
        return self._get_each(uids, mtimes)

    def _whole_stretch(self, uids: "array[int] | list[int]", mtimes: "array[float]") -> int:
        """Where in the main part `uids` start, if the main part holds every
        one of them, consecutively, raw, and no tail or run entry stands in
        for one; else -1.  (Mtimes, drops and pending values can change while
        a FETCH runs: `_blocks` checks those, block by block.)"""
        n = len(uids)
        if not n or self.fd < 0 or self.tail or self.run_uids or len(mtimes) != n:
            return -1
        main = self.uids
        j0 = bisect_left(main, uids[0])
        if j0 + n > len(main) or self.kinds.count(RAW, j0, j0 + n) != n:
            return -1
        stretch = main[j0 : j0 + n]
        return j0 if (stretch == uids if type(uids) is array else stretch.tolist() == uids) else -1

    def _blocks(self, j0: int, uids: "array[int] | list[int]", mtimes: "array[float]") -> "Iterator[list[object]]":
        """The values of `uids`, main-part entries from j0 on, a list per block."""
        offs, gen, n = self.offs, self.generation, len(uids)
        for k in range(j0, j0 + n, BLOCK):
            end = min(k + BLOCK, j0 + n)
            # for each block: the file rewritten, an entry dropped or pending,
            # or a message file replaced (a new mtime; an unknown time, _ANY_TIME,
            # or NaN compares unequal too): then looked at one by one
            if (self.generation != gen or self.fd < 0 or self.dropped or self.pending
                    or self.mtimes[k:end] != mtimes[k - j0 : end - j0]):
                yield list(self._get_each(uids[k - j0 : end - j0], mtimes[k - j0 : end - j0]))
                continue
            at = offs[k]
            want = offs[end] - at
            try:
                raw = os.pread(self.fd, want, self.data_at + at)
            except OSError:
                raw = b""
            if len(raw) != want:
                yield [None] * (end - k)
                continue
            starts = offs[k:end + 1]
            yield [raw[a - at : b - at] for a, b in zip(starts, islice(starts, 1, None))]

    def _get_each(self, uids: "Iterable[int]", mtimes: "Iterable[float]") -> "Iterator[object | None]":
        """get_many's general case: the main part is walked with one moving
        position and read through the window."""
        main_uids, offs, kinds, times = self.uids, self.offs, self.kinds, self.mtimes
        n = len(main_uids)
        gen = self.generation
        special = self.dropped or self.pending or self.tail
        run_from = self.run_uids[0] if self.run_uids else 1 << 32
        j = 0
        for u, t in zip(uids, mtimes):
            if self.fd < 0:  # no file (yet): only the run and pending values
                ru = self.run_uids
                yield self.get(u, t) if u in self.pending or ru and u <= ru[-1] else None
                continue
            if u >= run_from and self.generation == gen and u > self.run_uids[-1] and u not in self.pending:
                # above everything cached (the first FETCH 1:* reads each
                # value just before it is built and put): nothing to look up
                yield None
                continue
            if (self.generation != gen or self.fd < 0 or u >= run_from
                    or (special and (u in self.dropped or u in self.pending or u in self.tail))):
                yield self.get(u, t)
                continue
            if j >= n or main_uids[j] != u:
                j = bisect_left(main_uids, u)
                if j >= n or main_uids[j] != u:
                    yield None
                    continue
            rt = times[j]
            if rt != t and rt != _ANY_TIME and t != _ANY_TIME:
                j += 1
                yield None
                continue
            start = offs[j]
            try:
                raw = self._read_main(start, offs[j + 1] - start)
                yield raw if kinds[j] == RAW else marshal.loads(raw)
            except (OSError, ValueError, EOFError, TypeError):
                yield None
            j += 1

    def find_raw(self, needle: bytes) -> set[int] | None:
        """UIDs whose main-part value (raw bytes) contains `needle`, found by
        scanning the values as one block: a miss costs nothing per message.
        Entries the main part does not hold or holds for another mtime
        (`main_entry_time`) are the caller's to check.  None: not readable."""
        hits: set[int] = set()
        if self.fd < 0 or not needle:
            return None
        offs = self.offs
        data = os.pread(self.fd, offs[-1], self.data_at)
        if len(data) != offs[-1]:
            return None
        at = data.find(needle)
        while at >= 0:
            i = bisect_left(offs, at + 1) - 1  # the value that starts at or before `at`
            if at + len(needle) <= offs[i + 1] and self.kinds[i] == RAW:
                hits.add(self.uids[i])
                at = data.find(needle, offs[i + 1])  # one hit per value is enough
            else:
                at = data.find(needle, at + 1)
        return hits

    def main_entry_time(self, uid: int) -> float | None:
        """The mtime the main part recorded for `uid` (None: not there, or
        superseded by the tail / run / pending / a drop)."""
        if uid in self.dropped or uid in self.pending or uid in self.tail:
            return None
        if self.run_uids and uid >= self.run_uids[0]:
            return None
        i = self._main_pos(uid)
        return self.mtimes[i] if i >= 0 else None

    # ------------------------------------------------------------ writing
    def put(self, uid: int, mtime: float, value: object, marshalled: bool = False) -> bool:
        """Remember `value` (with `marshalled`: `marshal.dumps` of it) for
        `uid`.  Returns whether pending values should be written out now
        (bounded memory): early when they can go to the run, which is cheap
        to extend."""
        kind, raw = (MARSHAL, value) if marshalled and type(value) is bytes else _encode(value)
        old = self.pending.get(uid)
        if old is not None:
            self.pending_bytes -= len(old[2])
        self.pending[uid] = (mtime, kind, raw)
        self.pending_bytes += len(raw)
        self.dropped.discard(uid)
        if uid <= self._last_put:
            self._in_order = False
        self._last_put = uid
        return self.pending_bytes >= (RUN_BYTES if self._in_order and self.persistent else FLUSH_BYTES)

    def drop(self, uid: int) -> None:
        self.dropped.add(uid)
        old = self.pending.pop(uid, None)
        if old is not None:
            self.pending_bytes -= len(old[2])

    def flush(self, present: "Iterable[int] | None" = None, final: bool = False) -> None:
        """Write pending entries: appended to the tail while it stays small,
        otherwise (or when entries must be dropped at `final`) the file is
        rewritten sorted, keeping only UIDs in `present`."""
        if not self.persistent or not (self.pending or self.run_uids):
            return  # drops need no writing: expunged UIDs never return, and a
            # replaced file has another mtime; the next rewrite leaves them out
        main_len = self.main_end - self.data_at if self.fd >= 0 else 0
        new_tail = self.tail_bytes + self.pending_bytes + len(self.pending) * _REC.size
        tail_fits = self.fd >= 0 and new_tail <= max(1 << 20, main_len // 4)
        try:
            if self.run_uids or (not tail_fits and not final and self.pending_bytes >= RUN_BYTES):
                if self._spill():
                    if final:
                        self._finish_run(present)
                    return
                if self.run_uids:  # out of order after a run: merge everything
                    self._rewrite(present)
                    return
        except OSError:
            self._drop_run()  # (its entries are lost: only a cache)
            raise
        if tail_fits:
            self._append()
        elif final or self.pending_bytes >= FLUSH_BYTES:
            self._rewrite(present)
        # else: keep collecting (a rewrite per small batch would be wasteful)
        if self.pending:
            self._in_order = False  # the run is no place for these: collect up to FLUSH_BYTES
        else:
            self._in_order, self._last_put = True, 0

    # ------------------------------------------------------------ the run
    def _top(self) -> int:
        """The highest UID the main part, tail or run holds (0: none)."""
        top = self.uids[-1] if self.uids else 0
        if self.tail:
            top = max(top, max(self.tail))
        if self.run_uids:
            top = max(top, self.run_uids[-1])
        return top

    def _spill(self) -> bool:
        """Move the pending entries to the run, if they all lie above what is
        cached (False, and nothing done, otherwise)."""
        if not self.pending:
            return True
        if not self._in_order or next(iter(self.pending)) <= self._top():
            return False  # (put in order: the first pending UID is the lowest)
        if self.run_fd < 0:
            self.run_fd = _temp_file(self.dir_fd, self.key)
        start = self.run_offs[-1]
        entries = list(self.pending.values())
        raws = [v[2] for v in entries]
        _write_all(self.run_fd, b"".join(raws), start)
        # the directory grows only once the values are written (a column at a time, in C)
        self.run_uids.extend(self.pending)
        self.run_mtimes.extend([v[0] for v in entries])
        self.run_kinds.extend([v[1] for v in entries])
        self.run_offs.extend(accumulate(map(len, raws), initial=start))
        del self.run_offs[-len(raws) - 1]  # (`initial` repeats the old end)
        self.pending.clear()
        self.pending_bytes = 0
        self._last_put = self.run_uids[-1]
        return True

    def _finish_run(self, present: "Iterable[int] | None") -> None:
        """Write the file with the run in it: main part and run copied as
        blocks when they simply follow each other, else a full rewrite."""
        ru = self.run_uids
        if self.tail or self.dropped or (present is not None and not (_all_in(self.uids, present)
                                                                      and _all_in(ru, present))):
            self._rewrite(present)
            return
        # (without a file the main part's arrays are empty: see close)
        from imapd.memory import trim

        trim()  # what the bulk FETCH before this freed: room for the copy below
        main_len = self.offs[-1]
        run_len = self.run_offs[-1]
        # each column is written as its two halves, straight from the arrays
        # (no joined copies: this runs at the end of a session that has just
        # cached 100,000 values, and its memory peak is the session's)
        run_offs = array("Q", map(main_len.__add__, islice(self.run_offs, 1, None)))

        def chunks() -> "Iterator[bytes | memoryview]":
            yield _MAGIC + _HEAD.pack(self.uidvalidity, len(self.uids) + len(ru), main_len + run_len)
            for column in (self.uids, ru, self.mtimes, self.run_mtimes, self.offs, run_offs,
                           self.kinds, self.run_kinds):
                yield memoryview(column).cast("B")
            yield from _blocks(self.fd, self.data_at, main_len)
            yield from _blocks(self.run_fd, 0, run_len)

        write_atomic(self.dir_fd, file_name(self.key), chunks())
        self._reopen()

    def _drop_run(self) -> None:
        if self.run_fd >= 0:
            try:
                os.close(self.run_fd)
            except OSError:
                pass
        self.run_fd = -1
        self.run_uids, self.run_mtimes = array("I"), array("d")
        self.run_offs, self.run_kinds = array("Q", [0]), bytearray()

    def _append(self) -> None:
        parts = []
        for uid in sorted(self.pending):
            mtime, kind, raw = self.pending[uid]
            parts.append(_REC.pack(uid, mtime, len(raw), kind))
            parts.append(raw)
        blob = b"".join(parts)
        fd = os.open(file_name(self.key), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.dir_fd)
        try:
            if os.fstat(fd).st_ino != os.fstat(self.fd).st_ino:
                raise OSError("replaced meanwhile")  # someone rewrote it: do it again ourselves
            at = os.lseek(fd, 0, os.SEEK_END)
            if at != self.main_end + self.tail_bytes:
                raise OSError("appended meanwhile")
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.close(fd)
            self._rewrite(None)
            return
        os.close(fd)
        pos = self.main_end + self.tail_bytes
        for uid in sorted(self.pending):
            mtime, kind, raw = self.pending[uid]
            self.tail[uid] = (mtime, kind, pos + _REC.size, len(raw))
            pos += _REC.size + len(raw)
        self.tail_bytes = pos - self.main_end
        self.pending.clear()
        self.pending_bytes = 0

    def _rewrite(self, present: "Iterable[int] | None") -> None:
        """Merge main part, tail and pending entries into a new sorted file."""
        keep = None if present is None else set(present)
        order: dict[int, int] = {}  # uid -> source: 0 main, 1 tail, 2 pending
        for i, u in enumerate(self.uids):
            order[u] = 0
        for u in self.tail:
            order[u] = 1
        for u in self.run_uids:
            order[u] = 3
        for u in self.pending:
            order[u] = 2
        uids = sorted(u for u in order if u not in self.dropped and (keep is None or u in keep))
        mtimes, offs, kinds = array("d"), array("Q", [0]), bytearray()
        size = 0
        for u in uids:
            src = order[u]
            if src == 2:
                mt, kind, raw = self.pending[u]
                ln = len(raw)
            elif src == 3:
                r = bisect_left(self.run_uids, u)
                mt, kind, ln = self.run_mtimes[r], self.run_kinds[r], self.run_offs[r + 1] - self.run_offs[r]
            elif src == 1:
                mt, kind, _, ln = self.tail[u]
            else:
                i = self._main_pos(u)
                mt, kind, ln = self.mtimes[i], self.kinds[i], self.offs[i + 1] - self.offs[i]
            mtimes.append(mt)
            kinds.append(kind)
            size += ln
            offs.append(size)
        uid_arr = array("I", uids)

        def chunks():
            yield _MAGIC + _HEAD.pack(self.uidvalidity, len(uids), size)
            yield uid_arr.tobytes()
            yield mtimes.tobytes()
            yield offs.tobytes()
            yield bytes(kinds)
            batch: list[bytes] = []
            batch_len = 0
            for u in uids:
                src = order[u]
                if src == 2:
                    raw = self.pending[u][2]
                elif src == 3:
                    r = bisect_left(self.run_uids, u)
                    raw = os.pread(self.run_fd, self.run_offs[r + 1] - self.run_offs[r], self.run_offs[r])
                elif src == 1:
                    t = self.tail[u]
                    raw = os.pread(self.fd, t[3], t[2])
                else:
                    i = self._main_pos(u)
                    raw = self._read_main(self.offs[i], self.offs[i + 1] - self.offs[i])
                batch.append(raw)
                batch_len += len(raw)
                if batch_len >= WINDOW:
                    yield b"".join(batch)
                    batch, batch_len = [], 0
            if batch:
                yield b"".join(batch)

        write_atomic(self.dir_fd, file_name(self.key), chunks())
        self._reopen()

    def _reopen(self) -> None:
        """After the file was rewritten with everything in it: forget tail,
        run and pending entries and read the new file from now on."""
        self.close()
        self.tail.clear()
        self.tail_bytes = 0
        self.pending.clear()
        self.pending_bytes = 0
        self.dropped.clear()
        self._win, self._win_at, self._hint = b"", 0, 0
        self._last_put, self._in_order = 0, True
        self._open()

    def close(self) -> None:
        self.generation += 1
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
        self.uids, self.mtimes, self.offs, self.kinds = array("I"), array("d"), array("Q", [0]), bytearray()
        self.main_end = self.data_at = 0
        self._drop_run()


def _all_in(uids: array, present: "Iterable[int]") -> bool:
    """Every UID of the ascending `uids` is in `present`.  The mailbox passes
    its view's array, ascending too: a walk with bisect then, with no set of
    100,000 ints (this runs at the end of the session whose memory peak it
    would be)."""
    if not isinstance(present, array):
        keep = set(present)
        return all(map(keep.__contains__, uids))
    lo, n = 0, len(present)
    for u in uids:
        lo = bisect_left(present, u, lo)
        if lo == n or present[lo] != u:
            return False
    return True


def _temp_file(dir_fd: int, key: str) -> int:
    """An unlinked read-write file beside the cache files (for a run): it
    vanishes with the process however the session ends."""
    flags = os.O_RDWR | os.O_CLOEXEC
    try:
        return os.open(".", flags | os.O_TMPFILE, 0o600, dir_fd=dir_fd)
    except (OSError, AttributeError):  # no O_TMPFILE on this file system
        name = "%s.run.%d" % (file_name(key), os.getpid())
        fd = os.open(name, flags | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        os.unlink(name, dir_fd=dir_fd)
        return fd


def _write_all(fd: int, data: bytes, at: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, at)
        view = view[n:]
        at += n


def _blocks(fd: int, start: int, length: int) -> "Iterator[bytes]":
    """`length` bytes of `fd` from `start`, a window at a time; OSError if short."""
    end = start + length
    while start < end:
        block = os.pread(fd, min(WINDOW, end - start), start)
        if not block:
            raise OSError("cache file shrank while being copied")
        yield block
        start += len(block)


def _same_time(recorded: float, current: float) -> bool:
    return recorded == current or recorded == _ANY_TIME or current == _ANY_TIME
