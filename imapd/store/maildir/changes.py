"""STORE and EXPUNGE: a Maildir mailbox's flag changes (file renames) and removals.

The functions are MaildirMailbox's, written as its methods (`self`) and kept
here because a session that only reads never calls them: every session
would otherwise load them.  The class reaches them through stand-ins
of the same names.
"""

from __future__ import annotations

import posix
import sys
from itertools import compress
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Iterable, Sequence

    from imapd.store.maildir.mailbox import MaildirMailbox

from imapd.store.maildir.flags import flag_letters, normalize_flag
from imapd.store.maildir.folder import full_error

_intern = sys.intern


def store_flags(self: MaildirMailbox, uids: Iterable[int], mode: str, flags: Iterable[str]) -> dict[int, frozenset[str]]:
    self._require_rw()
    if mode not in ("set", "add", "remove"):
        raise ValueError("mode must be set, add or remove")
    want = frozenset(normalize_flag(x) for x in flags if x.lower() != "\\recent")
    f = self._f
    codec = f.codec
    uids = uids if isinstance(uids, list) else list(uids)
    lo = self._pos(uids[0]) if uids else -1
    positions: Sequence[int]
    if lo >= 0 and self._uids[lo : lo + len(uids)].tolist() == uids:
        positions = range(lo, lo + len(uids))  # a run of messages (STORE 1:*)
    else:
        positions = [p for p in map(self._pos, uids) if p >= 0]
    if not positions:
        return {}
    if mode != "remove":
        missing = codec.missing_keywords(want)
        if missing:
            with f.lock:
                f.ensure_uidlist()
                f.keywords.create(missing)
    # Decide per distinct info suffix (a mailbox has few), then visit only
    # the messages whose file must be renamed: STORE +FLAGS (\Seen) on
    # 100,000 mostly seen messages looks at the few unseen ones only.
    infos = self._infos
    picked = infos[lo : lo + len(positions)] if isinstance(positions, range) else [infos[p] for p in positions]
    renamed: set[str] = set()
    old_flags = {info: codec.flags(info) for info in set(picked)}
    for info, old in old_flags.items():
        new = want if mode == "set" else (old | want if mode == "add" else old - want)
        if new != old and codec.build_info(info, new) != info:
            renamed.add(info)
    todo = list(compress(positions, map(renamed.__contains__, picked)))
    if 1 in self._innew:
        todo = sorted(set(todo) | {p for p in positions if self._innew[p]})
    uids = self._uids
    # (flags by suffix looked up in C: a Python call per message was most of
    # STORE 1:* +FLAGS.SILENT (\Seen) on a mailbox of 10,000 mostly seen)
    result: dict[int, frozenset[str]] = dict(zip(map(uids.__getitem__, positions), map(old_flags.__getitem__, picked)))
    del picked, old_flags
    log = len(f.boxes) > 1
    ok = f.begin_own()
    changed = 0
    retry: list[int] = []
    self._hms += 1
    ms = self._hms
    # old suffix -> (new suffix, its flags), worked out once per suffix:
    # the loop below is one rename per message and little else
    plan: dict[str, tuple[str, frozenset[str]]] = {}
    infos, bases, innew, uids_arr, modseq = self._infos, self._bases, self._innew, self._uids, self._modseq
    cur_fd, new_fd = f.cur_fd, f.new_fd
    rename = posix.rename
    for p in todo:
        old_info = infos[p]
        step = plan.get(old_info)
        if step is None:
            old = codec.flags(old_info)
            new = want if mode == "set" else (old | want if mode == "add" else old - want)
            new_info = old_info if new == old else _intern(codec.build_info(old_info, new))
            step = plan[old_info] = (new_info, codec.flags(new_info))
        new_info = step[0]
        in_new = innew[p]
        if new_info == old_info and not in_new:
            result[uids_arr[p]] = step[1]
            continue
        base = bases[p]
        try:
            rename(base + ":" + old_info if old_info else base, base + ":" + new_info,
                   src_dir_fd=new_fd if in_new else cur_fd, dst_dir_fd=cur_fd)
        except FileNotFoundError:
            retry.append(p)
            continue
        changed += 1
        infos[p] = new_info
        innew[p] = 0
        modseq[p] = ms
        result[uids_arr[p]] = step[1]
        if log:
            f.add_log(("flags", uids_arr[p], new_info, id(self)))
    if retry:
        found = self._relocate()
        for p in retry:
            if self._bases[p] not in found:
                result.pop(self._uids[p], None)
                continue  # vanished: the next sync reports it
            old_info = self._infos[p]
            old = codec.flags(old_info)
            new = want if mode == "set" else (old | want if mode == "add" else old - want)
            new_info = _intern(codec.build_info(old_info, new))
            if new_info != old_info or self._innew[p]:
                try:
                    posix.rename(
                        self._filename(p),
                        self._bases[p] + ":" + new_info,
                        src_dir_fd=self._dirfd(p),
                        dst_dir_fd=f.cur_fd,
                    )
                except FileNotFoundError:
                    result.pop(self._uids[p], None)
                    continue
                self._infos[p] = new_info
                self._innew[p] = 0
                self._modseq[p] = ms
                changed += 1
                if log:
                    f.add_log(("flags", self._uids[p], new_info, id(self)))
            self._pending_flags.discard(self._uids[p])
            result[self._uids[p]] = codec.flags(new_info)
    if changed:
        # (a long batch may have raced with someone else's rename: the
        # verification scan VERIFY_AFTER seconds later catches that)
        f.end_own(ok)
        self._index_dirty = True
    else:
        self._hms -= 1
    return result


def expunge(self: MaildirMailbox, uids: Iterable[int] | None = None) -> list[int]:
    self._require_rw()
    codec = self._f.codec
    if uids is None:
        deleted = {i for i in set(self._infos) if "\\Deleted" in codec.flags(i)}
        positions = [p for p, i in enumerate(self._infos) if i in deleted]
    else:
        positions = []
        for u in uids:
            p = self._pos(u)
            if p >= 0 and "\\Deleted" in codec.flags(self._infos[p]):
                positions.append(p)
    return _remove_positions(self, sorted(set(positions)), require_deleted=True)


def remove(self: MaildirMailbox, uids: Iterable[int]) -> list[int]:
    self._require_rw()
    positions = sorted({p for p in (self._pos(u) for u in uids) if p >= 0})
    return _remove_positions(self, positions, require_deleted=False)


def _remove_positions(self: MaildirMailbox, positions: list[int], require_deleted: bool) -> list[int]:
    if not positions:
        return []
    f = self._f
    ok = f.begin_own()
    removed: list[int] = []
    retry: list[int] = []
    uids = self._uids
    for p in positions:
        try:
            posix.unlink(self._filename(p), dir_fd=self._dirfd(p))
        except FileNotFoundError:
            retry.append(p)
            continue
        removed.append(uids[p])
    if retry:
        found = self._relocate()
        for p in retry:
            e = found.get(self._bases[p])
            if e is None:
                continue
            if require_deleted and "T" not in flag_letters(e[0]):
                continue  # someone undeleted it meanwhile
            try:
                posix.unlink(self._filename(p), dir_fd=self._dirfd(p))
            except FileNotFoundError:
                continue
            removed.append(self._uids[p])
    if removed:
        f.end_own(ok)
        removed.sort()
        drop = set(removed)
        try:
            with f.lock:
                ul = f.uidlist
                # reading the list we already reflect teaches the view
                # nothing: then it must not count as others' changes
                # (that would make the next sync list 100,000 files)
                st0 = ul.stat()
                known = st0 is not None and (
                    (ul.loaded and ul.changes == self._ul_changes
                     and ul.ident == (st0.st_dev, st0.st_ino) and ul.offset == st0.st_size)
                    or self._synced_ul == (st0.st_dev, st0.st_ino, st0.st_size, st0.st_mtime_ns)
                )
                if not ul.loaded:
                    ul.load()
                else:
                    ul.refresh()
                if ul.ident is not None:
                    ul.rewrite(drop=drop)
                if known:
                    self._ul_changes = ul.changes
        except OSError as exc:
            # The files are gone, which is what was asked; on a full disk
            # the shorter list may not fit yet.  Records without files
            # are dropped by the next rewrite -- and an EXPUNGE that frees
            # space must not fail for want of space.
            if full_error(exc) is None:
                raise
        for u in removed:
            f.add_log(("expunge", u))
        self._cache_drop(removed)
    return removed
