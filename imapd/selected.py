"""The client's view of the selected mailbox: sequence numbers and pending updates.

The mailbox (store layer) knows what is on disk now; the view knows what the
client has been told.  They differ between an expunge made elsewhere and the
moment RFC 3501 lets us announce it (never during FETCH, STORE or SEARCH),
so message sequence numbers always mean what the client thinks they mean.
"""

from __future__ import annotations

from imapd import arrays
from imapd.arrays import at_first_call
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from array import array
    from typing import Sequence

from .protocol import responses as R
from .store.base import Mailbox


# seq_of runs once per message of some commands, SELECT not among them: the
# C function, loaded at its first call
bisect_left = at_first_call("_bisect", "bisect_left", globals())


class SelectedView:
    def __init__(self, mailbox: Mailbox, readonly: bool) -> None:
        self.mailbox = mailbox
        self.readonly = readonly
        # what the client knows, in order: the store's own array, which it
        # never changes once lent (Mailbox.uids), copied here only when new
        # messages are announced -- a copy at SELECT costs 100,000 messages
        # 400 KB of fresh memory, a tenth of a millisecond per 30 pages --
        # and taken only when a command first needs it (SELECT needs the
        # count alone: Mailbox.uids_later)
        self._count, self._take_uids = mailbox.uids_later()
        self._uids: array | None = None
        self._uids_lent = False
        self.pending_expunged: set[int] = set()  # gone on disk, not yet announced
        self.pending_flags: set[int] = set()
        self.known_keywords: tuple[str, ...] = tuple(mailbox.keywords())
        self.condstore = False

    @property
    def uids(self) -> array:
        uids = self._uids
        if uids is None:
            got = self._take_uids()
            self._uids_lent = isinstance(got, arrays.array) and got.typecode == "I"
            uids = self._uids = got if self._uids_lent else arrays.array("I", got)
            self._take_uids = None
        return uids

    @uids.setter
    def uids(self, uids: array) -> None:
        self._uids = uids

    # -------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self._uids) if self._uids is not None else self._count

    def uid_of(self, seq: int) -> int:
        return self.uids[seq - 1]

    def seq_of(self, uid: int) -> int | None:
        uids = self.uids  # (a property now: once per call, not three times)
        i = bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            return i + 1
        return None

    def is_expunged(self, uid: int) -> bool:
        return uid in self.pending_expunged

    def flags_with_recent(self, uid: int) -> list[str]:
        if uid in self.pending_expunged:
            return []
        flags = sorted(self.mailbox.flags(uid))
        if self.mailbox.is_recent(uid):
            flags.append("\\Recent")
        return flags

    def flags_response(self, uid: int, seq: int, with_uid: bool = False) -> bytes:
        items = b"FLAGS " + R.flag_list(self.flags_with_recent(uid))
        if with_uid:
            items = b"UID %d " % uid + items
        return b"* %d FETCH (" % seq + items + b")\r\n"

    # --------------------------------------------------------------- changes
    def report_changes(self, allow_expunge: bool) -> bytes:
        """Sync with the store and return the untagged responses the client is owed."""
        changes = self.mailbox.sync()
        out = bytearray()
        if changes.expunged:
            self.pending_expunged.update(changes.expunged)
        if changes.flags_changed:
            self.pending_flags.update(changes.flags_changed)
        if allow_expunge and self.pending_expunged:
            out += self._announce_expunges()
        if changes.added:
            last = self.uids[-1] if self.uids else 0
            gone = set(changes.expunged)  # added and removed since the last sync: never announce it
            new = [u for u in changes.added if u > last and u not in gone]
            if new:
                if self._uids_lent:
                    self.uids = self.uids[:]
                    self._uids_lent = False
                self.uids.extend(new)
                out += b"* %d EXISTS\r\n" % len(self.uids)
                out += b"* %d RECENT\r\n" % self.mailbox.recent_count()
        out += self.keyword_updates()
        if self.pending_flags:
            with_uid = self.condstore
            for uid in sorted(self.pending_flags):
                if uid in self.pending_expunged:
                    continue
                seq = self.seq_of(uid)
                if seq is not None:
                    out += self.flags_response(uid, seq, with_uid)
            self.pending_flags.clear()
        return bytes(out)

    def keyword_updates(self) -> bytes:
        """FLAGS and PERMANENTFLAGS again when a new keyword came into use."""
        keywords = tuple(self.mailbox.keywords())
        if keywords == self.known_keywords:
            return b""
        self.known_keywords = keywords
        return self.flags_line() + self.permanent_flags_line()

    def _announce_expunges(self) -> bytes:
        gone = self.pending_expunged
        positions = [i for i, u in enumerate(self.uids) if u in gone]
        out = bytearray()
        for shift, pos in enumerate(positions):
            out += b"* %d EXPUNGE\r\n" % (pos + 1 - shift)
        self.uids = arrays.array("I", [u for u in self.uids if u not in gone])
        self._uids_lent = False
        self.pending_expunged = set()
        return bytes(out)

    # ------------------------------------------------------------ responses
    def flags_line(self) -> bytes:
        system = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]
        return b"* FLAGS " + R.flag_list(system + list(self.mailbox.keywords())) + b"\r\n"

    def permanent_flags_line(self) -> bytes:
        if self.readonly:
            return b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n"
        flags = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"] + list(self.mailbox.keywords())
        if self.mailbox.can_create_keywords():
            flags.append("\\*")
        return b"* OK [PERMANENTFLAGS " + R.flag_list(flags) + b"] Flags permitted\r\n"

    # ------------------------------------------------------ message selection
    def resolve(self, seqset: object, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs named by a sequence set; ValueError for bad numbers."""
        out: list[tuple[int, int]] = []
        uids = self.uids
        for lo, hi in self.resolve_runs(seqset, uid):
            out.extend(zip(range(lo + 1, hi + 1), uids[lo:hi]))
        return out

    def resolve_runs(self, seqset: object, uid: bool) -> list[tuple[int, int]]:
        """The messages a sequence set names, as ascending [lo, hi) position
        ranges in `uids`: `UID FETCH 1:*` costs two bisects, and no pair per
        message is built.  ValueError for bad numbers."""
        from .protocol.seqset import SeqSet, _merged

        assert isinstance(seqset, SeqSet)
        uids = self.uids
        if uid:
            if not uids:
                return []
            from _bisect import bisect_right

            runs = [(bisect_left(uids, a), bisect_right(uids, b)) for a, b in _merged(seqset.resolved(uids[-1]))]
            return [(lo, hi) for lo, hi in runs if lo < hi]
        return [(a - 1, b) for a, b in seqset.message_ranges(len(uids))]

    def close(self) -> None:
        self.mailbox.close()

    def watch_fds(self) -> list[int]:
        return self.mailbox.watch_fds()

    def drain_watch(self) -> None:
        drain = getattr(self.mailbox, "drain_watch", None)
        if drain is not None:
            drain()


def seqs_for_uids(view: SelectedView, uids: Sequence[int]) -> list[int]:
    return [s for s in (view.seq_of(u) for u in uids) if s is not None]
