"""Sans-I/O IMAP command parser (RFC 3501 grammar with RFC 9051 additions).

Feed it bytes with `feed()`, then call `next_event()` until it returns None:

* a `Command` subclass (see `commands.py`) when a whole command has arrived,
* `NeedLiteral` when the client announced a synchronizing literal `{n}` and
  waits for `+ ...` before sending it,
* `ProtocolError` for malformed input or a limit; the session answers it and
  the parser has already skipped to the next command (unless `fatal`).

It never touches a file or a socket, so it is tested with plain bytes.
Framing and grammar are separate: framing cuts the byte stream into
commands (text lines joined by literals) under the configured limits; the
grammar then reads one framed command with a small recursive-descent reader.
"""

from __future__ import annotations

from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable

    from .seqset import SeqSet

from . import MAX_NUMBER
from . import commands as c

# --------------------------------------------------------------------- events


class NeedLiteral(Record):
    """The client waits for a continuation before sending `size` bytes."""

    __slots__ = ('tag', 'size')

    tag: str
    size: int


class ProtocolError(Record):
    """Input that is not a valid command.

    `tag` is the command's tag when one could be read (answer tagged BAD),
    else "*".  `fatal` means the stream cannot be trusted any more: answer
    `* BYE` and close.  `code` is an optional response code (e.g. TOOBIG).
    `failure` is the exception when the fault is the parser's own (a grammar
    that could not be loaded, a bug): for the log, never for the client.
    """

    __slots__ = ('tag', 'text', 'fatal', 'code', 'status', 'failure')
    _defaults = {'fatal': False, 'code': None, 'status': "BAD", 'failure': None}

    tag: str
    text: str
    fatal: bool
    code: str | None
    status: str
    failure: BaseException | None


class RawLine(Record):
    """A line read in raw mode (AUTHENTICATE responses, IDLE's DONE)."""

    __slots__ = ('data',)

    data: bytes


class Limits(Record):
    __slots__ = ('line_length', 'literal_size', 'append_size', 'nesting_depth')
    _defaults = {'line_length': 65536, 'literal_size': 1 << 20, 'append_size': 64 << 20, 'nesting_depth': 32}
    line_length: int  # bytes of command text, literals excluded
    literal_size: int  # total literal bytes of one command
    append_size: int  # total literal bytes of one APPEND
    nesting_depth: int  # parentheses / NOT / OR depth


class ParseError(Exception):
    """Raised inside the grammar; becomes a ProtocolError event."""


# ------------------------------------------------------------ byte classes
# Tokens are runs of bytes from a class, found with bytes.translate() and
# find() rather than regular expressions: `re` (with enum, functools and the
# pattern compiler) would cost every connection milliseconds before its first
# command.  A class is a translation table: member bytes -> 1, others -> 0.


def _byte_class(ranges: tuple[tuple[int, int], ...], singles: bytes = b"", excluded: bool = False) -> bytes:
    """The table of the bytes in `ranges` (inclusive) and `singles`, or with
    `excluded`, of every byte but those.  Built at every start-up: ranges are
    filled by slice, not byte by byte (a loop over the 170 bytes outside an
    atom took 10 us a table)."""
    inside, outside = (0, 1) if excluded else (1, 0)
    table = bytearray([outside]) * 256
    for lo, hi in ranges:
        table[lo:hi + 1] = bytes([inside]) * (hi + 1 - lo)
    for b in singles:
        table[b] = inside
    return bytes(table)


_CTL_SP_8BIT = ((0x00, 0x20), (0x7F, 0xFF))
_DIGITS = ((0x30, 0x39),)
_LETTERS = ((0x41, 0x5A), (0x61, 0x7A))
# tag = 1*<any ASTRING-CHAR except "+">: no CTL, SP, ( ) { % * " \\ or +, but ] and } are fine
_TAG = _byte_class(((0x21, 0x21), (0x23, 0x24), (0x26, 0x27), (0x2C, 0x5B), (0x5D, 0x7A), (0x7C, 0x7E)))
_ATOM = _byte_class(_CTL_SP_8BIT, b'(){%*"\\]', excluded=True)
_ASTRING = _byte_class(_CTL_SP_8BIT, b'(){%*"\\', excluded=True)
_LIST_MAILBOX = _byte_class(_CTL_SP_8BIT, b'(){"\\', excluded=True)  # atom chars plus % * ]
_LIST_ELEMENT = _byte_class(_CTL_SP_8BIT, b'(){"', excluded=True)  # astring chars plus \\ % * (flags, sets)
_NUMBER = _byte_class(_DIGITS)
_SEQSET = _byte_class(_DIGITS, b":*,$")
_BASE64 = _byte_class(_LETTERS + _DIGITS, b"+/")
_FETCH_NAME = _byte_class(_LETTERS + _DIGITS, b".")


def _run_end(text: bytes, pos: int, cls: bytes) -> int:
    """Where the run of `cls` bytes that starts at `pos` ends (`pos` if none)."""
    end = text.translate(cls).find(0, pos)
    return len(text) if end < 0 else end


def _fits(data: bytes, shape: bytes) -> bool:
    """`data` starts with `shape`: "d" a digit, "a" a letter, "+" a sign, other bytes themselves."""
    if len(data) < len(shape):
        return False
    for ch, want in zip(data, shape):
        if want == 0x64:  # d
            if not 0x30 <= ch <= 0x39:
                return False
        elif want == 0x61:  # a
            if not (0x41 <= ch <= 0x5A or 0x61 <= ch <= 0x7A):
                return False
        elif want == 0x2B:  # +
            if ch != 0x2B and ch != 0x2D:
                return False
        elif ch != want:
            return False
    return True


def _literal_at_end(line: bytes) -> tuple[int, bool] | None:
    """(size, non-synchronizing) when `line` ends with a literal announcement
    `{n}` or `{n+}` (or `~{n}`; n of at most 20 digits, a CR may follow)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.endswith(b"}"):
        return None
    start = line.rfind(b"{")
    if start < 0:
        return None
    digits = line[start + 1 : -1]
    non_sync = digits.endswith(b"+")
    if non_sync:
        digits = digits[:-1]
    if not (1 <= len(digits) <= 20 and digits.isdigit()):
        return None
    return int(digits), non_sync


# ------------------------------------------------------------------ framing


class Parser:
    """Cuts the byte stream into commands and parses them."""

    def __init__(self, limits: Limits | None = None, literal_plus: bool = True) -> None:
        self.limits = limits or Limits()
        self.literal_plus = literal_plus
        self._buf = bytearray()
        self._parts: list[bytes] = []  # text, literal, text, literal, ..., text
        self._text_bytes = 0
        self._literal_bytes = 0
        self._literal_wanted: int | None = None
        self._scanned = 0  # bytes at the start of _buf known to hold no LF
        self._skipping_line = False  # discarding the rest of a rejected command up to its LF
        self._skip_tail = b""  # last bytes of the line being skipped (a literal may end it)
        self._skip_tag = "*"  # tag of the command being skipped
        self._discard_bytes = 0  # literal bytes of a rejected command still to throw away
        self.raw_mode = False  # next line is returned as RawLine

    # -- input ---------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received beyond what the command being read still needs (for
        input flow control).  A literal that was announced and accepted is not
        counted: its size is already bounded by the limits, and the session must
        keep reading until it has arrived."""
        return max(0, len(self._buf) - (self._literal_wanted or self._discard_bytes))

    def discard_input(self) -> None:
        """Forget everything buffered (after STARTTLS: pipelined bytes are never executed)."""
        self._buf.clear()
        self._scanned = 0
        self._reset_command()
        self._skipping_line = False
        self._skip_tail = b""
        self._discard_bytes = 0

    def _reset_command(self) -> None:
        self._parts = []
        self._text_bytes = 0
        self._literal_bytes = 0
        self._literal_wanted = None

    # -- events --------------------------------------------------------------
    def next_event(self) -> c.Command | NeedLiteral | ProtocolError | RawLine | None:
        while True:
            if self._literal_wanted is not None:
                n = self._literal_wanted
                if len(self._buf) < n:
                    return None
                self._parts.append(bytes(self._buf[:n]))
                del self._buf[:n]
                self._scanned = 0
                self._literal_wanted = None
                continue
            if self._discard_bytes:
                n = min(self._discard_bytes, len(self._buf))
                del self._buf[:n]
                self._scanned = 0
                self._discard_bytes -= n
                if self._discard_bytes:
                    return None
                continue
            lf = self._buf.find(b"\n", self._scanned)
            if lf < 0:
                self._scanned = len(self._buf)
            if self._skipping_line:
                if lf < 0:
                    self._skip_tail = (self._skip_tail + bytes(self._buf[-32:]))[-32:]
                    self._buf.clear()
                    self._scanned = 0
                    return None
                tail = (self._skip_tail + bytes(self._buf[max(0, lf - 32) : lf]))[-32:]
                del self._buf[: lf + 1]
                self._scanned = 0
                self._skipping_line = False
                self._skip_tail = b""
                err = self._skip_literal(tail, self._skip_tag)
                if err is not None:
                    return err
                continue
            if lf < 0:
                # + 1: the line may yet end with CR LF, and the CR is not counted
                if self._text_bytes + len(self._buf) > self.limits.line_length + 1:
                    return self._too_long()
                return None
            line = bytes(self._buf[:lf])
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._text_bytes + len(line) > self.limits.line_length:
                # as if it had arrived in pieces: skip to the LF, so that a
                # literal ending the line is found there
                return self._too_long()
            del self._buf[: lf + 1]
            self._scanned = 0
            if self.raw_mode and not self._parts:
                self.raw_mode = False
                return RawLine(line)
            self._text_bytes += len(line)
            announced = _literal_at_end(line)
            if announced is None:
                self._parts.append(line)
                parts = self._parts
                self._reset_command()
                return self._parse(parts)
            # a literal follows this line
            size, non_sync = announced
            self._parts.append(line)
            tag = self._tag_of(self._parts[0])
            limit = self._literal_limit()
            if size + self._literal_bytes > limit:
                self._reset_command()
                if non_sync:
                    # the bytes are already on their way: we cannot find the next command
                    return ProtocolError(tag, f"Literal of {size} bytes exceeds the limit of {limit}", fatal=True, code="TOOBIG")
                return ProtocolError(tag, f"Literal of {size} bytes exceeds the limit of {limit}", code="TOOBIG", status="NO")
            if non_sync and not self.literal_plus:
                self._reset_command()
                return ProtocolError(tag, "Non-synchronizing literals are not enabled", fatal=True)
            self._literal_bytes += size
            self._literal_wanted = size
            if not non_sync:
                return NeedLiteral(tag, size)

    def _too_long(self) -> ProtocolError:
        if self.raw_mode and not self._parts:
            self.raw_mode = False  # the rejected line was the raw line
            tag = "*"
            text = "Line too long"
        else:
            tag = self._tag_of(self._parts[0]) if self._parts else self._long_line_tag(self._buf)
            text = "Command line too long"
        self._reset_command()
        lf = self._buf.find(b"\n")  # only when called for a complete line
        end = lf if lf >= 0 else len(self._buf)
        self._skip_tail = bytes(self._buf[max(0, end - 32) : end])
        self._skip_tag = tag
        del self._buf[:end]
        self._scanned = 0
        self._skipping_line = True
        return ProtocolError(tag, text, code="TOOBIG")

    def _skip_literal(self, line: bytes, tag: str) -> ProtocolError | None:
        """A rejected command's `line` ends with a non-synchronizing literal: its
        bytes are on their way and must not be taken for commands, so throw them
        away with the rest of the command.  (A synchronizing literal is never
        sent, since the client waits for a `+` that does not come.)"""
        announced = _literal_at_end(line)
        if announced is None or not announced[1]:
            return None
        size = announced[0]
        if size > max(self.limits.literal_size, self.limits.append_size) or not self.literal_plus:
            return ProtocolError(tag, f"Cannot skip a literal of {size} bytes in a rejected command", fatal=True, code="TOOBIG")
        self._discard_bytes = size
        self._skipping_line = True
        return None

    def _literal_limit(self) -> int:
        first = self._parts[0]
        sp = first.find(b" ")
        name = first[sp + 1 :].split(b" ", 1)[0].upper() if sp >= 0 else b""
        return self.limits.append_size if name == b"APPEND" else self.limits.literal_size

    def _long_line_tag(self, line: bytes | bytearray) -> str:
        """The tag of an over-long first line, read from its first `line_length`
        + 1 bytes (all that is kept of it), and only if a space follows it there."""
        head = bytes(line[: self.limits.line_length + 1])
        end = _run_end(head, 0, _TAG)
        return head[:end].decode("ascii") if end and head[end : end + 1] == b" " else "*"

    @staticmethod
    def _tag_of(line: bytes) -> str:
        end = _run_end(line, 0, _TAG)
        if end and line[end : end + 1] in (b" ", b""):
            return line[:end].decode("ascii")
        return "*"

    def _parse(self, parts: list[bytes]) -> c.Command | ProtocolError:
        tag = self._tag_of(parts[0])
        for text in parts[::2]:
            if b"\x00" in text:
                return ProtocolError(tag, "NUL octet in command line")
        try:
            r = Reader(parts, self.limits.nesting_depth)
            tag = r.tag()
            return parse_command(r, tag)
        except ParseError as e:
            return ProtocolError(tag, str(e))
        except RecursionError:
            return ProtocolError(tag, "Command nested too deeply")
        except Exception as e:  # noqa: BLE001 - our fault, not the client's: the session logs it
            return ProtocolError(tag, "Internal server error, logged", code="SERVERBUG", status="NO", failure=e)


# ------------------------------------------------------------------- reader

MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}


class Reader:
    """Reads tokens from a framed command: text parts separated by literals."""

    __slots__ = ("parts", "index", "text", "pos", "depth", "max_depth", "_mapped")

    def __init__(self, parts: list[bytes], max_depth: int = 32) -> None:
        self.parts = parts
        self.index = 0
        self.text = parts[0]
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth
        self._mapped: dict[bytes, bytes] = {}  # byte class -> `text` translated by it

    # -- primitives ------------------------------------------------------
    def peek(self, n: int = 1) -> bytes:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text) and self.index + 1 >= len(self.parts)

    def error(self, what: str) -> ParseError:
        if self.pos >= len(self.text):
            if self.text.endswith(b" "):
                return ParseError(f"{what} (trailing space at end of line)")
            return ParseError(f"{what} (at end of line)")
        near = self.text[self.pos : self.pos + 20].decode("ascii", "replace")
        if self.text[self.pos] >= 0x80:
            return ParseError(f"{what}: 8-bit characters need a quoted string or a literal, near '{near}'")
        return ParseError(f"{what} near '{near}'")

    def sp(self, what: str | None = None) -> None:
        """A space before the next argument; `what` names it for a command cut short."""
        if self.peek() != b" ":
            if what is not None and self.at_end():
                raise ParseError(f"Missing {what}")
            raise self.error("Expected a space")
        self.pos += 1

    def try_sp(self) -> bool:
        if self.peek() == b" ":
            self.pos += 1
            return True
        return False

    def expect(self, token: bytes, what: str | None = None) -> None:
        if self.text[self.pos : self.pos + len(token)].upper() != token:
            raise self.error(what or f"Expected '{token.decode()}'")
        self.pos += len(token)

    def end(self) -> None:
        if not self.at_end():
            if self.peek() == b" " and self.pos + 1 >= len(self.text):
                raise self.error("Trailing space")
            raise self.error("Unexpected extra arguments")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise ParseError("Command nested too deeply")

    def leave(self) -> None:
        self.depth -= 1

    def tag(self) -> str:
        end = self.scan(_TAG)
        if not end:
            if not self.text:
                raise ParseError("Empty command line")
            raise self.error("Missing or invalid tag")
        self.pos = end
        tag = self.text[:end].decode("ascii")
        if self.pos >= len(self.text):
            raise ParseError("Missing command name after the tag")
        if self.peek() != b" ":
            raise self.error("Expected a space after the tag")
        self.pos += 1
        return tag

    def scan(self, cls: bytes, pos: int | None = None) -> int:
        """Where the run of `cls` bytes from `pos` (default: here) ends; each
        text part is translated once per class, so a long line costs no more
        per token than a short one."""
        mapped = self._mapped.get(cls)
        if mapped is None:
            mapped = self._mapped[cls] = self.text.translate(cls)
        end = mapped.find(0, self.pos if pos is None else pos)
        return len(mapped) if end < 0 else end

    def _match(self, cls: bytes) -> bytes | None:
        """The run of `cls` bytes here (consumed), None if there is none."""
        start = self.pos
        end = self.scan(cls)
        if end == start:
            return None
        self.pos = end
        return self.text[start:end]

    def _quoted(self) -> bytes | None:
        """The quoted string here (consumed), unescaped; None if invalid.  Only
        \\" and \\\\ may be escaped; CR and LF are not allowed."""
        text = self.text
        i = self.pos + 1
        pieces: list[bytes] = []
        while True:
            q = text.find(34, i)  # '"' (an int: memchr, faster than a bytes needle)
            if q < 0:
                return None
            b = text.find(92, i, q)  # backslash
            if b < 0:
                pieces.append(text[i:q])
                break
            escaped = text[b + 1 : b + 2]
            if escaped != b'"' and escaped != b"\\":
                return None
            pieces.append(text[i:b])
            pieces.append(escaped)
            i = b + 2
        value = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if 13 in value or 10 in value:  # CR, LF
            return None
        self.pos = q + 1
        return value

    def atom(self, what: str = "atom") -> str:
        tok = self._match(_ATOM)
        if tok is None:
            raise self.error(f"Expected {what}")
        return tok.decode("ascii")

    def number(self, what: str = "number", limit: int = MAX_NUMBER) -> int:
        tok = self._match(_NUMBER)
        if tok is None:
            raise self.error(f"Expected {what}")
        if len(tok) > 20 or int(tok) > limit:
            raise ParseError(f"{what.capitalize()} {tok[:20].decode()} is too large")
        return int(tok)

    def nz_number(self, what: str = "number") -> int:
        n = self.number(what)
        if n == 0:
            raise ParseError(f"{what.capitalize()} must not be zero")
        return n

    def _literal(self) -> bytes | None:
        """If a literal announcement ends this text part, return the literal."""
        rest = self.text[self.pos :]
        if rest[:1] == b"~":
            rest = rest[1:]
        digits = rest[1:-1]
        if digits.endswith(b"+"):
            digits = digits[:-1]
        if rest[:1] != b"{" or rest[-1:] != b"}" or not digits.isdigit():
            return None
        if self.index + 1 >= len(self.parts):
            raise self.error("Literal without data")
        data = self.parts[self.index + 1]
        self.index += 2
        self.text = self.parts[self.index]
        self.pos = 0
        self._mapped = {}
        return data

    def string(self, what: str = "string") -> bytes:
        ch = self.peek()
        if ch == b'"':
            value = self._quoted()
            if value is None:
                raise self.error(f"Invalid quoted {what}")
            return value
        if ch == b"{":
            data = self._literal()
            if data is None:
                raise self.error(f"Invalid literal for {what}")
            if b"\x00" in data:
                raise ParseError(f"NUL octet in literal for {what}")
            return data
        if self.peek(2) == b"~{":
            raise ParseError(f"A literal8 (~{{n}}) is not allowed for {what}, only for APPEND message data")
        raise self.error(f"Expected {what} (quoted or literal)")

    def astring(self, what: str = "string") -> bytes:
        ch = self.peek()
        if ch in (b'"', b"{") or self.peek(2) == b"~{":
            return self.string(what)
        tok = self._match(_ASTRING)
        if tok is None:
            raise self.error(f"Expected {what}")
        return tok

    def nstring(self, what: str = "string") -> bytes | None:
        if self.text[self.pos : self.pos + 3].upper() == b"NIL" and self.scan(_ASTRING, self.pos + 3) == self.pos + 3:
            self.pos += 3
            return None
        return self.string(what)

    def mailbox(self) -> str:
        return _text(self.astring("mailbox name"))

    def list_mailbox(self) -> str:
        ch = self.peek()
        if ch in (b'"', b"{") or self.peek(2) == b"~{":
            return _text(self.string("mailbox pattern"))
        tok = self._match(_LIST_MAILBOX)
        if tok is None:
            raise self.error("Expected mailbox pattern")
        return _text(tok)

    def seqset(self) -> SeqSet:
        from .seqset import SeqSet  # (only FETCH, STORE, SEARCH, COPY... read one)

        tok = self._match(_SEQSET)
        if tok is None:
            raise self.error("Expected sequence set")
        try:
            return SeqSet.parse(tok.decode("ascii"))
        except ValueError as e:
            raise ParseError(f"Invalid sequence set: {e}") from None

    def flag(self) -> str:
        if self.peek() == b"\\":
            self.pos += 1
            if self.peek() == b"*":
                self.pos += 1
                return "\\*"
            return "\\" + self.atom("flag name")
        return self.atom("flag")

    def flag_list(self) -> list[str]:
        self.expect(b"(", "Expected '(' to start flag list")
        flags: list[str] = []
        if self.peek() != b")":
            flags.append(self.flag())
            while self.try_sp():
                flags.append(self.flag())
        self.expect(b")", "Expected ')' to end flag list")
        return flags

    def date(self) -> tuple[int, int, int]:
        quoted = self.peek() == b'"'
        if quoted:
            self.pos += 1
        text, at = self.text, self.pos
        width = 2 if _fits(text[at : at + 3], b"dd-") else 1
        if not _fits(text[at : at + width + 9], b"d" * width + b"-aaa-dddd"):
            raise self.error("Expected date (dd-Mon-yyyy)")
        mon = text[at + width + 1 : at + width + 4].upper().decode()
        if mon not in MONTHS:
            raise self.error("Expected date (dd-Mon-yyyy)")
        day, month, year = int(text[at : at + width]), MONTHS[mon], int(text[at + width + 5 : at + width + 9])
        self.pos = at + width + 9
        if quoted:
            self.expect(b'"', "Expected closing quote after date")
        _check_date(year, month, day)
        return (year, month, day)

    def date_time(self) -> float:
        # '"' day "-" month "-" year SP time SP zone '"', the day as "d", " d" or "dd"
        text, at = self.text, self.pos
        rest = b'-aaa-dddd dd:dd:dd +dddd"'
        if _fits(text[at : at + 28], b'"dd' + rest) or _fits(text[at : at + 28], b'" d' + rest):
            width = 2
        elif _fits(text[at : at + 27], b'"d' + rest):
            width = 1
        else:
            width = 0
        s = text[at + 1 + width : at + 26 + width]  # from the "-" before the month
        mon = s[1:4].upper().decode() if width else ""
        if mon not in MONTHS:
            raise self.error('Expected date-time ("dd-Mon-yyyy hh:mm:ss +zzzz")')
        self.pos = at + 26 + width
        day = int(text[at + 1 : at + 1 + width].strip())
        month = MONTHS[mon]
        year = int(s[5:9])
        hh, mm, ss = int(s[10:12]), int(s[13:15]), int(s[16:18])
        _check_date(year, month, day)
        if hh > 23 or mm > 59 or ss > 60:
            raise ParseError("Invalid time in date-time")
        zh, zm = int(s[20:22]), int(s[22:24])
        if zm > 59:
            raise ParseError("Invalid time zone in date-time")
        import calendar

        offset = (zh * 3600 + zm * 60) * (1 if s[19:20] == b"+" else -1)
        return calendar.timegm((year, month, day, hh, mm, min(ss, 59), 0, 0, 0)) - offset


def _check_date(year: int, month: int, day: int) -> None:
    import calendar

    if not 1 <= year <= 9999 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise ParseError("Invalid date")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


# ----------------------------------------------------------------- commands

_CommandParser = "Callable[[Reader, str, str], c.Command]"
COMMANDS: dict[str, _CommandParser] = {}
_UID_COMMANDS: dict[str, _CommandParser] = {}  # after UID: FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE


def command(*names: str, uid: bool = False) -> Callable[[Callable[..., c.Command]], Callable[..., c.Command]]:
    """Register the parser of commands `names`; with `uid`, also of `UID name`
    (the parser is then called with uid=True)."""
    def register(fn: Callable[..., c.Command]) -> Callable[..., c.Command]:
        for n in names:
            COMMANDS[n] = fn
            if uid:
                _UID_COMMANDS[n] = lambda r, tag, name: fn(r, tag, name, uid=True)
        return fn

    return register


def uid_command(*names: str) -> Callable[[_CommandParser], _CommandParser]:
    """Register the parser of `UID name` for a command that exists only after UID."""
    def register(fn: _CommandParser) -> _CommandParser:
        for n in names:
            _UID_COMMANDS[n] = fn
        return fn

    return register


def later(module: str, names: tuple[str, ...], uid_names: tuple[str, ...] = ()) -> None:
    """Stand in for the parsers of commands whose grammar lives in `module`
    (`fetch_syntax`...): the first such command imports it, and its parsers
    replace these stand-ins.  A SELECT session never loads the grammar of
    FETCH, SEARCH or STORE, nor the classes of the commands they produce."""

    def load() -> None:
        __import__(f"{__package__}.{module}")

    def parse(r: Reader, tag: str, name: str) -> c.Command:
        load()
        if COMMANDS[name] is parse:
            raise RuntimeError(f"{module} does not parse {name}")
        return COMMANDS[name](r, tag, name)

    def parse_after_uid(r: Reader, tag: str, name: str) -> c.Command:
        load()
        if _UID_COMMANDS[name] is parse_after_uid:
            raise RuntimeError(f"{module} does not parse UID {name}")
        return _UID_COMMANDS[name](r, tag, name)

    for n in names:
        COMMANDS[n] = parse
    for n in uid_names:
        _UID_COMMANDS[n] = parse_after_uid


later("fetch_syntax", ("FETCH",), ("FETCH",))
later("search_syntax", ("SEARCH",), ("SEARCH",))
later("update_syntax", ("STORE", "COPY", "MOVE", "APPEND"), ("STORE", "COPY", "MOVE", "EXPUNGE"))
later("mailbox_syntax", ("RENAME", "LIST", "LSUB", "STATUS"))
later("session_syntax", ("LOGIN", "AUTHENTICATE", "ENABLE", "ID"))


def parse_command(r: Reader, tag: str) -> c.Command:
    tok = r._match(_ATOM)
    if tok is None:
        raise r.error("Expected command name")
    name = tok.decode().upper()
    if name == "UID":
        sub = r._match(_ATOM) if r.try_sp() else None
        sub_name = sub.decode().upper() if sub else ""
        if sub_name not in _UID_COMMANDS:
            raise ParseError("UID must be followed by FETCH, STORE, SEARCH, COPY, MOVE or EXPUNGE")
        cmd = _UID_COMMANDS[sub_name](r, tag, sub_name)
        r.end()
        return cmd
    fn = COMMANDS.get(name)
    if fn is None:
        raise ParseError(f"Unknown command {name[:40]}")
    cmd = fn(r, tag, name)
    r.end()
    return cmd


@command("CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "IDLE", "NAMESPACE")
def _simple(r: Reader, tag: str, name: str) -> c.Command:
    return c.Simple(tag, name)


@command("SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE")
def _mailbox_cmd(r: Reader, tag: str, name: str) -> c.Command:
    r.sp("mailbox name")
    mailbox = r.mailbox()
    params: list[Any] = []
    if name in ("SELECT", "EXAMINE", "CREATE") and r.try_sp():
        params = _generic_list(r)
    return c.MailboxCommand(tag, name, mailbox, params)


def _modifiers(r: Reader) -> dict[str, Any]:
    """Fetch/store modifiers such as (CHANGEDSINCE 5) or (UNCHANGEDSINCE 3)."""
    items = _generic_list(r)
    out: dict[str, Any] = {}
    i = 0
    while i < len(items):
        key = str(items[i]).upper()
        if key in ("CHANGEDSINCE", "UNCHANGEDSINCE"):
            value = str(items[i + 1]) if i + 1 < len(items) else ""
            if not (value.isascii() and value.isdigit()):
                raise ParseError(f"{key} needs a number")
            if len(value) > 19 or int(value) >= 1 << 63:
                raise ParseError(f"{key} value {value[:20]} is too large")
            out[key] = int(value)
            i += 2
        elif key == "VANISHED":
            out[key] = True
            i += 1
        else:
            raise ParseError(f"Unknown modifier {key[:40]}")
    return out


def _generic_list(r: Reader) -> list[Any]:
    """A parenthesised list of atoms, numbers, strings and nested lists."""
    r.expect(b"(", "Expected '('")
    r.enter()
    out: list[Any] = []
    if r.peek() != b")":
        while True:
            ch = r.peek()
            if ch == b"(":
                out.append(_generic_list(r))
            elif ch in (b'"', b"{"):
                out.append(_text(r.string()))
            else:
                tok = r._match(_LIST_ELEMENT)
                if tok is None:
                    raise r.error("Expected list element")
                out.append(tok.decode("ascii", "replace"))
            if not r.try_sp():
                break
    r.expect(b")", "Expected ')' to end list")
    r.leave()
    return out
