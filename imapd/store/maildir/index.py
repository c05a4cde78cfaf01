"""imapd's own per-mailbox files beside dovecot-uidlist.  All are caches or
hints: delete any of them and nothing is lost but speed (and \\Recent state).

* `imapd.index` — small per-message data as parallel arrays (UID, base name,
  info suffix, wire size, internal date, MODSEQ) plus HIGHESTMODSEQ and the
  identity of the uidlist and of cur/ and new/ when the snapshot was taken.  A
  warm SELECT whose uidlist and directories are unchanged needs nothing else:
  no uidlist parse, no readdir, no stat per message.  One `marshal` blob of a
  few large objects (bytes, one joined string) loads in milliseconds.
* `imapd.cache` — big derived values (ENVELOPE, BODYSTRUCTURE, ...) per UID,
  loaded only when a command first asks for one, so a SELECT that needs flags
  never reads them.
* `imapd.state` — the "first recent UID": the only state that must be
  changed atomically between sessions (under the uidlist lock).

Files are written to a unique temporary name and renamed into place.
"""

from __future__ import annotations

import marshal
import os
import sys
from array import array
from imapd.record import Record

INDEX_NAME = "imapd.index"
CACHE_NAME = "imapd.cache"
STATE_NAME = "imapd.state"
_MAGIC = "imapd-index"
_CACHE_MAGIC = "imapd-cache"
_VERSION = 2


class IndexData(Record):
    __slots__ = ('uidvalidity', 'highestmodseq', 'uidlist_ident', 'dirs', 'uids', 'bases', 'infos', 'innew', 'wsize', 'mtime', 'modseq')
    _defaults = {'uidvalidity': 0, 'highestmodseq': 1, 'uidlist_ident': None, 'dirs': None, 'uids': lambda: array("I"), 'bases': list, 'infos': list, 'innew': bytearray, 'wsize': lambda: array("q"), 'mtime': lambda: array("d"), 'modseq': lambda: array("Q")}
    uidvalidity: int
    highestmodseq: int
    uidlist_ident: tuple | None   # (dev, ino, size, mtime_ns)
    dirs: tuple | None            # (cur mtime_ns, new mtime_ns) if trusted
    uids: array
    bases: list
    infos: list
    innew: bytearray
    wsize: array
    mtime: array
    modseq: array


def _read_file(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        parts = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_atomic(dir_fd: int, name: str, data: bytes, fsync: bool = False) -> None:
    """Write `name` via a unique temporary file and rename()."""
    tmp = "%s.tmp.%d" % (name, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


_SEGMENTS = ("uids", "bases", "infos", "innew", "wsize", "mtime", "modseq")


def _open_ro(dir_fd: int, name: str) -> int | None:
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None


def _read_names(fd: int, pos: int, length: int, intern: bool = False) -> list[str]:
    """A segment of "name\n" lines, read in blocks (no second full copy)."""
    out: list[str] = []
    end = pos + length
    carry = b""
    while pos < end:
        block = os.pread(fd, min(end - pos, 1 << 18), pos)
        if not block:
            raise ValueError("short index file")
        pos += len(block)
        data = carry + block if carry else block
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            part = data[:cut].decode("utf-8", "surrogateescape").split("\n")
            part.pop()
            out.extend(map(sys.intern, part) if intern else part)
    if carry:
        raise ValueError("index segment not newline-terminated")
    return out


def load_index(dir_fd: int, names: bool = True) -> IndexData | None:
    """The index, or None if missing, foreign or corrupt (then it is rebuilt).

    Layout: one line "imapd-index <version> <byteorder> <header length>",
    a marshal'd header (with the length of every segment), then the raw
    segments, read one at a time."""
    fd = _open_ro(dir_fd, INDEX_NAME)
    if fd is None:
        return None
    try:
        head = os.pread(fd, 128, 0)
        nl = head.find(b"\n")
        parts = head[:nl].decode("ascii", "replace").split(" ")
        if len(parts) != 4 or parts[0] != _MAGIC or parts[1] != str(_VERSION) or parts[2] != sys.byteorder:
            return None
        hlen = int(parts[3])
        pos = nl + 1
        hdr = marshal.loads(os.pread(fd, hlen, pos))
        pos += hlen
        n = hdr["count"]
        lens = hdr["segments"]
        d = IndexData(
            uidvalidity=hdr["uidvalidity"],
            highestmodseq=hdr["highestmodseq"],
            uidlist_ident=hdr["uidlist"],
            dirs=hdr["dirs"],
        )
        seg = {}
        for name, ln in zip(_SEGMENTS, lens):
            if name == "bases" and not names:
                seg[name] = None  # seeding needs no names: a UID's file never changes
            elif name in ("bases", "infos"):
                seg[name] = _read_names(fd, pos, ln, name == "infos")
            else:
                raw = os.pread(fd, ln, pos)
                if len(raw) != ln:
                    return None
                seg[name] = raw
            pos += ln
        d.uids = array("I")
        d.uids.frombytes(seg["uids"])
        d.bases = seg["bases"] if names else [""] * n
        d.infos = seg["infos"]
        d.innew = bytearray(seg["innew"])
        d.wsize = array("q")
        d.wsize.frombytes(seg["wsize"])
        d.mtime = array("d")
        d.mtime.frombytes(seg["mtime"])
        d.modseq = array("Q")
        d.modseq.frombytes(seg["modseq"])
        if not (len(d.uids) == len(d.bases) == len(d.infos) == len(d.innew) == len(d.wsize) == len(d.mtime) == len(d.modseq) == n):
            return None
        lst = d.uids.tolist()
        if lst != sorted(lst) or len(set(lst)) != n:
            return None
        return d
    except (ValueError, TypeError, EOFError, KeyError, IndexError, AttributeError, OSError):
        return None
    finally:
        os.close(fd)


def _names_blob(names: list[str]) -> list[bytes]:
    out = []
    for k in range(0, len(names), 8192):
        chunk = names[k : k + 8192]
        out.append(("\n".join(chunk) + "\n").encode("utf-8", "surrogateescape"))
    return out


def save_index(dir_fd: int, d: IndexData) -> None:
    """Write the index segment by segment (no single multi-megabyte blob)."""
    n = len(d.uids)
    segs: list[list[bytes]] = [
        [d.uids.tobytes()],
        _names_blob(d.bases),
        _names_blob(d.infos),
        [bytes(d.innew)],
        [d.wsize.tobytes()],
        [d.mtime.tobytes()],
        [d.modseq.tobytes()],
    ]
    hdr = marshal.dumps(
        {
            "uidvalidity": d.uidvalidity,
            "highestmodseq": d.highestmodseq,
            "uidlist": d.uidlist_ident,
            "dirs": d.dirs,
            "count": n,
            "segments": [sum(len(x) for x in sg) for sg in segs],
        }
    )
    first = ("%s %d %s %d\n" % (_MAGIC, _VERSION, sys.byteorder, len(hdr))).encode("ascii")
    tmp = "%s.tmp.%d" % (INDEX_NAME, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        for blob in [first, hdr] + [x for sg in segs for x in sg]:
            view = memoryview(blob)
            while view:
                k = os.write(fd, view)
                view = view[k:]
    except BaseException:
        os.close(fd)
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.close(fd)
    os.rename(tmp, INDEX_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def load_cache(dir_fd: int, uidvalidity: int) -> dict[int, tuple]:
    """uid -> (base name, internal date, {key: value}); {} when absent/corrupt."""
    raw = _read_file(dir_fd, CACHE_NAME)
    if not raw:
        return {}
    try:
        magic, version, uv, entries = marshal.loads(raw)
        if magic != _CACHE_MAGIC or version != _VERSION or uv != uidvalidity or not isinstance(entries, dict):
            return {}
        return entries
    except (ValueError, TypeError, EOFError):
        return {}


def save_cache(dir_fd: int, uidvalidity: int, entries: dict[int, tuple]) -> None:
    write_atomic(dir_fd, CACHE_NAME, marshal.dumps((_CACHE_MAGIC, _VERSION, uidvalidity, entries)))


def read_state(dir_fd: int) -> dict[str, int]:
    """`imapd.state`: "1 V<uidvalidity> R<first recent uid>"."""
    raw = _read_file(dir_fd, STATE_NAME)
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
