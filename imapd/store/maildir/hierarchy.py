"""CREATE, DELETE, RENAME, LIST and subscriptions: a Maildir++ store's folder tree.

The functions are MaildirStore's, written as its methods (`self`) and kept
here because a session that only reads its INBOX never calls them: every
session would otherwise load them.  The class reaches them through stand-ins
of the same names.
"""

from __future__ import annotations

import errno
import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from imapd.store.maildir.store import MaildirStore

from imapd.protocol import mutf7
from imapd.store.base import InvalidMailboxName, MailboxExists, MailboxInfo, NoSuchMailbox, StoreError
from imapd.store.maildir import layout
from imapd.store.maildir.flags import split_filename
from imapd.store.maildir.layout import INBOX, O_DIR, O_FILE
from imapd.store.maildir.uidlist import UidList

SUBSCRIPTIONS = "subscriptions"
_SUBS_V2 = "V\t2\n\n"


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


def _folder_dirs(self: MaildirStore) -> list[tuple[str, str]]:
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


def list_mailboxes(self: MaildirStore) -> list[MailboxInfo]:
    sel: dict[str, bool] = {INBOX: True}
    if self.kind != "inbox-only":
        for d, nm in _folder_dirs(self):
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
    special = self.special_use
    none: frozenset[str] = frozenset()
    return [
        MailboxInfo(name=nm, selectable=s, has_children=nm in parents, special_use=special.get(nm, none))
        for nm, s in sorted(sel.items(), key=lambda x: (x[0] != INBOX, x[0]))
    ]


def _make_folder_dir(self: MaildirStore, dirname: str) -> bool:
    """Create a complete folder (cur/new/tmp/maildirfolder) and rename it
    into place, so nobody ever sees half of one.  False if it existed."""
    tmp = "imapd-create.%d.%d" % (posix.getpid(), self._next_number())
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
        _rmtree(self, tmp)
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


def _rmtree(self: MaildirStore, name: str) -> None:
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


def create(self: MaildirStore, name: str) -> None:
    segs = self._split(name)
    if segs == [INBOX]:
        raise MailboxExists("Mailbox already exists: INBOX")
    if self.kind == "inbox-only":
        raise StoreError("Only INBOX exists here", code="CANNOT")
    self._check_writable()
    start = 2 if segs[0] == INBOX else 1
    for k in range(start, len(segs)):
        _make_folder_dir(self, layout.dir_for_segments(segs[:k]))
    if not _make_folder_dir(self, layout.dir_for_segments(segs)):
        raise MailboxExists("Mailbox already exists: %s" % name)


def _has_children(self: MaildirStore, dirname: str) -> bool:
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


def delete(self: MaildirStore, name: str) -> None:
    segs = self._split(name)
    if segs == [INBOX]:
        raise StoreError("INBOX can't be deleted", code="CANNOT")
    if self.kind == "inbox-only":
        raise StoreError("Only INBOX exists here", code="CANNOT")
    self._check_writable()
    dirname = layout.dir_for_segments(segs)
    if not layout.is_real_dir(dirname, self.root_fd):
        if _has_children(self, dirname):
            raise StoreError("Mailbox has children and is \\Noselect already: %s" % name, code="CANNOT")
        raise NoSuchMailbox("Mailbox does not exist: %s" % name)
    if not self._is_selectable_dir(dirname) and _has_children(self, dirname):
        raise StoreError("Mailbox has children and is \\Noselect already: %s" % name, code="CANNOT")
    # Like Dovecot on Maildir++: the folder's own directory goes (its mail
    # with it); children are sibling directories and stay, so the name
    # lives on as an implied \Noselect parent.
    trash = "imapd-trashed.%d.%d" % (posix.getpid(), self._next_number())
    try:
        posix.rename(dirname, trash, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
    except FileNotFoundError:
        raise NoSuchMailbox("Mailbox does not exist: %s" % name) from None
    self._forget_dirs(dirname)
    _rmtree(self, trash)


def rename(self: MaildirStore, old: str, new: str) -> None:
    so = self._split(old)
    sn = self._split(new)
    if self.kind == "inbox-only":
        raise StoreError("Only INBOX exists here", code="CANNOT")
    self._check_writable()
    if sn == [INBOX]:
        raise MailboxExists("Mailbox already exists: INBOX")
    if so == [INBOX]:
        _rename_inbox(self, sn)
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


def _rename_inbox(self: MaildirStore, sn: list[str]) -> None:
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
    tmp = "imapd-create.%d.%d" % (posix.getpid(), self._next_number())
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
        _rmtree(self, tmp)
    self._forget_dirs(d_new)


def _read_subscriptions(self: MaildirStore) -> tuple[int, list[str]]:
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


def subscriptions(self: MaildirStore) -> list[str]:
    return _read_subscriptions(self)[1]


def _write_subscriptions(self: MaildirStore, name: str, add: bool) -> None:
    self._check_writable()
    segs = self._split(name)
    canon = INBOX if segs == [INBOX] else (self.delimiter or ".").join(segs)
    from imapd.store.maildir.dotlock import DotLock

    lock = DotLock(self.root_fd, SUBSCRIPTIONS, stale_timeout=30.0, timeout=self.lock_timeout)
    with lock:
        version, names = _read_subscriptions(self)
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


def subscribe(self: MaildirStore, name: str) -> None:
    _write_subscriptions(self, name, True)


def unsubscribe(self: MaildirStore, name: str) -> None:
    _write_subscriptions(self, name, False)
