"""APPEND and COPY/MOVE: messages written into a Maildir++ folder.

The functions are MaildirStore's, written as its methods (`self`) and kept
here because a session that only reads never calls them: every session
would otherwise load them.  The class reaches them through stand-ins
of the same names.
"""

from __future__ import annotations

import errno
import posix
import time
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import BinaryIO, Iterable, Sequence

    from imapd.store.maildir.store import MaildirStore

from imapd.store.base import AppendResult, CopyResult, NoSuchMailbox
from imapd.store.maildir.flags import normalize_flag
from imapd.store.maildir.folder import MaildirFolder, full_error
from imapd.store.maildir.mailbox import MaildirMailbox
from imapd.store.maildir.message import copy_fd, write_stored


def append(
    self: MaildirStore,
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
            f.ensure_uidlist(number_present=True)
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


def _copy_messages(self: MaildirStore, src: MaildirMailbox, uids: Sequence[int], dest: str) -> CopyResult:
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
        new, made, uidvalidity = _copy_locked(self, src, pairs, df, want_kw)
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


def _copy_locked(self: MaildirStore, src: MaildirMailbox, pairs: list[tuple[int, int]], df: MaildirFolder,
                 want_kw: set[str]) -> tuple[list[int], list[tuple[int, str, str, int, float]], int]:
    """The files and their UIDs, all or nothing, under the destination's lock."""
    sf = src._f
    with df.lock:
        df.ensure_uidlist(number_present=True)
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
                base = _copy_one(self, src, p, df, info, w)
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


def _copy_one(self: MaildirStore, src: MaildirMailbox, p: int, df: MaildirFolder, info: str, wsize: int) -> str | None:
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
