"""MaildirStore: a user's Maildir++ tree (INBOX = the root, folders = `.A.B`).

Every path is opened relative to the root's directory fd with O_NOFOLLOW, so
a symlink inside the Maildir (a folder or a message file pointing elsewhere)
is never followed; names are validated before anything touches the disk.
"""

from __future__ import annotations

import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)
import time
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from types import ModuleType
    from typing import BinaryIO, Iterable, Sequence

from imapd.store.base import (
    AppendResult,
    CopyResult,
    MailboxInfo,
    MailboxStatus,
    NoSuchMailbox,
    ReadOnlyStore,
    Store,
)
from imapd.store.maildir import layout
from imapd.store.maildir.folder import MaildirFolder
from imapd.store.maildir.layout import INBOX, O_DIR
from imapd.store.maildir.mailbox import NO_TIME, MaildirMailbox

KINDS = ("maildir", "readonly", "flat", "inbox-only")
_FOLDER_CACHE = 8


def _hierarchy() -> ModuleType:
    """The folder tree's operations (store/maildir/hierarchy.py), loaded at
    first use: a session that only reads its INBOX never needs them."""
    from imapd.store.maildir import hierarchy

    return hierarchy


def _transfer() -> ModuleType:
    """APPEND and COPY (store/maildir/transfer.py), loaded at first use."""
    from imapd.store.maildir import transfer

    return transfer


class MaildirStore(Store):
    """A Maildir++ mail store.

    `kind`: "maildir" (Maildir++ tree), "readonly" (no writes of any kind),
    "flat" (no hierarchy: delimiter None), "inbox-only" (only INBOX).
    `use_inotify=False` makes watch_fds() return [] (polling fallback);
    `use_index=False` never reads or writes imapd's own cache files;
    `lock_timeout` bounds the wait for dovecot-uidlist.lock (seconds);
    `special_use` maps mailbox names to the RFC 6154 attributes LIST gives
    them (a space-separated string: "\\Sent").
    """

    def __init__(
        self,
        root: str,
        kind: str = "maildir",
        create: bool = True,
        *,
        use_inotify: bool = True,
        use_index: bool = True,
        lock_timeout: float = 30.0,
        special_use: dict[str, str] | None = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError("unknown store kind %r" % kind)
        self.kind = kind
        self.readonly = kind == "readonly"
        self.delimiter = None if kind == "flat" else "."
        self.use_inotify = use_inotify
        self.use_index = use_index and not self.readonly
        self.lock_timeout = lock_timeout
        self.special_use = {name: frozenset(attributes.split()) for name, attributes in (special_use or {}).items()}
        self._counter = 0  # (names this process made: _next_number)
        self._host = layout.hostname()
        self._folders: dict[str, MaildirFolder] = {}
        self.root = root  # (as given: everything below goes through root_fd)
        if create and not self.readonly:
            try:
                posix.mkdir(root, 0o700)
            except FileExistsError:
                pass
            except FileNotFoundError:  # its parents are missing too (rare: `os` is not loaded for the others)
                import os

                os.makedirs(root, 0o700, exist_ok=True)
        try:
            self.root_fd = posix.open(self.root, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise NoSuchMailbox("Mail root %s does not exist" % root) from None
        if create and not self.readonly:
            for sub in ("cur", "new", "tmp"):
                try:
                    posix.mkdir(sub, 0o700, dir_fd=self.root_fd)
                except FileExistsError:
                    pass

    # ------------------------------------------------------------ helpers
    def unique_name(self) -> str:
        """`<sec>.M<usec>P<pid>Q<n>.<host>` — unique per host, as Dovecot names files."""
        t = time.time()
        sec = int(t)
        return "%d.M%dP%dQ%d.%s" % (sec, int((t - sec) * 1e6), posix.getpid(), self._next_number(), self._host)

    def _next_number(self) -> int:
        """1, 2, 3...: with the pid, what keeps this process's new names apart."""
        self._counter += 1
        return self._counter

    def new_uidvalidity(self) -> int:
        """UIDVALIDITY for a new list: the current time, but always above the
        last one this Maildir handed out (a mailbox deleted and re-created in
        the same second must not get the old value back)."""
        v = int(time.time())
        last = 0
        for name, base in (("imapd-uidvalidity", 10), ("dovecot-uidvalidity", 16)):
            try:
                fd = posix.open(name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=self.root_fd)
                try:
                    last = max(last, int(posix.read(fd, 64).strip() or b"0", base))
                finally:
                    posix.close(fd)
            except (OSError, ValueError):
                pass
        if v <= last:
            v = last + 1
        v &= 0xFFFFFFFF
        if not self.readonly:
            try:
                from imapd.store.maildir.index import write_atomic

                write_atomic(self.root_fd, "imapd-uidvalidity", b"%d\n" % v)
            except OSError:
                pass
        return v or 1

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStore("Mail store is read-only")

    def _split(self, name: str) -> list[str]:
        segs = layout.split_name(name, self.delimiter)
        return segs

    def _canon(self, segs: list[str]) -> str:
        return (self.delimiter or ".").join(segs)

    def _is_selectable_dir(self, dirname: str) -> bool:
        if dirname == "":
            return True
        if not layout.is_real_dir(dirname, self.root_fd):
            return False
        try:
            st = posix.stat(dirname + "/cur", dir_fd=self.root_fd, follow_symlinks=False)
        except OSError:
            return False
        return _stat.S_ISDIR(st.st_mode)

    def _folder(self, name: str) -> MaildirFolder:
        """The folder object for a mailbox name; NoSuchMailbox [TRYCREATE]
        style errors for what is not there or not servable."""
        segs = self._split(name)
        if self.kind == "inbox-only" and segs != [INBOX]:
            raise NoSuchMailbox("Mailbox does not exist: %s" % name)
        dirname = layout.dir_for_segments(segs)
        f = self._folders.get(dirname)
        if f is not None:
            if not f.closed and f.still_there():
                return f
            del self._folders[dirname]
            if not f.boxes:
                f.close()
        if dirname and not self._is_selectable_dir(dirname):
            raise NoSuchMailbox("Mailbox does not exist: %s" % name)
        try:
            fd = posix.open(dirname or ".", O_DIR, dir_fd=self.root_fd)
        except OSError as exc:
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise NoSuchMailbox("Mailbox does not exist: %s" % name) from None
            raise
        try:
            f = MaildirFolder(self, self._canon(segs), dirname, fd)
        except OSError as exc:
            import errno  # (here, not at start-up: loading it costs 0.1 ms)
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise NoSuchMailbox("Mailbox does not exist: %s" % name) from None
            raise
        self._folders[dirname] = f
        self._trim_folders()
        return f

    def _trim_folders(self) -> None:
        idle = [d for d, f in self._folders.items() if not f.boxes]
        while len(idle) > _FOLDER_CACHE:
            d = idle.pop(0)
            self._folders.pop(d).close()

    def _release_folder(self, f: MaildirFolder) -> None:
        if self._folders.get(f.dirname) is not f and not f.boxes:
            f.close()
        self._trim_folders()

    def _forget_dirs(self, prefix: str) -> None:
        for d in list(self._folders):
            if d == prefix or d.startswith(prefix + "."):
                f = self._folders.pop(d)
                if not f.boxes:
                    f.close()

    # -------------------------------------------------- the folder tree
    # CREATE, DELETE, RENAME, LIST and subscriptions: store/maildir/hierarchy.py
    def list_mailboxes(self) -> list[MailboxInfo]:
        return _hierarchy().list_mailboxes(self)

    def create(self, name: str) -> None:
        return _hierarchy().create(self, name)

    def delete(self, name: str) -> None:
        return _hierarchy().delete(self, name)

    def rename(self, old: str, new: str) -> None:
        return _hierarchy().rename(self, old, new)

    def subscriptions(self) -> list[str]:
        return _hierarchy().subscriptions(self)

    def subscribe(self, name: str) -> None:
        return _hierarchy().subscribe(self, name)

    def unsubscribe(self, name: str) -> None:
        return _hierarchy().unsubscribe(self, name)

    def exists(self, name: str) -> bool:
        segs = self._split(name)
        if segs == [INBOX]:
            return True
        if self.kind == "inbox-only":
            return False
        return self._is_selectable_dir(layout.dir_for_segments(segs))

    # -------------------------------------------------------- status/open
    def status(self, name: str, items: Iterable[str] | None = None) -> MailboxStatus:
        box = self.open(name, readonly=True)
        try:
            return box.status(items)
        finally:
            box.close()

    def open(self, name: str, readonly: bool = False) -> MaildirMailbox:
        f = self._folder(name)
        try:
            return MaildirMailbox(self, f, f.name, readonly or self.readonly)
        except BaseException:
            self._release_folder(f)
            raise

    # ---------------------------------------------------- append, copy
    # (store/maildir/transfer.py)
    def append(
        self,
        name: str,
        message: BinaryIO,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> AppendResult:
        return _transfer().append(self, name, message, flags, internal_date)

    def _copy_messages(self, src: MaildirMailbox, uids: Sequence[int], dest: str) -> CopyResult:
        return _transfer()._copy_messages(self, src, uids, dest)

    # -------------------------------------------------------- close
    def close(self) -> None:
        for f in list(self._folders.values()):
            for b in list(f.boxes):
                b.close()
            f.close()
        self._folders.clear()
        if self.root_fd >= 0:
            try:
                posix.close(self.root_fd)
            except OSError:
                pass
            self.root_fd = -1


__all__ = ["MaildirStore", "MaildirMailbox", "NO_TIME"]
