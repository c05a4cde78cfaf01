"""MaildirStore: a user's Maildir++ tree (INBOX = the root, folders = `.A.B`).

Every path is opened relative to the root's directory fd with O_NOFOLLOW, so
a symlink inside the Maildir (a folder or a message file pointing elsewhere)
is never followed; names are validated before anything touches the disk.
"""

from __future__ import annotations

import errno
import itertools
import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)
import time
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import BinaryIO, Iterable, Sequence

from imapd.protocol import mutf7
from imapd.store.base import (
    AppendResult,
    CopyResult,
    InvalidMailboxName,
    MailboxExists,
    MailboxInfo,
    MailboxStatus,
    NoSuchMailbox,
    ReadOnlyStore,
    Store,
    StoreError,
)
from imapd.store.maildir import layout
from imapd.store.maildir.flags import normalize_flag, split_filename
from imapd.store.maildir.folder import MaildirFolder, full_error
from imapd.store.maildir.layout import INBOX, O_DIR, O_FILE
from imapd.store.maildir.mailbox import NO_TIME, MaildirMailbox
from imapd.store.maildir.message import copy_fd, write_stored
from imapd.store.maildir.uidlist import UidList

KINDS = ("maildir", "readonly", "flat", "inbox-only")
SUBSCRIPTIONS = "subscriptions"
_SUBS_V2 = "V\t2\n\n"
_FOLDER_CACHE = 8


def _tab_escape(s: str) -> str:
    return s.replace("\x01", "\x011").replace("\t", "\x01t").replace("\r", "\x01r").replace("\n", "\x01n")


def _tab_unescape(s: str) -> str:
    if "\x01" not in s:
        return s
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\x01" and i + 1 < len(s):
            out.append({"1": "\x01", "t": "\t", "r": "\r", "n": "\n"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _touch(name: str, dir_fd: int) -> None:
    """Create an empty marker file -- never through a symlink planted there
    (O_CREAT follows one and would create its target, wherever it points)."""
    try:
        fd = posix.open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidMailboxName("%s in that folder is a symbolic link" % name) from None
        raise
    posix.close(fd)


class MaildirStore(Store):
    """A Maildir++ mail store.

    `kind`: "maildir" (Maildir++ tree), "readonly" (no writes of any kind),
    "flat" (no hierarchy: delimiter None), "inbox-only" (only INBOX).
    `use_inotify=False` makes watch_fds() return [] (polling fallback);
    `use_index=False` never reads or writes imapd's own cache files;
    `lock_timeout` bounds the wait for dovecot-uidlist.lock (seconds).
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
    ) -> None:
        if kind not in KINDS:
            raise ValueError("unknown store kind %r" % kind)
        self.kind = kind
        self.readonly = kind == "readonly"
        self.delimiter = None if kind == "flat" else "."
        self.use_inotify = use_inotify
        self.use_index = use_index and not self.readonly
        self.lock_timeout = lock_timeout
        self._counter = itertools.count(1)
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
        return "%d.M%dP%dQ%d.%s" % (sec, int((t - sec) * 1e6), posix.getpid(), next(self._counter), self._host)

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
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise NoSuchMailbox("Mailbox does not exist: %s" % name) from None
            raise
        try:
            f = MaildirFolder(self, self._canon(segs), dirname, fd)
        except OSError as exc:
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

    # -------------------------------------------------------- listing
    def _folder_dirs(self) -> list[tuple[str, str]]:
        """(dirname, mailbox name) of every folder directory we can serve."""
        out = []
        with posix.scandir(self.root_fd) as it:
            for e in it:
                if not e.name.startswith(".") or e.name in (".", ".."):
                    continue
                try:
                    if not e.is_dir(follow_symlinks=False):
                        continue  # a symlinked folder is never served
                except OSError:
                    continue
                nm = layout.name_for_dir(e.name, self.delimiter)
                if nm is not None:
                    out.append((e.name, nm))
        return out

    def list_mailboxes(self) -> list[MailboxInfo]:
        sel: dict[str, bool] = {INBOX: True}
        if self.kind != "inbox-only":
            for d, nm in self._folder_dirs():
                sel[nm] = self._is_selectable_dir(d)
        delim = self.delimiter
        parents: set[str] = set()
        if delim:
            for nm in list(sel):
                parts = nm.split(delim)
                for k in range(1, len(parts)):
                    p = delim.join(parts[:k])
                    parents.add(p)
                    if p not in sel:
                        sel[p] = False
        return [
            MailboxInfo(name=nm, selectable=s, has_children=nm in parents)
            for nm, s in sorted(sel.items(), key=lambda x: (x[0] != INBOX, x[0]))
        ]

    def exists(self, name: str) -> bool:
        segs = self._split(name)
        if segs == [INBOX]:
            return True
        if self.kind == "inbox-only":
            return False
        return self._is_selectable_dir(layout.dir_for_segments(segs))

    # -------------------------------------------------------- create
    def _make_folder_dir(self, dirname: str) -> bool:
        """Create a complete folder (cur/new/tmp/maildirfolder) and rename it
        into place, so nobody ever sees half of one.  False if it existed."""
        tmp = "imapd-create.%d.%d" % (posix.getpid(), next(self._counter))
        posix.mkdir(tmp, 0o700, dir_fd=self.root_fd)
        try:
            tfd = posix.open(tmp, O_DIR, dir_fd=self.root_fd)
            try:
                for sub in ("cur", "new", "tmp"):
                    posix.mkdir(sub, 0o700, dir_fd=tfd)
                _touch("maildirfolder", tfd)
            finally:
                posix.close(tfd)
            try:
                posix.rename(tmp, dirname, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                    raise
        finally:
            self._rmtree(tmp)
        # a directory is there already: make it a mailbox if it is not one
        if not layout.is_real_dir(dirname, self.root_fd):
            raise InvalidMailboxName("A file with that name is in the way")
        if self._is_selectable_dir(dirname):
            return False
        fd = posix.open(dirname, O_DIR, dir_fd=self.root_fd)
        try:
            for sub in ("cur", "new", "tmp"):
                try:
                    posix.mkdir(sub, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            _touch("maildirfolder", fd)
        finally:
            posix.close(fd)
        return True

    def _rmtree(self, name: str) -> None:
        """Remove a directory tree under the root without following symlinks."""
        try:
            st = posix.stat(name, dir_fd=self.root_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not _stat.S_ISDIR(st.st_mode):
            posix.unlink(name, dir_fd=self.root_fd)
            return
        import shutil

        shutil.rmtree(name, dir_fd=self.root_fd)

    def create(self, name: str) -> None:
        segs = self._split(name)
        if segs == [INBOX]:
            raise MailboxExists("Mailbox already exists: INBOX")
        if self.kind == "inbox-only":
            raise StoreError("Only INBOX exists here", code="CANNOT")
        self._check_writable()
        start = 2 if segs[0] == INBOX else 1
        for k in range(start, len(segs)):
            self._make_folder_dir(layout.dir_for_segments(segs[:k]))
        if not self._make_folder_dir(layout.dir_for_segments(segs)):
            raise MailboxExists("Mailbox already exists: %s" % name)

    # -------------------------------------------------------- delete
    def _has_children(self, dirname: str) -> bool:
        prefix = dirname + "."
        with posix.scandir(self.root_fd) as it:
            for e in it:
                if e.name.startswith(prefix):
                    try:
                        if e.is_dir(follow_symlinks=False):
                            return True
                    except OSError:
                        pass
        return False

    def delete(self, name: str) -> None:
        segs = self._split(name)
        if segs == [INBOX]:
            raise StoreError("INBOX can't be deleted", code="CANNOT")
        if self.kind == "inbox-only":
            raise StoreError("Only INBOX exists here", code="CANNOT")
        self._check_writable()
        dirname = layout.dir_for_segments(segs)
        if not layout.is_real_dir(dirname, self.root_fd):
            if self._has_children(dirname):
                raise StoreError("Mailbox has children and is \\Noselect already: %s" % name, code="CANNOT")
            raise NoSuchMailbox("Mailbox does not exist: %s" % name)
        if not self._is_selectable_dir(dirname) and self._has_children(dirname):
            raise StoreError("Mailbox has children and is \\Noselect already: %s" % name, code="CANNOT")
        # Like Dovecot on Maildir++: the folder's own directory goes (its mail
        # with it); children are sibling directories and stay, so the name
        # lives on as an implied \Noselect parent.
        trash = "imapd-trashed.%d.%d" % (posix.getpid(), next(self._counter))
        try:
            posix.rename(dirname, trash, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
        except FileNotFoundError:
            raise NoSuchMailbox("Mailbox does not exist: %s" % name) from None
        self._forget_dirs(dirname)
        self._rmtree(trash)

    # -------------------------------------------------------- rename
    def rename(self, old: str, new: str) -> None:
        so = self._split(old)
        sn = self._split(new)
        if self.kind == "inbox-only":
            raise StoreError("Only INBOX exists here", code="CANNOT")
        self._check_writable()
        if sn == [INBOX]:
            raise MailboxExists("Mailbox already exists: INBOX")
        if so == [INBOX]:
            self._rename_inbox(sn)
            return
        if sn[: len(so)] == so:
            raise StoreError("Can't rename a mailbox into itself", code="CANNOT")
        d_old = layout.dir_for_segments(so)
        d_new = layout.dir_for_segments(sn)
        sources = []
        with posix.scandir(self.root_fd) as it:
            for e in it:
                if e.name == d_old or e.name.startswith(d_old + "."):
                    try:
                        if e.is_dir(follow_symlinks=False):
                            sources.append(e.name)
                    except OSError:
                        pass
        if not sources:
            raise NoSuchMailbox("Mailbox does not exist: %s" % old)
        pairs = []
        for s in sorted(sources):
            t = d_new + s[len(d_old) :]
            if len(t.encode()) > layout.NAME_MAX:
                raise InvalidMailboxName("Mailbox name too long")
            try:
                posix.stat(t, dir_fd=self.root_fd, follow_symlinks=False)
                raise MailboxExists("Mailbox already exists: %s" % new)
            except FileNotFoundError:
                pass
            pairs.append((s, t))
        done = 0
        for s, t in pairs:
            try:
                posix.rename(s, t, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
                done += 1
            except FileNotFoundError:
                # renamed or deleted by someone else since we listed it
                if not done:
                    raise NoSuchMailbox("Mailbox does not exist: %s" % old) from None
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise MailboxExists("Mailbox already exists: %s" % new) from None
                raise
        self._forget_dirs(d_old)
        self._forget_dirs(d_new)

    def _rename_inbox(self, sn: list[str]) -> None:
        """RENAME INBOX: its messages move to a new folder (keeping their UIDs
        there, under a new UIDVALIDITY); INBOX stays, empty, with its
        UIDVALIDITY and next UID, so its UIDs are never reused."""
        d_new = layout.dir_for_segments(sn)
        try:  # any entry at all (directory, symlink, file) blocks the name
            posix.lstat(d_new, dir_fd=self.root_fd)
        except FileNotFoundError:
            pass
        else:
            raise MailboxExists("Mailbox already exists: %s" % self._canon(sn))
        inbox = self._folder(INBOX)
        tmp = "imapd-create.%d.%d" % (posix.getpid(), next(self._counter))
        posix.mkdir(tmp, 0o700, dir_fd=self.root_fd)
        try:
            tfd = posix.open(tmp, O_DIR, dir_fd=self.root_fd)
            try:
                subfd = {}
                for sub in ("cur", "new", "tmp"):
                    posix.mkdir(sub, 0o700, dir_fd=tfd)
                    subfd[sub] = posix.open(sub, O_DIR, dir_fd=tfd)
                _touch("maildirfolder", tfd)
                with inbox.lock:
                    inbox.ensure_uidlist()
                    ul = inbox.uidlist
                    ul.load()
                    moved: set[str] = set()
                    ok = inbox.begin_own()
                    for sub, sfd in (("new", inbox.new_fd), ("cur", inbox.cur_fd)):
                        with posix.scandir(sfd) as it:
                            names = [e.name for e in it if e.is_file(follow_symlinks=False)]
                        for nm in names:
                            try:
                                posix.rename(nm, nm, src_dir_fd=sfd, dst_dir_fd=subfd[sub])
                            except FileNotFoundError:
                                continue
                            moved.add(split_filename(nm)[0])
                    inbox.end_own(ok)
                    inbox.expected = [None, None]
                    # keyword letters must keep their meaning in the new folder
                    try:
                        kfd = posix.open("dovecot-keywords", O_FILE, dir_fd=inbox.fd)
                        try:
                            data = posix.read(kfd, 1 << 20)
                        finally:
                            posix.close(kfd)
                        wfd = posix.open("dovecot-keywords", posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o600, dir_fd=tfd)
                        try:
                            posix.write(wfd, data)
                        finally:
                            posix.close(wfd)
                    except FileNotFoundError:
                        pass
                    keep = [(u, b) for u, b in zip(ul.uids, ul.bases) if b in moved]
                    nl = UidList(tfd)
                    nl.uidvalidity = self.new_uidvalidity()
                    nl.next_uid = ul.next_uid
                    nl.set_records([u for u, _ in keep], [b for _, b in keep])
                    nl.rewrite()
                    nl.close()
                    try:
                        posix.rename(tmp, d_new, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
                    except OSError:
                        # the name was taken meanwhile: put every message back
                        # into INBOX before the temporary folder is removed
                        for sub, sfd in (("new", inbox.new_fd), ("cur", inbox.cur_fd)):
                            with posix.scandir(subfd[sub]) as it:
                                back = [e.name for e in it]
                            for nm in back:
                                posix.rename(nm, nm, src_dir_fd=subfd[sub], dst_dir_fd=sfd)
                        raise MailboxExists("Mailbox already exists: %s" % self._canon(sn)) from None
                    ul.rewrite(drop={u for u, _ in keep})
                for fd in subfd.values():
                    posix.close(fd)
            finally:
                posix.close(tfd)
        finally:
            self._rmtree(tmp)
        self._forget_dirs(d_new)

    # -------------------------------------------------- subscriptions
    def _read_subscriptions(self) -> tuple[int, list[str]]:
        try:
            fd = posix.open(SUBSCRIPTIONS, O_FILE, dir_fd=self.root_fd)
        except FileNotFoundError:
            return 2, []
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError("%s is a symbolic link; it is not followed" % SUBSCRIPTIONS, code="CANNOT") from None
            raise
        try:
            from imapd.store.maildir.index import read_all

            data = read_all(fd)
        finally:
            posix.close(fd)
        text = data.decode("utf-8", "surrogateescape")
        version = 1
        if text.startswith(_SUBS_V2):
            version = 2
            text = text[len(_SUBS_V2) :]
        out = []
        for line in text.split("\n"):
            if not line:
                continue
            # Dovecot 2.3 ("V\t2"): one level per tab-separated field; every
            # version stores the levels in modified UTF-7
            levels = [_tab_unescape(p) for p in line.split("\t")] if version == 2 else [line]
            dec = []
            for lv in levels:
                try:
                    dec.append(mutf7.decode(lv))
                except ValueError:
                    dec.append(lv)  # not ours to judge: keep it as written
            out.append((self.delimiter or ".").join(dec))
        return version, out

    def subscriptions(self) -> list[str]:
        return self._read_subscriptions()[1]

    def _write_subscriptions(self, name: str, add: bool) -> None:
        self._check_writable()
        segs = self._split(name)
        canon = INBOX if segs == [INBOX] else (self.delimiter or ".").join(segs)
        from imapd.store.maildir.dotlock import DotLock

        lock = DotLock(self.root_fd, SUBSCRIPTIONS, stale_timeout=30.0, timeout=self.lock_timeout)
        with lock:
            version, names = self._read_subscriptions()
            if add:
                if canon in names:
                    return
                names.append(canon)
            else:
                if canon not in names:
                    return
                names = [n for n in names if n != canon]
            delim = self.delimiter or "."

            def levels(n: str) -> list[str]:
                return [mutf7.encode(p) for p in (n.split(delim) if n != INBOX else [n])]

            if version == 2:
                body = _SUBS_V2 + "".join("\t".join(_tab_escape(p) for p in levels(n)) + "\n" for n in names)
            else:
                body = "".join(delim.join(levels(n)) + "\n" for n in names)
            tmp = "subscriptions.tmp.%d" % posix.getpid()
            fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600, dir_fd=self.root_fd)
            try:
                posix.write(fd, body.encode("utf-8", "surrogateescape"))
                posix.fsync(fd)
            finally:
                posix.close(fd)
            posix.rename(tmp, SUBSCRIPTIONS, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)

    def subscribe(self, name: str) -> None:
        self._write_subscriptions(name, True)

    def unsubscribe(self, name: str) -> None:
        self._write_subscriptions(name, False)

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

    # -------------------------------------------------------- append
    def append(
        self,
        name: str,
        message: BinaryIO,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> AppendResult:
        self._check_writable()
        try:
            f = self._folder(name)
        except NoSuchMailbox as exc:
            raise NoSuchMailbox(exc.text, code="TRYCREATE") from None
        want = frozenset(normalize_flag(x) for x in flags if x.lower() != "\\recent")
        tmp, fd = f.new_tmp_file()
        try:
            try:
                size, wsize = write_stored(fd, message)
                t = time.time() if internal_date is None else internal_date
                posix.utime(fd, (t, t))
                posix.fsync(fd)
            finally:
                posix.close(fd)
        except OSError as exc:
            f.unlink_tmp(tmp)
            err = full_error(exc)
            if err is not None:
                raise err from None
            raise
        except BaseException:
            f.unlink_tmp(tmp)
            raise
        try:
            with f.lock:
                f.ensure_uidlist()
                missing = f.codec.missing_keywords(want)
                if missing:
                    f.keywords.create(missing)
                info = f.codec.build_info("2,", want)
                ok = f.begin_own()
                base = f.link_into_cur(tmp, f.tmp_fd, ",S=%d,W=%d" % (size, wsize), info)
                try:
                    uid = f.uidlist.append([base])[0]
                except BaseException:
                    posix.unlink(base + ":" + info, dir_fd=f.cur_fd)
                    raise
                f.end_own(ok)
                uidvalidity = f.uidlist.uidvalidity
        except OSError as exc:
            # (the lock file, the keywords file or the uidlist record could
            # not be written: the message was taken back above)
            err = full_error(exc)
            if err is not None:
                raise err from None
            raise
        finally:
            f.unlink_tmp(tmp)
        f.add_log(("add", uid, base, info, 0, wsize, float(t)))
        self._release_folder(f)
        return AppendResult(uidvalidity=uidvalidity, uid=uid)

    # -------------------------------------------------------- copy
    def _copy_messages(self, src: MaildirMailbox, uids: Sequence[int], dest: str) -> CopyResult:
        self._check_writable()
        try:
            df = self._folder(dest)
        except NoSuchMailbox as exc:
            raise NoSuchMailbox(exc.text, code="TRYCREATE") from None
        sf = src._f
        pairs = src._copy_sources(uids)
        want_kw: set[str] = set()
        for _, p in pairs:
            want_kw |= sf.codec.flags(src._infos[p])
        src_done: list[int] = []
        dst_uids: list[int] = []
        added: list[tuple] = []
        try:
            new, made, uidvalidity = self._copy_locked(src, pairs, df, want_kw)
        except OSError as exc:
            err = full_error(exc)
            if err is not None:
                raise err from None
            raise
        for (u, base, info, w, mt), nu in zip(made, new):
            src_done.append(u)
            dst_uids.append(nu)
            added.append(("add", nu, base, info, 0, w, mt))
        for ev in added:
            df.add_log(ev)
        self._release_folder(df)
        return CopyResult(uidvalidity=uidvalidity, source_uids=tuple(src_done), dest_uids=tuple(dst_uids))

    def _copy_locked(self, src: MaildirMailbox, pairs: list[tuple[int, int]], df: MaildirFolder,
                     want_kw: set[str]) -> tuple[list[int], list[tuple[int, str, str, int, float]], int]:
        """The files and their UIDs, all or nothing, under the destination's lock."""
        sf = src._f
        with df.lock:
            df.ensure_uidlist()
            missing = df.codec.missing_keywords(frozenset(want_kw))
            if missing:
                df.keywords.create(missing)
            ok = df.begin_own()
            items: list[str] = []
            made: list[tuple[int, str, str, int, float]] = []
            try:
                for u, p in pairs:
                    info, _ = sf.codec.translate_info(src._infos[p], df.codec)
                    w = src._wsize[p]
                    base = self._copy_one(src, p, df, info, w)
                    if base is None:
                        continue  # vanished meanwhile
                    items.append(base)
                    made.append((u, base, info, w, src._mtime[p]))
                new = df.uidlist.append(items) if items else []
            except BaseException:
                for _, base, info, _, _ in made:
                    try:
                        posix.unlink(base + ":" + info, dir_fd=df.cur_fd)
                    except OSError:
                        pass
                raise
            df.end_own(ok)
            return new, made, df.uidlist.uidvalidity

    def _copy_one(self, src: MaildirMailbox, p: int, df: MaildirFolder, info: str, wsize: int) -> str | None:
        """Hard-link one message into df/cur (same file system), else copy it
        through df/tmp keeping its mtime (internal date).  Returns the new base."""
        suffix = ""
        sb = src._bases[p]
        i = sb.find(",S=")
        if i >= 0:
            suffix = sb[i:]  # keep ,S=/,W= size hints (same content)
        elif wsize >= 0:
            suffix = ",W=%d" % wsize
        for attempt in range(2):
            try:
                return df.link_into_cur(src._filename(p), src._dirfd(p), suffix, info)
            except FileNotFoundError:
                if attempt:
                    return None
                found = src._relocate()
                if src._bases[p] not in found:
                    return None
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                    raise
                break
        # different file system (or links not allowed): copy the bytes
        try:
            sfd = src._open_file(p)
        except Exception:
            return None
        try:
            tmp, tfd = df.new_tmp_file()
        except BaseException:
            posix.close(sfd)
            raise
        try:
            try:
                copy_fd(sfd, tfd)
                st = posix.fstat(sfd)
                posix.utime(tfd, ns=(st.st_atime_ns, st.st_mtime_ns))
                posix.fsync(tfd)
            finally:
                posix.close(tfd)
                posix.close(sfd)
            return df.link_into_cur(tmp, df.tmp_fd, suffix, info)
        finally:
            df.unlink_tmp(tmp)

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
