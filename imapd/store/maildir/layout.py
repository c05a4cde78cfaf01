"""Maildir++ layout: mailbox names <-> directory names, and the checks that keep
every path inside the mail root.

INBOX is the root directory itself; a folder "A.B" (wire delimiter ".") lives in
the sibling directory ".A.B" of the root, each level in modified UTF-7, exactly
as Dovecot and Courier store it.  Names are refused *before* anything touches
the disk when they could escape the root or be misread by another program.
"""

from __future__ import annotations

import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)

from imapd.protocol import mutf7
from imapd.store.base import InvalidMailboxName

INBOX = "INBOX"
DELIM = "."
NAME_MAX = 255          # bytes in one directory entry (Linux)
MAX_NAME_CHARS = 1000   # a whole mailbox name, Unicode characters
MAX_DEPTH = 40

# Directory-open flags: never follow a symlink, never keep an fd across exec.
O_DIR = posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC
O_FILE = posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC | posix.O_NONBLOCK


def _check_segment(seg: str, whole: str) -> None:
    if seg == "":
        raise InvalidMailboxName("Empty level in mailbox name: %r" % whole)
    for ch in seg:
        o = ord(ch)
        if o < 0x20 or 0x7F <= o < 0xA0 or ch in "/\\":
            raise InvalidMailboxName("Mailbox name contains a forbidden character")
        if 0xD800 <= o <= 0xDFFF or o in (0xFFFE, 0xFFFF, 0x2028, 0x2029):
            raise InvalidMailboxName("Mailbox name contains a forbidden character")
    if seg in (".", "..") or seg.startswith("."):
        raise InvalidMailboxName("Mailbox name level may not start with '.'")
    if seg.startswith("~"):
        raise InvalidMailboxName("Mailbox name level may not start with '~'")
    if "*" in seg or "%" in seg:
        raise InvalidMailboxName("Mailbox name may not contain list wildcards")


def split_name(name: str, delimiter: str | None) -> list[str]:
    """Validate `name` and return its levels (["INBOX"] for INBOX).

    Raises InvalidMailboxName for anything that is not a safe Maildir++ name:
    empty levels (leading, trailing or doubled delimiter), "/", "\\", NUL and
    other control characters, "." / ".." / dot-leading levels, absolute paths,
    wildcards, names too long for one directory entry.
    """
    if not isinstance(name, str) or name == "":
        raise InvalidMailboxName("Empty mailbox name")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidMailboxName("Mailbox name too long")
    if name.upper() == INBOX:
        return [INBOX]
    if delimiter is None:
        if DELIM in name:
            raise InvalidMailboxName("Hierarchy is not supported here: '.' not allowed")
        segs = [name]
    else:
        segs = name.split(delimiter)
        if len(segs) > MAX_DEPTH:
            raise InvalidMailboxName("Mailbox hierarchy too deep")
        if segs[0].upper() == INBOX:
            segs[0] = INBOX  # "inbox.x" and "INBOX.x" are one mailbox, as in Dovecot
    for seg in segs:
        _check_segment(seg, name)
    dirname = dir_for_segments(segs)
    if len(dirname.encode("ascii")) > NAME_MAX:
        raise InvalidMailboxName("Mailbox name too long")
    return segs


def normalize(name: str, delimiter: str | None) -> str:
    """The canonical spelling of a valid name (INBOX folded)."""
    segs = split_name(name, delimiter)
    return (delimiter or "").join(segs) if len(segs) > 1 else segs[0]


def dir_for_segments(segs: list[str]) -> str:
    """Directory entry (relative to the root) for a split name; "" for INBOX."""
    if segs == [INBOX]:
        return ""
    try:
        return "." + DELIM.join(mutf7.encode(s) for s in segs)
    except ValueError as exc:
        raise InvalidMailboxName("Mailbox name is not valid Unicode") from exc


def dir_for_name(name: str, delimiter: str | None) -> str:
    """Validate and map a mailbox name to its directory entry ("" = root)."""
    return dir_for_segments(split_name(name, delimiter))


def name_for_dir(entry: str, delimiter: str | None) -> str | None:
    """Map a root directory entry ".A.B" back to "A.B"; None if it is not a
    folder we can serve (bad modified UTF-7, empty levels, flat store with
    hierarchy, our own temporary directories)."""
    if len(entry) < 2 or entry[0] != "." or entry in ("..",):
        return None
    segs = entry[1:].split(DELIM)
    if delimiter is None and len(segs) > 1:
        return None
    out = []
    for seg in segs:
        if seg == "":
            return None
        try:
            dec = mutf7.decode(seg)
        except ValueError:
            return None
        out.append(dec)
    name = (delimiter or DELIM).join(out)
    try:
        split_name(name, delimiter)
    except InvalidMailboxName:
        return None
    if out[0].upper() == INBOX and len(out) == 1:
        return None  # a ".INBOX" folder would shadow the real INBOX
    return name


def open_dir(name: str, dir_fd: int | None = None) -> int:
    """Open a directory without following a symlink at the last component."""
    return posix.open(name, O_DIR, dir_fd=dir_fd)


def is_real_dir(name: str, dir_fd: int) -> bool:
    """True if `name` is a directory (not a symlink to one) under dir_fd."""
    try:
        st = posix.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return _stat.S_ISDIR(st.st_mode)


def hostname() -> str:
    """Host name as used in Maildir file names and dotlocks (no '/' or ':')."""
    host = posix.uname().nodename or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072")


def lock_hostname() -> str:
    """Host name exactly as written inside dotlock files ("<pid>:<host>")."""
    return posix.uname().nodename or "localhost"
