"""The storage API: what the IMAP commands need from a mail store.

Subclass `Store` (a user's tree of mailboxes) and `Mailbox` (one open folder) to
serve mail from anywhere; the Maildir implementation in `imapd.store.maildir` is
the reference.  Nothing above this module knows about files.

Conventions shared by every implementation:

* Mailbox names are Python `str` in Unicode, with the hierarchy delimiter
  `Store.delimiter` between levels.  "INBOX" is spelled exactly so (the
  command layer folds any case of it).  Encoding to modified UTF-7 on the wire
  or on disk is the business of the layer that needs it.
* Flags are `str`: system flags with their backslash (`\\Seen`, `\\Answered`,
  `\\Flagged`, `\\Deleted`, `\\Draft`; `\\Recent` is never stored, the mailbox
  reports it separately) and keywords as atoms (`$Forwarded`, `Junk`).
* A message is read in its wire form: every line ends with CRLF.  Sizes count
  that form.
* Errors are raised as `StoreError` subclasses carrying the IMAP response code
  the client should see, so the command layer turns them into `NO [CODE] text`.
"""

from __future__ import annotations

import abc
from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Iterable, Iterator, Sequence

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


# --------------------------------------------------------------------- errors
class StoreError(Exception):
    """A store operation failed in a way the client should hear about."""

    code: str | None = None  # IMAP response code, e.g. "NONEXISTENT"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        if code is not None:
            self.code = code


class NoSuchMailbox(StoreError):
    code = "NONEXISTENT"


class MailboxExists(StoreError):
    code = "ALREADYEXISTS"


class InvalidMailboxName(StoreError):
    code = "CANNOT"


class ReadOnlyStore(StoreError):
    code = "READ-ONLY"


class StoreLimit(StoreError):
    code = "LIMIT"


class OverQuota(StoreError):
    code = "OVERQUOTA"


class NoSuchMessage(StoreError):
    """The message vanished (expunged by someone else) between listing and reading it."""

    code = "EXPUNGEISSUED"


# ---------------------------------------------------------------- value types
class MailboxInfo(Record):
    """One entry of `Store.list_mailboxes`.

    `selectable` is False for a name that exists only as the parent of others
    (reported `\\Noselect`).  `has_children` feeds `\\HasChildren` /
    `\\HasNoChildren`.  `special_use` holds RFC 6154 attributes such as `\\Sent`.
    """

    __slots__ = ('name', 'selectable', 'has_children', 'special_use')
    _defaults = {'selectable': True, 'has_children': False, 'special_use': frozenset()}

    name: str
    selectable: bool
    has_children: bool
    special_use: frozenset[str]


class MailboxStatus(Record):
    """Counts for STATUS and SELECT.  `size` is the sum of wire sizes (STATUS SIZE)."""

    __slots__ = ('messages', 'recent', 'uidnext', 'uidvalidity', 'unseen', 'size', 'highestmodseq')
    _defaults = {'highestmodseq': 0}

    messages: int
    recent: int
    uidnext: int
    uidvalidity: int
    unseen: int
    size: int
    highestmodseq: int


class SyncChanges(Record):
    """What changed in a mailbox since the previous `Mailbox.sync()`.

    * `expunged`: UIDs that are gone, ascending.
    * `added`: new UIDs, ascending, all greater than every UID seen before.
    * `flags_changed`: UIDs (still present) whose flags were changed by someone
      else.  Flag changes made through this `Mailbox` object are not repeated
      here (the session already answered them), but expunges and additions made
      through it are, so the session learns of every EXISTS/EXPUNGE in one place.
    """

    __slots__ = ('expunged', 'added', 'flags_changed')
    _defaults = {'expunged': list, 'added': list, 'flags_changed': list}

    expunged: list[int]
    added: list[int]
    flags_changed: list[int]

    def __bool__(self) -> bool:
        return bool(self.expunged or self.added or self.flags_changed)


class AppendResult(Record):
    """UIDPLUS data for APPEND: `[APPENDUID uidvalidity uid]`."""

    __slots__ = ('uidvalidity', 'uid')

    uidvalidity: int
    uid: int


class CopyResult(Record):
    """UIDPLUS data for COPY/MOVE: `[COPYUID uidvalidity src dst]` (pairs in order)."""

    __slots__ = ('uidvalidity', 'source_uids', 'dest_uids')

    uidvalidity: int
    source_uids: tuple[int, ...]
    dest_uids: tuple[int, ...]


# --------------------------------------------------------------------- Store
class Store(abc.ABC):
    """A user's tree of mailboxes."""

    #: hierarchy delimiter on the wire, or None for a flat store.
    delimiter: str | None = "."
    #: True when nothing may be written (every mailbox opens read-only).
    readonly: bool = False

    @abc.abstractmethod
    def list_mailboxes(self) -> list[MailboxInfo]:
        """Every mailbox, INBOX included, plus implied parents (selectable=False).

        Pattern matching (`%`, `*`, reference) is done by the command layer.
        """

    @abc.abstractmethod
    def exists(self, name: str) -> bool:
        """True if `name` is a selectable mailbox."""

    @abc.abstractmethod
    def create(self, name: str) -> None:
        """Create `name` and any missing parents.  MailboxExists if it exists."""

    @abc.abstractmethod
    def delete(self, name: str) -> None:
        """Delete a mailbox (RFC 3501 rules: never INBOX; a mailbox with children
        loses its messages and becomes \\Noselect, or fails if already so)."""

    @abc.abstractmethod
    def rename(self, old: str, new: str) -> None:
        """Rename `old` and its children.  Renaming INBOX moves its messages to
        `new` and leaves INBOX empty."""

    @abc.abstractmethod
    def subscriptions(self) -> list[str]:
        """Subscribed names, in no particular order."""

    @abc.abstractmethod
    def subscribe(self, name: str) -> None:
        """Add `name` to the subscriptions (it need not exist)."""

    @abc.abstractmethod
    def unsubscribe(self, name: str) -> None:
        """Remove `name` from the subscriptions."""

    @abc.abstractmethod
    def status(self, name: str, items: Iterable[str] | None = None) -> MailboxStatus:
        """Counts for STATUS without selecting (and without taking \\Recent).

        `items` names the STATUS items wanted ("MESSAGES", "SIZE", ...; None =
        all): a backend may leave out what is costly and was not asked for
        (SIZE can mean reading every message whose size is not known yet)."""

    @abc.abstractmethod
    def open(self, name: str, readonly: bool = False) -> "Mailbox":
        """Open a mailbox for SELECT (readonly=False) or EXAMINE (readonly=True)."""

    @abc.abstractmethod
    def append(
        self,
        name: str,
        message: BinaryIO,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> AppendResult:
        """Store a new message read from `message` (wire form, CRLF).

        The message is written completely before it becomes visible.
        `internal_date` is a POSIX timestamp; None means now.
        """

    def close(self) -> None:
        """Release whatever the store holds (locks, watches)."""


# ------------------------------------------------------------------- Mailbox
class Mailbox(abc.ABC):
    """One open mailbox.

    The mailbox keeps a current list of UIDs (ascending) that changes only in
    `sync()`; between syncs the answers below are stable, so sequence numbers
    the session computed from `uids()` stay valid.
    """

    name: str
    readonly: bool

    @property
    @abc.abstractmethod
    def uidvalidity(self) -> int: ...

    @property
    @abc.abstractmethod
    def uidnext(self) -> int: ...

    @abc.abstractmethod
    def uids(self) -> Sequence[int]:
        """The UIDs present after the last sync, ascending.  The sequence
        returned is not changed afterwards: a later sync makes a new one."""

    def uids_later(self) -> tuple[int, Callable[[], Sequence[int]]]:
        """How many UIDs `uids()` would return now, and a function returning
        those very UIDs when called, even after the mailbox has changed.  (For
        SELECT, which says how many there are and names none: a backend that
        keeps its UIDs in a file can leave them there until asked.)"""
        uids = self.uids()
        return len(uids), lambda: uids

    @abc.abstractmethod
    def sync(self) -> SyncChanges:
        """Look for changes made elsewhere (or by this session) and report them."""

    @abc.abstractmethod
    def flags(self, uid: int) -> frozenset[str]:
        """Stored flags of a message (never \\Recent)."""

    @abc.abstractmethod
    def is_recent(self, uid: int) -> bool:
        """True if this session holds \\Recent for the message."""

    def recent_count(self) -> int:
        """How many messages are \\Recent for this session (SELECT, EXISTS
        updates).  Backends should answer without a loop over every message."""
        return sum(1 for u in self.uids() if self.is_recent(u))

    def first_unseen_index(self) -> int:
        """Position in `uids()` of the first message without \\Seen, or -1
        ([UNSEEN n] of SELECT: n is this plus one, with no lookup of a UID)."""
        for i, u in enumerate(self.uids()):
            if "\\Seen" not in self.flags(u):
                return i
        return -1

    def message_meta(self, uids: Iterable[int], size: bool, date: bool) -> Iterator[tuple | None]:
        """(flags, wire size, internal date, modseq) for each UID in turn, None
        for one that vanished; size and date are 0 unless asked for.  FETCH of
        FLAGS/RFC822.SIZE/INTERNALDATE on a whole mailbox uses this, so
        backends may answer it from their arrays in one pass."""
        modseq = getattr(self, "modseq", None)
        for u in uids:
            try:
                yield (
                    self.flags(u),
                    self.size(u) if size else 0,
                    self.internal_date(u) if date else 0.0,
                    modseq(u) if modseq is not None else 1,
                )
            except NoSuchMessage:
                yield None

    @abc.abstractmethod
    def keywords(self) -> list[str]:
        """Keywords defined in this mailbox (for FLAGS / PERMANENTFLAGS)."""

    def can_create_keywords(self) -> bool:
        """True if STORE may add keywords never seen before (`\\*` in PERMANENTFLAGS)."""
        return not self.readonly

    @abc.abstractmethod
    def internal_date(self, uid: int) -> float:
        """POSIX timestamp of the message's internal date."""

    @abc.abstractmethod
    def size(self, uid: int) -> int:
        """Size of the message in wire form (CRLF line ends): RFC822.SIZE."""

    @abc.abstractmethod
    def read(self, uid: int) -> bytes:
        """The whole message in wire form.  NoSuchMessage if it vanished."""

    def read_up_to(self, uid: int, limit: int) -> bytes | None:
        """`read(uid)`, or None if the message is larger than about `limit`
        bytes (the caller streams it instead).  Backends may judge by the
        stored size, read in the same go."""
        return None if self.size(uid) > limit else self.read(uid)

    def read_many(self, uids: Iterable[int], limit: int) -> Iterator[bytes | None | NoSuchMessage]:
        """`read_up_to(uid, limit)` of each of `uids` in turn, or the
        NoSuchMessage it raised (FETCH 1:* BODY.PEEK[]: backends hoist what
        one message's read looks up out of the loop)."""
        for uid in uids:
            try:
                yield self.read_up_to(uid, limit)
            except NoSuchMessage as e:
                yield e

    def read_header(self, uid: int) -> bytes:
        """The message's header in wire form, up to and including the blank
        line that ends it (the whole message if there is none).  The default
        cuts `read()`; backends should read only the start of the file."""
        data = self.read(uid)
        if data.startswith(b"\r\n"):
            return b"\r\n"
        i = data.find(b"\r\n\r\n")
        return data if i < 0 else data[: i + 4]

    def open_stream(self, uid: int) -> BinaryIO:
        """The message in wire form as a stream, for large bodies.

        The default wraps `read()`; backends should stream from disk."""
        import io

        return io.BytesIO(self.read(uid))

    @abc.abstractmethod
    def store_flags(self, uids: Iterable[int], mode: str, flags: Iterable[str]) -> dict[int, frozenset[str]]:
        """Change flags.  `mode` is "set", "add" or "remove".

        Returns the new flags of every message whose flags were written
        (a message that vanished is skipped).
        """

    @abc.abstractmethod
    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only those in `uids` if given).

        Returns the UIDs removed, ascending.  The session's view learns of them
        through the next `sync()` as well as through this return value.
        """

    @abc.abstractmethod
    def copy_to(self, uids: Sequence[int], dest: str) -> CopyResult:
        """Copy messages (with flags and internal dates) into mailbox `dest`."""

    def move_to(self, uids: Sequence[int], dest: str) -> CopyResult:
        """Move messages: copy, then remove the originals (RFC 6851)."""
        result = self.copy_to(uids, dest)
        self.remove(result.source_uids)
        return result

    @abc.abstractmethod
    def remove(self, uids: Iterable[int]) -> list[int]:
        """Remove messages regardless of \\Deleted (for MOVE).  Returns UIDs removed."""

    # -- cache of derived data (ENVELOPE, BODYSTRUCTURE, parsed structure) -----
    def cache_get(self, uid: int, key: str) -> object | None:
        """A value cached for a message, or None.  The default caches nothing."""
        return None

    def cache_get_many(self, uids: Sequence[int], key: str) -> Iterator[object | None]:
        """`cache_get` for each UID in turn (ascending); backends may read in bulk."""
        for u in uids:
            yield self.cache_get(u, key)

    def cache_put(self, uid: int, key: str, value: object, marshalled: bool = False) -> None:
        """Remember a derived value; it must be dropped if the message changes.
        With `marshalled`, `value` is `marshal.dumps` of the value (as a
        helper process sends it: stored as it is, not decoded and encoded again)."""

    def cache_put_row(self, uid: int, row: Iterable[tuple[str, object, bool]]) -> None:
        """`cache_put` of several values of one message: (key, value, marshalled) each."""
        for key, value, marshalled in row:
            self.cache_put(uid, key, value, marshalled)

    def build_ahead(self, uids: Sequence[int], builder: tuple[str, str, tuple[Any, ...]]) -> Any:
        """Optionally compute, in a helper process while the caller works on
        the others, for some of `uids`, the value of the builder named by
        `builder` -- (module, attribute, arguments): the callable is
        `getattr(module, attribute)(*arguments)`, applied to the message's
        bytes.  Returns a handle with `take(uid)` (the value, or None:
        compute it yourself; called in ascending UID order) and `close()`,
        or None.  The default has no helper."""
        return None

    def status(self, items: Iterable[str] | None = None) -> MailboxStatus:
        """Counts of the open mailbox (`items` as in Store.status: SIZE is
        computed only when asked for or when items is None)."""
        uids = self.uids()
        want_size = items is None or "SIZE" in {i.upper() for i in items}
        return MailboxStatus(
            messages=len(uids),
            recent=sum(1 for u in uids if self.is_recent(u)),
            uidnext=self.uidnext,
            uidvalidity=self.uidvalidity,
            unseen=sum(1 for u in uids if "\\Seen" not in self.flags(u)),
            size=sum(self.size(u) for u in uids) if want_size else 0,
        )

    def close(self) -> None:
        """Release the mailbox (locks, watches); flush caches."""

    def watch_fds(self) -> list[int]:
        """File descriptors that become readable when the mailbox may have
        changed (inotify); empty when the caller must poll."""
        return []

    def __iter__(self) -> Iterator[int]:
        return iter(self.uids())
