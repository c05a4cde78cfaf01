"""Bringing a MaildirMailbox's view in line with its directories.

A full listing reads cur/ and new/ (or the one whose mtime moved), numbers
the files the uidlist does not know under its lock, moves new/ to cur/, and
rebuilds the view's arrays, reporting what was expunged, added or flagged
meanwhile; `_sync_new_only` takes in a delivery to new/ without listing cur/.
The functions are MaildirMailbox's, written as its methods (`self`) and kept
here because a warm open of an unchanged mailbox never runs them: every
session would otherwise load them.  The class reaches the two entry points,
`_full_sync` and `_sync_new_only`, through stand-ins of the same names.
"""

from __future__ import annotations

import posix
import sys
import time
from itertools import compress, count
from _operator import is_not, itemgetter  # (`operator` itself costs 0.4 ms to import)
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Sequence

    from imapd.store.maildir import index as idxmod
    from imapd.store.maildir.mailbox import MaildirMailbox

from imapd.arrays import array
from imapd.store.base import SyncChanges
from imapd.store.maildir.mailbox import NO_TIME, _list_dir

# Extra readdirs of new/ and cur/ when a file the uidlist names was not seen:
# readdir() may miss a file that is renamed while it runs.
RESCANS = 2
_intern = sys.intern


def _maildir_sort_key(base: str) -> tuple[int, str]:
    """Order new files roughly by delivery time, as Dovecot numbers them."""
    dot = base.find(".")
    head = base[:dot] if dot > 0 else ""
    return (int(head) if head.isdecimal() else 0, base)


_TIME_HEAD = itemgetter(slice(0, 11))


def _sort_maildir_names(names: list[str]) -> None:
    """Sort base names in place by `_maildir_sort_key`.  When every name
    starts with a 10-digit time and a dot (any delivery from 2001 to 2286),
    plain string order is the same order: sorted in C, not with 100,000
    key tuples (a cold SELECT numbers every file)."""
    heads = "".join(map(_TIME_HEAD, names))
    n = len(names)
    if (len(heads) == 11 * n and heads[10::11] == "." * n and heads.count(".") == n
            and heads.isascii() and heads.replace(".", "").isdigit()):
        names.sort()
    else:
        names.sort(key=_maildir_sort_key)


def _scan_dir(fd: int, known: Sequence[str] = ()) -> tuple[dict[str, str], list[str] | None]:
    """base -> info for the regular files of a directory, built entry by
    entry (no list of 100,000 names held at once; info suffixes interned).
    Second value: the names if two files share a base name, else None.

    A listed base name that is in `known` (the names the caller holds) is
    kept as that string, not as a second copy: listing a directory of 100,000
    files to verify a view would otherwise hold 10 MB of duplicate names."""
    found: dict[str, str] = {}
    count = 0
    intern = _intern
    same = {b: b for b in known}.get if known else None
    with posix.scandir(fd) as it:
        for e in it:
            name = e.name
            if name[0] == "." or "\n" in name or "\r" in name:
                continue
            if not e.is_file(follow_symlinks=False):
                continue
            b, _, i = name.partition(":")
            if same is not None:
                b = same(b, b)
            found[b] = intern(i)
            count += 1
    if count != len(found):
        return found, _list_dir(fd)
    return found, None


def _move_to_cur(self: MaildirMailbox, files: dict[str, str]) -> dict[str, str]:
    """Move files (base -> info) from new/ to cur/, as a read-write view
    does once they are numbered; base -> new info for those moved (one
    missing was taken by someone else: to cur/, or away).  The watch is
    told to expect these renames: they are no news."""
    f = self._f
    w = self._watch
    if w is not None:  # (a watch is made, and its module loaded, only for IDLE)
        from imapd.store.maildir.watch import IN_MOVED_FROM, IN_MOVED_TO
    moved: dict[str, str] = {}
    ok = f.begin_own()
    for b, info in files.items():
        new_info = info if info.startswith("2,") else "2,"
        src = b + ":" + info if info else b
        try:
            posix.rename(src, b + ":" + new_info, src_dir_fd=f.new_fd, dst_dir_fd=f.cur_fd)
        except FileNotFoundError:
            continue
        moved[b] = new_info
        if w is not None:
            w.expect(1, IN_MOVED_FROM, src)
            w.expect(0, IN_MOVED_TO, b + ":" + new_info)
    if moved:
        f.end_own(ok)
    return moved


def _sync_new_only(self: MaildirMailbox, changes: SyncChanges) -> bool:
    """Take in mail delivered to new/ by listing new/ alone: what IDLE on a
    big mailbox does for each delivery (not 100,000 entries of cur/ and
    of the uidlist each time).

    The caller vouches for cur/ (watched, no events but our own).  Only
    when the view holds every record of the uidlist as it is now, and no
    record lacks its file (`_synced_ul`, `_ul_spare`): then a file the
    view does not know has no record, and numbering it cannot give a
    second UID to a message.  False: not applicable, nothing was done
    (a full listing decides).  If the list or new/ changes under us, a
    full listing of both directories is done here."""
    f = self._f
    ul = f.uidlist
    if self.readonly or not f.writable or self._virtual or self._ul_spare != 0 or self._synced_ul is None:
        return False
    if 1 in self._innew:
        return False  # files we show from new/: the full listing moves them
    ust = ul.stat()
    if ust is None or self._synced_ul != (ust.st_dev, ust.st_ino, ust.st_size, ust.st_mtime_ns):
        return False
    fn, dups = _scan_dir(f.new_fd)
    if dups is not None:
        return False
    if not fn:
        return True  # a file came and went (or was taken to cur/: that shows as a cur/ event)
    unknown = list(fn)
    _sort_maildir_names(unknown)
    with f.lock:
        f.ensure_uidlist()
        st = ul.stat()
        if (st is None or self._synced_ul != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                or ul.needs_rewrite() or ul.next_uid <= self._max_seen):
            changed = True  # numbered or rewritten by someone since we looked
        else:
            changed = False
            uids = ul.append(unknown)
            st = ul.stat()
    if changed:
        _full_sync(self, list_cur=True, list_new=True, changes=changes)
        return True
    # the list now holds the view plus these records: say so only if
    # every file is where the view will say it is
    self._synced_ul = None
    moved = _move_to_cur(self, fn)
    f.expected[1] = None  # our moves changed new/ after the listing
    f.epoch += 1  # other views on this folder did not see this listing
    self._epoch = f.epoch
    if len(moved) != len(unknown):  # someone else took a file (to cur/, or away)
        _full_sync(self, list_cur=True, list_new=True, changes=changes)
        return True
    self._hms += 1
    hms = self._hms
    n = len(uids)
    self._own_uids()
    self._uids.extend(uids)
    self._bases.extend(unknown)
    self._infos.extend([_intern(moved[b]) for b in unknown])
    self._innew.extend(bytes(n))
    self._wsize.extend(array("q", [-1]) * n)
    self._mtime.extend(array("d", [NO_TIME]) * n)
    self._modseq.extend(array("Q", [hms]) * n)
    self._max_seen = uids[-1]
    changes.added.extend(uids)
    self._index_dirty = True
    self._synced_dirs = None
    if st is not None:
        self._synced_ul = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    self._ul_changes = ul.changes
    self._log_pos = f.log_base + len(f.log)
    return True


def _full_sync(
    self: MaildirMailbox,
    list_cur: bool = True,
    list_new: bool = True,
    changes: SyncChanges | None = None,
    seed: idxmod.IndexData | None = None,
    initial: bool = False,
) -> None:
    """Read the directories (all of them, or only the ones whose mtime
    moved), number new files under the lock, move new/ -> cur/, and
    rebuild the view, reporting the differences in `changes`."""
    f = self._f
    ul = f.uidlist
    if changes is None:
        changes = SyncChanges()
    t_ns = time.time_ns()
    pre = f.dir_state()
    spare_before = self._ul_spare
    use_view = False
    if not ul.loaded and self._synced_ul is not None:
        # the view holds every record that has a file, as of this uidlist:
        # if the uidlist did not change, no need to parse it
        ust = ul.stat()
        use_view = ust is not None and self._synced_ul == (ust.st_dev, ust.st_ino, ust.st_size, ust.st_mtime_ns)
    if not use_view:
        if not ul.loaded:
            ul.load()
        else:
            ul.refresh()
    ul_changes = ul.changes
    f.keywords.refresh()
    # base -> info, for files in new/ and in cur/
    if list_new:
        fn, _ = _scan_dir(f.new_fd)
    else:
        fn = {b: i for b, i, n in zip(self._bases, self._infos, self._innew) if n}
    if list_cur:
        # a later listing (one that checks the view) shares the names
        # already held; the first has none to share, and the lookups
        # would cost a cold open of 100,000 messages 25 ms
        fc, dups = _scan_dir(f.cur_fd, () if initial else self._bases if use_view else ul.bases)
        if dups is not None:
            _duplicates(self, dups)
    else:
        if 1 not in self._innew:
            fc = dict(zip(self._bases, self._infos))  # (C speed: nothing is in new/)
        else:
            fc = {b: i for b, i, n in zip(self._bases, self._infos, self._innew) if not n}
    for b in fn.keys() & fc.keys() if fn else ():
        del fn[b]  # moved to cur/ while we listed: cur/ wins

    # --- which records have a file, and are there files with no record?
    if use_view:
        bases, rec_uids = self._bases, self._uids
    else:
        bases, rec_uids = ul.bases, ul.uids
    cur_infos = list(map(fc.get, bases))
    matched_c = len(bases) - cur_infos.count(None)
    new_infos = list(map(fn.get, bases)) if fn else None
    matched_n = (len(bases) - new_infos.count(None)) if new_infos is not None else 0
    if matched_c + matched_n < len(fc) + len(fn) or self._virtual:
        known = set(bases)
        unknown = [b for b in fc if b not in known] + [b for b in fn if b not in known]
        unknown = [b for b in unknown if b not in self._virtual]
        del known
    else:
        unknown = []
    numbered = False
    if unknown and use_view:
        # files the snapshot does not know: let the uidlist decide
        del cur_infos, new_infos, fc, fn
        self._synced_ul = None
        _full_sync(self, list_cur, list_new, changes, seed, initial)
        return
    if unknown:
        numbered = True
        if f.writable:
            with f.lock:
                f.ensure_uidlist()
                if not ul.loaded:
                    ul.load()
                else:
                    ul.refresh()
                known = set(ul.bases)
                unknown = [b for b in unknown if b not in known]
                del known
                if unknown:
                    _sort_maildir_names(unknown)
                    ul.append(unknown)
                # (ul_changes stays as it was before the listing: records
                # others added meanwhile may name files the listing
                # missed, with UIDs above all we show -- the next sync
                # must list again, before any UID of ours is shown)
            bases, rec_uids = ul.bases, ul.uids
            cur_infos = list(map(fc.get, bases))
            new_infos = list(map(fn.get, bases)) if fn else None
        else:
            # read-only file system: number in memory, deterministically
            _sort_maildir_names(unknown)
            nxt = max(ul.next_uid, self._virtual_next, 1)
            for b in unknown:
                self._virtual[b] = nxt
                nxt += 1
            self._virtual_next = nxt
    if ul.uidvalidity:
        uidvalidity = ul.uidvalidity
    elif f.writable:
        with f.lock:
            f.ensure_uidlist()
        uidvalidity = ul.uidvalidity
    else:
        uidvalidity = _readonly_uidvalidity(self)
    if self._uidvalidity and uidvalidity != self._uidvalidity:
        # the list was replaced by one with another UIDVALIDITY: everything
        # we showed is gone (the session must close the mailbox)
        changes.expunged.extend(self._uids)
        self._uids = array("I")
        self._bases, self._infos = [], []
        self._innew = bytearray()
        self._wsize, self._mtime, self._modseq = array("q"), array("d"), array("Q")
        self._max_seen = 0
    self._uidvalidity = uidvalidity

    # --- move new/ -> cur/ (read-write sessions only)
    moved = _move_to_cur(self, fn) if fn and not self.readonly and f.writable else {}

    # --- the new view, in UID order
    uids_arr = rec_uids
    n_rec = len(bases)
    absent: list[int] = []  # records whose file was not listed
    if new_infos is None and cur_infos.count(None) == 0:
        nu = array("I", uids_arr)
        nb = list(bases)
        ni = cur_infos
        nn = bytearray(n_rec)
    else:
        # only the records with no file in cur/ need looking at: find
        # them with list.index (C speed), not a Python loop over all
        innew_of = bytearray(n_rec)
        keep = bytearray(b"\x01") * n_rec
        ri = -1
        while True:
            try:
                ri = cur_infos.index(None, ri + 1)
            except ValueError:
                break
            info = new_infos[ri] if new_infos is not None else None
            if info is not None:
                b = bases[ri]
                if b in moved:
                    info = moved[b]
                    f.add_log(("move", uids_arr[ri], info))
                else:
                    innew_of[ri] = 1
                cur_infos[ri] = _intern(info)
            else:
                absent.append(ri)
                keep[ri] = 0
        if absent:
            nu = array("I", compress(uids_arr, keep))
            nb = list(compress(bases, keep))
            ni = list(compress(cur_infos, keep))
            nn = bytearray(compress(innew_of, keep))
        else:
            nu = array("I", uids_arr)
            nb = list(bases)
            ni = cur_infos
            nn = innew_of
    del cur_infos, new_infos
    if self._virtual:
        rows = sorted((u, b) for b, u in self._virtual.items() if b in fc or b in fn)
        for u, b in rows:
            if nu and u <= nu[-1]:
                continue
            innew = 0 if b in fc else 1
            nu.append(u)
            nb.append(b)
            ni.append(_intern(fc[b] if b in fc else fn[b]))
            nn.append(innew)
    del fc, fn

    # --- files the listing missed.  readdir() may skip a file that is
    # renamed while it runs (mutt changing flags, another session's
    # STORE).  So look again before a message we showed is called
    # expunged while the uidlist still names it, and before a numbered
    # file is passed over while a higher UID is shown: that would hide it
    # for the rest of the session.
    lost_old: list[int] = []
    if not initial and len(self._uids):
        lost_old = _missing(self, nu)
        if lost_old and not use_view:
            named = ul.by_base()
            lost_old = [p for p in lost_old if self._bases[p] in named]
    top = nu[-1] if len(nu) else 0
    lost_new = [ri for ri in absent if self._max_seen < uids_arr[ri] < top]
    for _ in range(RESCANS):
        if not (lost_old or lost_new):
            break
        again = self._lookup_all()
        back: list[tuple[int, str, str, int]] = []
        still_old = []
        for p in lost_old:
            e = again.get(self._bases[p])
            if e is None:
                still_old.append(p)
            else:
                back.append((self._uids[p], self._bases[p], _intern(e[0]), e[1]))
        still_new = []
        for ri in lost_new:
            e = again.get(bases[ri])
            if e is None:
                still_new.append(ri)
            else:
                back.append((uids_arr[ri], bases[ri], _intern(e[0]), e[1]))
        lost_old, lost_new = still_old, still_new
        if back:
            rows2 = sorted(set(zip(nu, nb, ni, nn)) | set(back))
            nu = array("I", (r[0] for r in rows2))
            nb = [r[1] for r in rows2]
            ni = [r[2] for r in rows2]
            nn = bytearray(r[3] for r in rows2)

    _install_view(self, nu, nb, ni, nn, changes, seed)
    st = ul.stat()
    if numbered and ul.changes != ul_changes:
        # records others added while we waited for the lock may have
        # files our listing missed: this view is no snapshot of the list
        self._synced_ul = None
    elif st is not None and ul.ident == (st.st_dev, st.st_ino) and ul.offset == st.st_size:
        self._synced_ul = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        # records the view leaves out (their files are gone); with the
        # view as the list (use_view), those it left out before remain
        left_out = len(bases) - len(nu)
        if self._virtual or (use_view and spare_before < 0):
            self._ul_spare = -1
        else:
            self._ul_spare = left_out + (spare_before if use_view else 0)
    else:
        self._synced_ul = None
    if list_cur and list_new:
        f.after_scan(pre, t_ns)
        # a snapshot only counts if nothing of ours moved since `pre`
        if not moved and None not in f.expected:
            self._synced_dirs = tuple(pre)
        else:
            self._synced_dirs = None
    else:
        # partial: the listed directory is trusted as of `pre` if old enough
        if list_cur:
            f.expected[0] = pre[0] if pre[0] < t_ns - 1_000_000_000 else None
        if list_new:
            f.expected[1] = pre[1] if pre[1] < t_ns - 1_000_000_000 else None
        f.epoch += 1  # other views on this folder did not see this scan
        self._synced_dirs = None
    if moved:
        # the moves changed both directories after `pre`
        f.expected = [None if list_cur else f.expected[0], None]
    self._epoch = f.epoch
    self._last_full = time.monotonic()
    self._log_pos = f.log_base + len(f.log)
    self._ul_changes = ul_changes
    if self._ul_spare > 0 and list_cur and not self.readonly and f.writable and not self._virtual:
        _drop_spare_records(self)


def _drop_spare_records(self: MaildirMailbox) -> None:
    """Drop the uidlist records whose files are gone (deleted by mutt, or
    by a session that died before it could drop them), as Dovecot does
    after listing the directories.  While such a record remains, a file that
    reuses its name could get a second UID, so a delivery must be
    numbered by a full listing (see `_sync_new_only`).  Only when the
    list is still the one this listing saw, and the lock is free: else
    the next full listing tries again."""
    f = self._f
    ul = f.uidlist
    if not f.lock.try_acquire():
        return
    try:
        st = ul.stat()
        if st is None or self._synced_ul != (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return
        changes_before = ul.changes
        if not ul.loaded:
            ul.load()
        else:
            ul.refresh()
        shown = set(self._uids)
        gone = {u for u in ul.uids if u not in shown}
        st2 = ul.stat()
        if len(gone) != self._ul_spare or st2 is None or (st2.st_dev, st2.st_ino, st2.st_size) != (st.st_dev, st.st_ino, st.st_size):
            return  # not what the listing counted: leave it to the next one
        # Only up to the highest UID this view has shown: those were looked
        # for again (the listing's rescan) when they went missing.  A
        # record above it may name a file readdir() skipped while someone
        # renamed it: dropped, the file would be numbered again, under a
        # new UID.
        drop = {u for u in gone if u <= self._max_seen}
        if not drop:
            return
        ul.rewrite(drop=drop)
        st = ul.stat()
    except OSError:
        return  # (a full disk...): the records do no harm but time
    finally:
        f.lock.release()
    if st is not None:
        self._synced_ul = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        self._ul_spare = len(gone) - len(drop)
        if self._ul_changes == changes_before:
            self._ul_changes = ul.changes  # reading back what we saw is no news


def _missing(self: MaildirMailbox, nu: array) -> list[int]:
    if len(nu) >= len(self._uids) and nu[: len(self._uids)] == self._uids:
        return []  # all still there (and maybe more): the usual case
    present = set(nu)
    return [p for p, u in enumerate(self._uids) if u not in present]


def _duplicates(self: MaildirMailbox, names: list[str]) -> None:
    """Two files in cur/ with one base name (a copy made by some tool):
    give the later ones new base names so each becomes its own message,
    as Dovecot does.  Read-only sessions leave them alone."""
    if self.readonly or not self._f.writable:
        return
    seen: set[str] = set()
    for name in sorted(names):
        b, _, info = name.partition(":")
        if b not in seen:
            seen.add(b)
            continue
        new_base = self._store.unique_name()
        try:
            posix.rename(name, new_base + ":" + (info or "2,"), src_dir_fd=self._f.cur_fd, dst_dir_fd=self._f.cur_fd)
        except OSError:
            pass
    self._f.expected = [None, None]


def _install_view(
    self: MaildirMailbox,
    nu: array,
    nb: list[str],
    ni: list[str],
    nn: bytearray,
    changes: SyncChanges,
    seed: idxmod.IndexData | None,
) -> None:
    """Replace the view, carrying cached per-message values over and
    computing expunged/added/flags_changed against the old one."""
    codec = self._f.codec
    n = len(nu)
    ws = array("q", [-1]) * n
    mt = array("d", [NO_TIME]) * n
    ms = array("Q", [0]) * n
    old_u, old_i = self._uids, self._infos
    old_w, old_m, old_s = self._wsize, self._mtime, self._modseq
    hms = self._hms + 1
    expunged: list[int] = []
    added: list[int] = []
    fchg: list[int] = []
    if not len(old_u):
        added = [u for u in nu if u > self._max_seen]
        if len(added) != n:
            keep = [k for k in range(n) if nu[k] > self._max_seen]
            nu = array("I", (nu[k] for k in keep))
            nb = [nb[k] for k in keep]
            ni = [ni[k] for k in keep]
            nn = bytearray(nn[k] for k in keep)
            n = len(nu)
            ws = array("q", [-1]) * n
            mt = array("d", [NO_TIME]) * n
            ms = array("Q", [0]) * n
        ms = array("Q", [hms]) * n
    elif len(old_u) <= n and nu[: len(old_u)] == old_u and all(u > self._max_seen for u in nu[len(old_u) :]):
        # the usual change: the same messages, maybe some new ones at the
        # end (delivery).  Values carry over wholesale; only entries whose
        # info suffix object changed are looked at (found in C, not with
        # a Python loop over 100,000 entries)
        lo = len(old_u)
        ws, mt, ms = array("q", old_w), array("d", old_m), array("Q", old_s)
        ws.extend(array("q", [-1]) * (n - lo))
        mt.extend(array("d", [NO_TIME]) * (n - lo))
        ms.extend(array("Q", [hms]) * (n - lo))
        for k in compress(count(), map(is_not, ni[:lo], old_i)):
            a = ni[k]
            o = old_i[k]
            if a != o and codec.flags(a) != codec.flags(o):
                fchg.append(nu[k])
                ms[k] = hms
        added = list(nu[lo:])
    else:
        i = j = 0
        lo = len(old_u)
        dropped = False
        while i < n or j < lo:
            if j >= lo or (i < n and nu[i] < old_u[j]):
                u = nu[i]
                if u > self._max_seen:
                    added.append(u)
                    ms[i] = hms
                else:
                    nu[i] = 0  # a UID we already reported gone: skip it
                    dropped = True
                i += 1
            elif i >= n or old_u[j] < nu[i]:
                expunged.append(old_u[j])
                j += 1
            else:
                ws[i] = old_w[j]
                mt[i] = old_m[j]
                ms[i] = old_s[j]
                a = ni[i]
                o = old_i[j]
                if a is not o and a != o and codec.flags(a) != codec.flags(o):
                    fchg.append(nu[i])
                    ms[i] = hms
                i += 1
                j += 1
        if dropped:
            keep = [k for k in range(n) if nu[k] != 0]
            nu = array("I", (nu[k] for k in keep))
            nb = [nb[k] for k in keep]
            ni = [ni[k] for k in keep]
            nn = bytearray(nn[k] for k in keep)
            ws = array("q", (ws[k] for k in keep))
            mt = array("d", (mt[k] for k in keep))
            ms = array("Q", (ms[k] for k in keep))
            n = len(nu)
    if seed is not None and seed.uidvalidity == self._f.uidlist.uidvalidity and len(seed.uids):
        # cold open with a stale index: reuse the sizes/dates/modseqs it knew
        su, si = seed.uids, seed.infos
        sw, sm, ss = seed.wsize, seed.mtime, seed.modseq
        hms = max(hms, seed.highestmodseq + 1)
        i = j = 0
        ls = len(su)
        while i < n and j < ls:
            a = nu[i]
            c = su[j]
            if a < c:
                i += 1
            elif a > c:
                j += 1
            else:
                # (within one UIDVALIDITY a UID always names the same file)
                ws[i] = sw[j]
                mt[i] = sm[j]
                ms[i] = ss[j] if si[j] == ni[i] else hms
                i += 1
                j += 1
    if expunged or added or fchg or seed is not None:
        self._hms = hms
    self._uids, self._bases, self._infos, self._innew = nu, nb, ni, nn
    self._wsize, self._mtime, self._modseq = ws, mt, ms
    self._hint = 0
    if n:
        self._max_seen = max(self._max_seen, nu[-1])
    if expunged:
        changes.expunged = sorted(set(changes.expunged) | set(expunged))
        self._cache_drop(expunged)
    if added:
        changes.added = sorted(set(changes.added) | set(added))
    if fchg:
        changes.flags_changed = sorted(set(changes.flags_changed) | set(fchg))
    if expunged or added or fchg or seed is not None:
        self._index_dirty = True


def _readonly_uidvalidity(self: MaildirMailbox) -> int:
    """A read-only Maildir with no uidlist: derive a stable UIDVALIDITY
    from the directory itself (the same in every session)."""
    try:
        st = posix.fstat(self._f.fd)
        v = int(st.st_ctime) or 1
    except OSError:
        v = 1
    return v & 0xFFFFFFFF or 1
