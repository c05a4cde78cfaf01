"""FETCH and UID FETCH (RFC 3501 §6.4.5, RFC 9051, RFC 3516 BINARY).

Derived data (ENVELOPE, BODY, BODYSTRUCTURE and the parsed MIME structure)
comes from the mailbox's cache when it can; otherwise the message is parsed
once and the results are cached.  A whole large message is streamed from the
store in chunks instead of being held in memory.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

from ..protocol import responses as R
from ..protocol.fetch_syntax import Fetch, FetchItem, Section
from ..store.base import NoSuchMessage
from . import CommandError, Result, ok
from .messages import resolve_columns, resolve_messages

STREAM_THRESHOLD = 1 << 20  # whole messages larger than this are streamed
CHUNK = 256 * 1024


class MessageData:
    """Lazily loaded pieces of one message, so each is read at most once."""

    __slots__ = ("mailbox", "uid", "_data", "_root", "_header")

    def __init__(self, mailbox: Any, uid: int) -> None:
        self.mailbox = mailbox
        self.uid = uid
        self._data: bytes | None = None
        self._root: Any = None
        self._header: tuple[bytes, Any] | None = None

    def header_view(self) -> tuple[bytes, Any]:
        """(data, root) good for the top-level header only: the whole message
        if it is read already, else just its header (read_header) parsed."""
        if self._data is not None:
            return self._data, self.root
        if self._header is None:
            from ..mime.structure import header_part

            read_header = getattr(self.mailbox, "read_header", None)
            if read_header is None:
                return self.data, self.root
            hdr = read_header(self.uid)
            self._header = (hdr, header_part(hdr))
        return self._header

    def header_section(self, spec: str, fields: Any = None) -> bytes:
        """BODY[HEADER], BODY[HEADER.FIELDS (...)], BODY[HEADER.FIELDS.NOT (...)]
        of the top-level message."""
        from ..mime import section_bytes

        data, root = self.header_view()
        found = section_bytes(data, root, (), spec, list(fields) if fields else None)
        return found if found is not None else b""

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.mailbox.read(self.uid)
        return self._data

    @property
    def root(self) -> Any:
        if self._root is None:
            from ..mime import Part, parse_message

            cached = self.mailbox.cache_get(self.uid, "mime")
            if cached is not None:
                try:
                    self._root = Part.from_cache(cached)
                except Exception:  # noqa: BLE001 - a stale or foreign cache entry
                    self._root = None
            if self._root is None:
                from ..memory import note_parsed

                self._root = parse_message(self.data)
                self.mailbox.cache_put(self.uid, "mime", self._root.to_cache())
                note_parsed(len(self.data))
        return self._root

    def derived_wire(self, key: str, build: Callable[[bytes, Any], bytes]) -> bytes:
        """A derived value (ENVELOPE, BODY, BODYSTRUCTURE) encoded for the wire.

        The encoded bytes are what is cached: a warm FETCH then costs a lookup,
        not a parse and an encode (Dovecot caches `imap.bodystructure` so too)."""
        value = self.mailbox.cache_get(self.uid, key)
        if type(value) is not bytes:
            value = self.build_wire(key, build)
        return value

    def build_wire(self, key: str, build: Callable[[bytes, Any], bytes]) -> bytes:
        """`derived_wire` for a value known not to be cached (no lookup)."""
        value = build(self.data, self.root)
        self.mailbox.cache_put(self.uid, key, value)
        return value


def _envelope(data: bytes, root: Any) -> bytes:
    from ..mime.wire import envelope_wire

    return envelope_wire(data, root)


def _body(data: bytes, root: Any) -> bytes:
    from ..mime.wire import body_structure_wire

    return body_structure_wire(data, root, False)


def _bodystructure(data: bytes, root: Any) -> bytes:
    from ..mime.wire import body_structure_wire

    return body_structure_wire(data, root, True)


def section_label(item: FetchItem) -> bytes:
    """The item's name as echoed in the response, e.g. `BODY[1.HEADER.FIELDS (FROM)]<0>`."""
    sec: Section = item.section or Section()
    parts = [".".join(str(n) for n in sec.path)] if sec.path else []
    if sec.spec:
        spec = sec.spec
        if sec.fields:
            spec += " (" + " ".join(sec.fields) + ")"
        parts.append(spec)
    base = item.name[:-2]  # "BODY", "BINARY", "BINARY.SIZE"
    label = f"{base}[{'.'.join(parts)}]"
    if item.partial is not None and item.name != "BINARY.SIZE[]":
        label += f"<{item.partial[0]}>"
    return label.encode("ascii")


def _partial(data: bytes, partial: tuple[int, int] | None) -> bytes:
    if partial is None:
        return data
    offset, length = partial
    return data[offset : offset + length]


def fetch(session: Any, cmd: Fetch) -> Iterator[bytes | list[bytes]]:
    view = session.selected
    items = list(cmd.items)
    names = {i.name for i in items}
    if cmd.uid and "UID" not in names:
        items.insert(0, FetchItem("UID"))
    sets_seen = not view.readonly and any(
        i.name in ("BODY[]", "BINARY[]") and not i.peek or i.name in ("RFC822", "RFC822.TEXT") for i in items
    )
    if not sets_seen and all(i.name in _FAST_ITEMS or header_fields_key(i) for i in items):
        seqs, uids = resolve_columns(session, cmd.seqset, cmd.uid)
        may_help = session.config.mail.fetch_helper
        return (yield from _fetch_fast(view, seqs, uids, items, cmd.uid, may_help))
    messages = resolve_messages(session, cmd.seqset, cmd.uid)
    # each item with its label as echoed (BODY[...]<n>), made once, not per message
    labelled = [(i, section_label(i) if i.name in _SECTION_ITEMS else b"") for i in items]
    if not sets_seen and _whole_bodies(items):
        return (yield from _fetch_whole(view, messages, labelled, cmd.uid))
    one = _OneMessage(view, labelled, sets_seen, "FLAGS" in names)
    missing = False
    for seq, uid in messages:
        if uid in view.pending_expunged:
            missing = True
            continue
        if (yield from one.fetch(seq, uid)):
            missing = True
    return _done(missing, cmd.uid)


def _done(missing: bool, uid_cmd: bool) -> Result:
    """The tagged result of a FETCH that skipped `missing` messages or none."""
    if missing:
        return Result("NO", "Some of the requested messages no longer exist", "EXPUNGEISSUED")
    return ok("FETCH completed" if not uid_cmd else "UID FETCH completed")


class _OneMessage:
    """The general path: one message's FETCH response, any items."""

    def __init__(self, view: Any, labelled: list[tuple[FetchItem, bytes]], sets_seen: bool, wants_flags: bool) -> None:
        self.view = view
        self.labelled = labelled
        self.sets_seen = sets_seen
        self.wants_flags = wants_flags

    def fetch(self, seq: int, uid: int) -> Iterator[bytes | list[bytes]]:
        """Yield the response; returns True if the message turned out to be gone."""
        mailbox = self.view.mailbox
        flags_of = self.view.flags_with_recent
        sets_seen, wants_flags, labelled = self.sets_seen, self.wants_flags, self.labelled
        msg = MessageData(mailbox, uid)
        sent_part = False  # part of this message's response is already out
        try:
            if sets_seen and "\\Seen" not in mailbox.flags(uid):
                mailbox.store_flags([uid], "add", ["\\Seen"])
                set_now = True
            else:
                set_now = False
            out = bytearray(b"* %d FETCH (" % seq)
            # whole bodies go out as the objects they were read into, after the
            # response text before them: [text, body, text, body, ...]
            parts: list[bytes] = []
            parts_size = 0
            first = True
            for item, label in labelled:
                if len(out) + parts_size >= CHUNK:
                    # many large items for one message: hand over what is built,
                    # so the session's output limit bounds memory
                    sent_part = True
                    parts.append(bytes(out))
                    yield parts
                    parts = []
                    parts_size = 0
                    out = bytearray()
                if not first:
                    out += b" "
                first = False
                name = item.name
                if name == "UID":
                    out += b"UID %d" % uid
                elif name == "FLAGS":
                    out += b"FLAGS " + R.flag_list(flags_of(uid))
                elif name == "RFC822.SIZE":
                    out += b"RFC822.SIZE %d" % mailbox.size(uid)
                elif name == "INTERNALDATE":
                    out += b"INTERNALDATE " + R.format_internal_date(mailbox.internal_date(uid))
                elif name == "ENVELOPE":
                    out += b"ENVELOPE " + msg.derived_wire("envelope.wire", _envelope)
                elif name == "BODY":
                    out += b"BODY " + msg.derived_wire("body.wire", _body)
                elif name == "BODYSTRUCTURE":
                    out += b"BODYSTRUCTURE " + msg.derived_wire("bodystructure.wire", _bodystructure)
                elif name == "MODSEQ":
                    out += b"MODSEQ (%d)" % _modseq(mailbox, uid)
                elif name in ("RFC822", "RFC822.HEADER", "RFC822.TEXT"):
                    spec = {"RFC822": None, "RFC822.HEADER": "HEADER", "RFC822.TEXT": "TEXT"}[name]
                    if spec is None and mailbox.size(uid) > STREAM_THRESHOLD:
                        stream = mailbox.open_stream(uid)
                        sent_part = True
                        parts.append(bytes(out) + b"RFC822 ")
                        yield parts
                        parts = []
                        parts_size = 0
                        out = bytearray()
                        yield from _stream_whole(stream, mailbox.size(uid), None)
                        continue
                    if spec is None:
                        data = msg.data
                        parts += (bytes(out) + b"RFC822 {%d}\r\n" % len(data), data)
                        parts_size += len(data)
                        out = bytearray()
                    elif spec == "HEADER":
                        out += name.encode() + b" " + _literal(msg.header_section("HEADER"))
                    else:
                        from ..mime import section_bytes

                        out += name.encode() + b" " + _literal(section_bytes(msg.data, msg.root, (), spec) or b"")
                elif name == "BODY[]":
                    sec = item.section or Section()
                    if not sec.path and sec.spec is None and mailbox.size(uid) > STREAM_THRESHOLD:
                        stream = mailbox.open_stream(uid)
                        sent_part = True
                        parts.append(bytes(out) + label + b" ")
                        yield parts
                        parts = []
                        parts_size = 0
                        out = bytearray()
                        yield from _stream_whole(stream, mailbox.size(uid), item.partial)
                        continue
                    if not sec.path and sec.spec is None and item.partial is None:
                        data = msg.data
                        parts += (bytes(out) + label + b" {%d}\r\n" % len(data), data)
                        parts_size += len(data)
                        out = bytearray()
                        continue
                    out += label + b" " + _body_section(msg, item)
                elif name == "BINARY[]":
                    out += label + b" " + _binary_section(msg, item)
                elif name == "BINARY.SIZE[]":
                    out += label + b" " + _binary_size(msg, item)
                else:
                    out += name.encode() + b" NIL"
            if set_now and not wants_flags:
                out += b" FLAGS " + R.flag_list(flags_of(uid))
            out += b")\r\n"
            if parts:
                parts.append(bytes(out))
                yield parts
            else:
                yield bytes(out)
        except NoSuchMessage:
            if sent_part:
                yield b")\r\n"  # items already sent are whole: end the response validly
            return True
        except Exception:
            if sent_part:
                yield b")\r\n"
            raise
        return False


def _whole_bodies(items: list[FetchItem]) -> bool:
    """FETCH of whole messages alone (BODY.PEEK[], with UID or not): the
    loop of mail synchronisers (mbsync, offlineimap, mutt)."""
    kinds = [i.name for i in items]
    if kinds not in (["BODY[]"], ["UID", "BODY[]"]):
        return False
    body = items[-1]
    sec = body.section
    return body.partial is None and (sec is None or not sec.path and sec.spec is None)


def _fetch_whole(view: Any, messages: list[tuple[int, int]], labelled: list[tuple[FetchItem, bytes]],
                 uid_cmd: bool) -> Iterator[bytes | list[bytes]]:
    """Whole messages, many to one yield: [text, body, text, body, ..., text],
    the text between two bodies holding the end of one response and the start
    of the next.  A message too large to hold goes the general way (streamed)."""
    mailbox = view.mailbox
    pending = view.pending_expunged
    with_uid = len(labelled) == 2
    head = (b"* %d FETCH (UID %d " if with_uid else b"* %d FETCH (") + labelled[-1][1] + b" {%d}\r\n"
    one = _OneMessage(view, labelled, False, False)
    parts: list[bytes] = []
    text = b""  # what goes before the next body
    held = 0
    missing = False
    if pending:
        missing = any(uid in pending for _, uid in messages)
        messages = [m for m in messages if m[1] not in pending]
    for (seq, uid), data in zip(messages, mailbox.read_many([uid for _, uid in messages], STREAM_THRESHOLD)):
        if type(data) is not bytes and data is not None:  # gone (NoSuchMessage)
            missing = True
            continue
        if data is None:  # too large to hold: streamed by the general path
            if parts or text:
                yield [*parts, text]
                parts, text, held = [], b"", 0
            if (yield from one.fetch(seq, uid)):
                missing = True
            continue
        parts += (text + (head % ((seq, uid, len(data)) if with_uid else (seq, len(data)))), data)
        text = b")\r\n"
        held += len(data)
        if held >= CHUNK:
            parts.append(text)
            yield parts
            parts, text, held = [], b"", 0
    if parts or text:
        parts.append(text)
        yield parts
    return _done(missing, uid_cmd)


_SECTION_ITEMS = frozenset(("BODY[]", "BINARY[]", "BINARY.SIZE[]"))
_META_ITEMS = frozenset(("UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "MODSEQ"))
_DERIVED = {
    "ENVELOPE": ("envelope.wire", _envelope),
    "BODY": ("body.wire", _body),
    "BODYSTRUCTURE": ("bodystructure.wire", _bodystructure),
}
_FAST_ITEMS = _META_ITEMS | frozenset(_DERIVED)
_HEADER_FIELD_SPECS = ("HEADER.FIELDS", "HEADER.FIELDS.NOT")


def header_fields_key(item: FetchItem) -> str | None:
    """The cache key of a top-level BODY.PEEK[HEADER.FIELDS (...)] item
    (clients ask for the same few fields of every message, every session),
    or None if the item is not of that kind."""
    sec = item.section
    if item.name != "BODY[]" or sec is None or sec.path or item.partial is not None:
        return None
    spec = (sec.spec or "").upper()
    if spec not in _HEADER_FIELD_SPECS or not sec.fields:
        return None
    return "hdr." + spec.lower() + "." + ",".join(sorted({f.lower() for f in sec.fields})) + ".lit"


class _Column:
    """How one derived item of the fast path is read, built and written."""

    __slots__ = ("key", "build")

    def __init__(self, key: str, build: Callable[[MessageData], bytes]) -> None:
        self.key = key
        self.build = build  # the value as sent, for a message whose value is not cached


def _derived_column(name: str) -> _Column:
    key, builder = _DERIVED[name]
    # only called for a value the column's read found missing: no second lookup
    return _Column(key, lambda msg: msg.build_wire(key, builder))


# A FETCH that finds this many messages in a row without their values, with
# at least HELP_MIN messages still to go, hands the building of the rest to
# helper processes (when fetch_helper is on, the default; see
# store/maildir/prebuild.py).
HELP_AFTER = 32
HELP_MIN = 1024
HELPER_MEMOS = 64  # entries in each of a helper's memos (see mime.wire.DerivedValues)


def _header_column(item: FetchItem, key: str) -> _Column:
    sec = item.section
    assert sec is not None

    def build(msg: MessageData) -> bytes:
        value = _literal(msg.header_section(sec.spec or "", sec.fields))
        msg.mailbox.cache_put(msg.uid, key, value)  # cached as sent: a literal
        return value

    return _Column(key, build)


def _fetch_fast(view: Any, seqs: Any, uids: list[int], items: list[FetchItem], uid_cmd: bool,
                may_help: bool) -> Iterator[bytes]:
    """FETCH of what the store keeps per message (flags, size, date, modseq)
    and of cached items (ENVELOPE, BODY, BODYSTRUCTURE, header fields): one
    pass over the store's arrays and cache files, one %-format per message,
    flag lists and dates formatted once per distinct value, output handed
    over in large chunks.  A value missing from the cache is built as the
    general path builds it, and cached.  The answer is the general path's,
    byte for byte."""
    from itertools import repeat
    from operator import itemgetter

    mailbox = view.mailbox
    is_recent = mailbox.is_recent
    any_recent = mailbox.recent_count() > 0
    pending = view.pending_expunged
    fmt_date = R.InternalDateFormatter()
    names = [i.name for i in items]
    # the row per message: seq, uid, flags, size, date, modseq, then one
    # value per column; the template picks what was asked, in order
    pieces = {"UID": (b"UID %d", 1), "FLAGS": (b"FLAGS %s", 2), "RFC822.SIZE": (b"RFC822.SIZE %d", 3),
              "INTERNALDATE": (b"INTERNALDATE %s", 4), "MODSEQ": (b"MODSEQ (%d)", 5)}
    columns: list[_Column] = []
    parts, picks = [], [0]
    for item in items:
        if item.name in pieces:
            parts.append(pieces[item.name][0])
            picks.append(pieces[item.name][1])
            continue
        hkey = header_fields_key(item)
        if hkey is not None:
            columns.append(_header_column(item, hkey))
            parts.append(section_label(item).replace(b"%", b"%%") + b" %s")
        else:
            columns.append(_derived_column(item.name))
            parts.append(item.name.encode() + b" %s")
        picks.append(5 + len(columns))
    template = b"* %d FETCH (" + b" ".join(parts) + b")\r\n"
    pick = itemgetter(*picks)
    want_flags, want_date = "FLAGS" in names, "INTERNALDATE" in names
    flag_of: dict[frozenset[str], bytes] = {}  # flag list by flags (without \\Recent)
    metas = mailbox.message_meta(uids, "RFC822.SIZE" in names, want_date)
    cached = [mailbox.cache_get_many(uids, c.key) for c in columns]
    out = bytearray()
    missing = False
    fl = db = b""
    # (the values of one message come as one tuple, made in C)
    rows = zip(seqs, uids, metas, zip(*cached) if columns else repeat(()))
    all_bytes = (bytes,) * len(columns)  # what the types of cached values are
    # misses in a row (a cold stretch, not a few scattered ones: helpers build
    # every message after, needed or not) before helper processes build the rest
    # (helpers build ENVELOPE, BODY and BODYSTRUCTURE only: none for header fields)
    derived = tuple(n for n in names if n in _DERIVED)  # (the columns, in order)
    misses_to_help = HELP_AFTER if may_help and columns and len(derived) == len(columns) else -1
    last_miss = -2
    helper: Any = None
    try:
        for i, (seq, uid, meta, values) in enumerate(rows):
            if meta is None or uid in pending:
                missing = True
                continue
            flags, size, date, modseq = meta
            if want_flags:
                recent = any_recent and is_recent(uid)
                fl = None if recent else flag_of.get(flags)  # type: ignore[assignment]
                if fl is None:
                    fl = R.flag_list(sorted(flags) + (["\\Recent"] if recent else []))
                    if not recent:
                        flag_of[flags] = fl
            if want_date:
                db = fmt_date(date)
            if columns and tuple(map(type, values)) != all_bytes:  # (a value missing, or of another kind)
                if misses_to_help > 0:
                    if i != last_miss + 1:
                        misses_to_help = HELP_AFTER  # a new run of misses
                    last_miss = i
                    misses_to_help -= 1
                    if not misses_to_help:
                        rest = uids[i + 1 :]
                        if len(rest) >= HELP_MIN:
                            builder = ("imapd.mime.wire", "DerivedValues", (derived, HELPER_MEMOS))
                            helper = mailbox.build_ahead(rest, builder)
                built = helper.take(uid) if helper is not None else None
                if built is not None:
                    new, mime = built  # (the structure comes marshalled, and is cached so)
                    mailbox.cache_put_row(uid, [("mime", mime, True), *[
                        (c.key, b, False) for c, v, b in zip(columns, values, new) if type(v) is not bytes]])
                    values = new
                else:
                    msg = MessageData(mailbox, uid)
                    try:
                        values = [v if type(v) is bytes else c.build(msg) for c, v in zip(columns, values)]
                    except NoSuchMessage:
                        missing = True
                        continue
            out += template % pick((seq, uid, fl, size, db, modseq, *values))
            if len(out) >= CHUNK:
                yield bytes(out)
                out.clear()
    finally:
        if helper is not None:
            helper.close()
    if out:
        yield bytes(out)
    return _done(missing, uid_cmd)


def _modseq(mailbox: Any, uid: int) -> int:
    get = getattr(mailbox, "modseq", None)
    return int(get(uid)) if get is not None else 1


_HEADER_SPECS = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")


def _body_section(msg: MessageData, item: FetchItem) -> bytes:
    from ..mime import section_bytes

    sec = item.section or Section()
    if not sec.path and sec.spec is None:
        data = msg.data
    elif not sec.path and sec.spec and sec.spec.upper() in _HEADER_SPECS:
        data = msg.header_section(sec.spec, sec.fields)
    else:
        found = section_bytes(msg.data, msg.root, sec.path, sec.spec, list(sec.fields) or None)
        data = found if found is not None else b""
    return _literal(_partial(data, item.partial))


def _binary_data(msg: MessageData, item: FetchItem) -> bytes:
    """The decoded part for BINARY[...] and BINARY.SIZE[...]; NO [UNKNOWN-CTE] if impossible."""
    from ..mime import UnknownCTE, binary_section

    sec = item.section or Section()
    try:
        data = binary_section(msg.data, msg.root, sec.path)
    except UnknownCTE:
        raise CommandError("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
    return data if data is not None else b""


def _binary_section(msg: MessageData, item: FetchItem) -> bytes:
    data = _partial(_binary_data(msg, item), item.partial)
    if b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data  # literal8 (RFC 3516)
    return _literal(data)


def _binary_size(msg: MessageData, item: FetchItem) -> bytes:
    return b"%d" % len(_binary_data(msg, item))


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def _stream_whole(stream: Any, size: int, partial: tuple[int, int] | None) -> Iterator[bytes]:
    """A whole large message as a literal, read from an open stream chunk by chunk.

    The stream is opened before anything of the response is sent, so a message
    that vanished is reported cleanly instead of breaking the framing."""
    start, length = 0, size
    if partial is not None:
        start = min(partial[0], size)
        length = max(0, min(partial[1], size - start))
    yield b"{%d}\r\n" % length
    sent = 0
    try:
        with stream:
            skipped = 0
            while skipped < start:
                chunk = stream.read(min(CHUNK, start - skipped))
                if not chunk:
                    break
                skipped += len(chunk)
            while sent < length:
                chunk = stream.read(min(CHUNK, length - sent))
                if not chunk:
                    break
                chunk = chunk[: length - sent]
                sent += len(chunk)
                yield chunk
    except OSError:
        from .. import log

        log.exception("reading a message failed in the middle of a literal")
    if sent < length:  # the file shrank under us or failed: keep the framing valid
        yield b" " * (length - sent)
