"""The message structure: one pass over the buffer, byte offsets of every part.

`parse_message` reads the message once and returns a tree of `Part` objects
that hold offsets into the original buffer (never copies of bodies), the
MIME fields BODYSTRUCTURE needs, and body line counts.  Everything else
(ENVELOPE, sections, decoding) works from those offsets.

How boundaries are found (the rules are Dovecot's, so both servers cut a
broken message into the same parts):

* A delimiter is a line starting with ``--`` + a boundary of *any* enclosing
  multipart; only the prefix must match, the longest matching boundary wins
  and, on a tie, the innermost.  ``--`` right after it makes it a close
  delimiter.
* The line break before a delimiter belongs to the delimiter, not the part.
* An outer delimiter ends every part nested inside it, so a missing close
  delimiter or a wrong inner boundary costs nothing but that part's
  children.
* A delimiter line ends a header block too (a part with no blank line).
* Content-* fields of a message (root or encapsulated) count only if it has
  MIME-Version or Content-Type; parts inside a multipart are always MIME.
* A syntactically invalid Content-Type is treated as absent (RFC 2045
  §5.2): text/plain, or message/rfc822 inside multipart/digest.

Speed: bodies are never looked at byte by byte in Python.  Delimiters are
found with ``bytes.find`` hops and searches (see `_Scanner`), the
header with one regex pass over the fields that matter (`scan_header`), and
lines are counted only where BODYSTRUCTURE shows them (text/*, message/*).
Nesting deeper than `MAX_DEPTH` is served as opaque leaves instead of being
descended into.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

from .headers import (
    Params,
    decode_params,
    find_header_end,
    parse_content_type,
    parse_token,
    parse_token_and_params,
    scan_header,
)
from .part import Part, count_lines, entity_lines

__all__ = ["Part", "header_part", "parse_message", "MAX_DEPTH"]  # Part re-exported for convenience

#: Deeper multipart/message nesting is not descended into.
MAX_DEPTH = 60

_TEXT = "text"
_MESSAGE = "message"
_MULTIPART = "multipart"


# --------------------------------------------------------------------- parser

# A delimiter hit: (boundary index in the active stack, where the part before
# it ends, delimiter line start, first byte after the delimiter line, close?)
Hit = tuple[int, int, int, int, bool]


_HEADER_WINDOW = 8192  # part headers longer than this take the careful path
_DASH_HOPS = 8  # lines starting with "-" tried one by one before a substring search


class _Scanner:
    """Finds delimiter lines: the first line at or after a position that
    starts with ``--`` + any of the active boundaries.

    All active boundaries are looked for in one pass, which stops at the
    first delimiter of any of them, so each byte of a message is scanned
    about once however deep the multiparts nest.
    """

    __slots__ = ("data", "n", "lf_form")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.n = len(data)
        # wire form has CRLF everywhere; if the first line ends in a bare LF
        # the message slipped through unconverted: accept LF blank lines
        lf = data.find(b"\n")
        self.lf_form = lf > 0 and data[lf - 1] != 13

    def next_delim(self, pos: int, active: list[bytes]) -> Hit | None:
        """The first delimiter line at/after line start *pos*.

        *active* holds the ``--boundary`` needles of the enclosing multiparts,
        outermost first.  Among needles matching the same line the longest
        wins, then the innermost (a boundary only has to be a prefix).

        Where dashes are rare (base64, much plain text) hopping from "-" to
        "-" with memchr is the fastest way through a body.  A dash inside a
        line means text with hyphens, and so do a few lines starting with a
        dash that are no delimiter: then a substring search for ``LF +
        needle`` takes over, which CPython speeds up with skips.
        """
        data = self.data
        find = data.find
        i = pos
        for _ in range(_DASH_HOPS):
            j = find(b"-", i)
            if j < 0:
                return None
            if j != pos and data[j - 1] != 10:  # *pos* is a line start itself
                i = j + 1  # no delimiter line starts before the next line
                break
            if data[j + 1:j + 2] == b"-":  # every needle starts with "--"
                hit = self._delim_at(j, pos, active)
                if hit is not None:
                    return hit
            k = find(b"\n", j)  # no delimiter can start before the next line
            if k < 0:
                return None
            i = k + 1
        best = -1
        for nd in reversed(active):  # inner boundaries tend to come first
            # only a line before the best so far can win: search no further
            p = find(b"\n" + nd, i - 1, best + len(nd) if best >= 0 else self.n)
            if p >= 0:
                best = p + 1
        return self._delim_at(best, pos, active) if best >= 0 else None

    def _delim_at(self, ls: int, pos: int, active: list[bytes]) -> Hit | None:
        """The delimiter on the line starting at *ls*, None if it is none."""
        data = self.data
        if len(active) == 1:
            if not data.startswith(active[0], ls):
                return None
            bi = 0
            blen = len(active[0])
        else:
            bi = -1
            blen = -1
            k = len(active) - 1
            while k >= 0:
                nd = active[k]
                if len(nd) > blen and data.startswith(nd, ls):
                    bi = k
                    blen = len(nd)
                k -= 1
            if bi < 0:
                return None
        if ls == pos:
            ds = ls
        elif ls - 2 >= pos and data[ls - 2] == 13:
            ds = ls - 2
        else:
            ds = ls - 1
        end = ls + blen
        le = data.find(b"\n", end)
        # (a slice compare is cheaper than startswith's argument parsing)
        return (bi, ds, ls, self.n if le < 0 else le + 1, data[end:end + 2] == b"--")


# Parsed Content-Type / Content-Transfer-Encoding values by raw value.  Leaf
# parts repeat the same few values ("text/plain; charset=UTF-8") across a
# mailbox, so this saves most of the parameter parsing.  Bounded; the cached
# tuples are immutable and safe to share between parts.  Multipart values
# are not cached: their boundaries make each one unique.
_ContentType = tuple[bytes, bytes, str, str, Params, "bytes | None"]
_CT_CACHE: dict[bytes, _ContentType | None] = {}
_CTE_CACHE: dict[bytes, bytes | None] = {}
_CACHE_MAX = 2048
_MISSING: Any = object()
# Whole part headers (of parts inside a multipart, without a boundary of
# their own, ended by a blank line and with no line starting with "--")
# -> everything parsed from them.  The values are immutable or treated as
# read-only, so parts may share them.
_PART_CACHE: dict[bytes, tuple[Any, ...]] = {}
_PART_HEADER_MAX = 1024


def _content_type(raw: bytes) -> _ContentType | None:
    """(type, subtype, maintype, subtype lower, params, boundary) for a value.

    None for a syntactically invalid Content-Type (then treated as absent).
    """
    got = _CT_CACHE.get(raw, _MISSING)
    if got is not _MISSING:
        return got  # type: ignore[no-any-return]
    parsed = parse_content_type(raw)
    if parsed is None:
        res = None
    else:
        t, s, params = parsed
        mt = t.decode("latin-1").lower()
        boundary = _boundary(params) if mt == _MULTIPART else None
        res = (t, s, mt, s.decode("latin-1").lower(), params, boundary)
    if res is None or res[5] is None:
        if len(_CT_CACHE) >= _CACHE_MAX:
            _CT_CACHE.clear()
        _CT_CACHE[raw] = res
    return res


def _boundary(params: Params) -> bytes | None:
    """The boundary parameter (RFC 2231-encoded or not); None if absent/empty."""
    for name, value in params:
        ln = name.lower()
        if ln == b"boundary":
            return value or None
        if ln == b"boundary*":  # charset'lang'pct-encoded
            text = decode_params([(name, value)]).get("boundary", "")
            return text.encode("utf-8", "surrogateescape") or None
    return None


def _apply_fields(data: bytes, part: Part, found: dict[bytes, bytes], always_mime: bool) -> bytes | None:
    """Read the Content-* fields into *part*; return the multipart boundary.

    The first occurrence of each field counts (later duplicates are ignored).
    Without MIME-Version or Content-Type (and outside a multipart) the
    Content-* fields are ignored, as Dovecot does: such mail is not MIME.
    """
    get = found.get
    ct = get(b"content-type")
    if ct is None and not always_mime and b"mime-version" not in found:
        return None
    boundary = None
    n = 0
    if ct is not None:
        n = 1
        res = _content_type(ct)
        if res is not None:
            part.type_raw, part.subtype_raw, part.maintype, part.subtype, part.param_list, boundary = res
    f = get(b"content-transfer-encoding")
    if f is not None:
        n += 1
        cte = _CTE_CACHE.get(f, _MISSING)
        if cte is _MISSING:
            cte = parse_token(f)
            if len(_CTE_CACHE) < _CACHE_MAX:
                _CTE_CACHE[f] = cte
        part.cte = cte
    if len(found) == n:
        return boundary  # the usual part header: nothing else to look at
    f = get(b"content-disposition")
    if f is not None:
        dt, dparams = parse_token_and_params(f)
        if dt is not None:
            part.disposition = dt
            part.disposition_params = dparams
    f = get(b"content-id")
    if f is not None:
        part.content_id = f
    f = get(b"content-description")
    if f is not None:
        part.description = f
    f = get(b"content-md5")
    if f is not None:
        part.md5 = f
    f = get(b"content-location")
    if f is not None:
        part.location = f
    f = get(b"content-language")
    if f is not None:
        tags = [x.strip(b" \t") for x in f.split(b",")]
        part.language = tuple(x for x in tags if x) or None
    return boundary


def _entity(
    sc: _Scanner,
    start: int,
    active: list[bytes],
    digest_child: bool,
    in_multipart: bool,
    depth: int,
    hit: Hit | None = None,
    hit_known: bool = False,
    origin: int = -1,
) -> tuple[Part, Hit | None]:
    """Parse the entity at *start*; return it and the delimiter that ended it.

    With *hit_known* the caller passes in *hit*, the next delimiter for the
    same active boundaries, so it is not searched for again.  A message
    encapsulated in a multipart's part gets *origin* instead: the body start
    of the outermost message/rfc822 part around it.  It searches from there
    if it needs the delimiter at all (the search that part would have made:
    where a delimiter's line break starts depends on where the search does).
    """
    data = sc.data
    n = sc.n
    lf_form = sc.lf_form
    hdr_end = body_start = -1
    key = None  # a part header worth caching (see _PART_CACHE)
    state = None  # its parse, if seen before
    deferred = False  # the delimiter search waits until the header is read
    if not hit_known and active:
        window = start + _HEADER_WINDOW
        hdr_end, body_start = find_header_end(data, start, window if window < n else n, lf_form)
        if hdr_end != body_start and in_multipart and 0 < hdr_end - start <= _PART_HEADER_MAX:
            # mailers write the same few part headers again and again
            key = data[start:hdr_end]
            state = _PART_CACHE.get(key)
        if state is not None or (
            hdr_end != body_start and data[start:start + 2] != b"--"
            and data.find(b"\n--", start, body_start) < 0
        ):
            # The usual case: a blank line, and no line of the header starts
            # with "--" (true of every cached header), so the header is whole
            # and the delimiter search can start at the body (not hopping
            # over Content-* names' dashes), once the header is read.
            deferred = True
        else:
            hit = sc.next_delim(start if in_multipart else origin, active)
            hdr_end = -1  # a delimiter may cut the header: see below
            key = None
    if hdr_end < 0:
        if hit is not None:
            limit = hit[2]  # the blank line may run up to the delimiter line
            hdr_end, body_start = find_header_end(data, start, limit, lf_form)
            if hdr_end == body_start:  # no blank line: the delimiter ends the header
                hdr_end = body_start = hit[1] if hit[1] > start else start
        else:
            hdr_end, body_start = find_header_end(data, start, n, lf_form)
    # without a blank line there is no body at all
    no_body = hdr_end == body_start
    part = Part(start, body_start, body_start)
    if state is not None:
        (part.first, part.type_raw, part.subtype_raw, part.maintype, part.subtype,
         part.param_list, part.cte, part.content_id, part.description, part.md5,
         part.disposition, part.disposition_params, part.language, part.location) = state
        boundary = None
    else:
        found = part.first = scan_header(data, start, hdr_end) if hdr_end > start else {}
        boundary = _apply_fields(data, part, found, in_multipart) if found else None
        if key is not None and boundary is None:
            if len(_PART_CACHE) >= _CACHE_MAX:
                _PART_CACHE.clear()
            _PART_CACHE[key] = (
                found, part.type_raw, part.subtype_raw, part.maintype, part.subtype,
                part.param_list, part.cte, part.content_id, part.description, part.md5,
                part.disposition, part.disposition_params, part.language, part.location)
    if part.type_raw is None and digest_child:
        part.maintype, part.subtype = _MESSAGE, "rfc822"
    mt = part.maintype
    nested = depth < MAX_DEPTH and (
        boundary is not None or (mt == _MESSAGE and _encapsulates(part)))
    if deferred and not nested:
        # (a multipart with a boundary finds its own delimiters, and the
        # outer one that ends it among them, and an encapsulated message
        # searches for itself: searching here would scan their bodies twice)
        hit = sc.next_delim(body_start if in_multipart else origin, active)

    if no_body:
        if mt == _TEXT:
            part.lines = 0
        elif mt == _MULTIPART and depth < MAX_DEPTH:
            part.children = []
        elif mt == _MESSAGE and depth < MAX_DEPTH and _encapsulates(part):
            empty = part.message = Part(body_start, body_start, body_start)
            empty.fields = []
            empty.first = {}
            empty.lines = part.lines = 0
        return part, hit

    if mt == _MULTIPART and depth < MAX_DEPTH:
        part.children = children = []
        if boundary is None:
            # no boundary: no parts (BODYSTRUCTURE shows an empty text part)
            part.end = n if hit is None else hit[1] if hit[1] > body_start else body_start
            return part, hit
        own = len(active)
        act2 = active + [b"--" + boundary]
        digest = part.subtype == "digest"
        h = sc.next_delim(body_start, act2)
        while True:
            if h is None:
                part.end = n
                return part, None
            if h[0] != own:  # an outer delimiter ends this multipart
                part.end = h[1] if h[1] > body_start else body_start
                return part, h
            if h[4]:  # close delimiter: the epilogue runs to the next outer one
                h2 = sc.next_delim(h[3], active) if active else None
                part.end = n if h2 is None else h2[1] if h2[1] > h[3] else h[3]
                return part, h2
            child, h = _entity(sc, h[3], act2, digest, True, depth + 1)
            children.append(child)

    if mt == _MESSAGE and depth < MAX_DEPTH and _encapsulates(part):
        if deferred:  # the encapsulated message finds its own end
            msg, h = _entity(sc, body_start, active, False, False, depth + 1,
                             origin=body_start if in_multipart else origin)
        else:
            msg, h = _entity(sc, body_start, active, False, False, depth + 1, hit, True)
        part.message = msg
        part.end = msg.end
        part.lines = entity_lines(data, msg)
        return part, h

    part.end = end = n if hit is None else hit[1] if hit[1] > body_start else body_start
    if mt == _TEXT:  # BODYSTRUCTURE needs lines only for text and messages
        part.lines = count_lines(data, body_start, end)
    return part, hit


def _encapsulates(part: Part) -> bool:
    """message/rfc822 always holds a message (as in Dovecot); message/global
    only when not base64/QP-encoded (RFC 6532 §3.5 allows that encoding, and
    the encoded bytes are no header to parse)."""
    if part.subtype == "rfc822":
        return True
    if part.subtype == "global":
        cte = part.cte
        return cte is None or cte.lower() in (b"7bit", b"8bit", b"binary")
    return False


def _fallback(data: bytes) -> Part:
    """A safe flat structure for a message the parser failed on (a bug)."""
    n = len(data)
    hdr_end, body_start = find_header_end(data, 0, n, True)
    p = Part(0, body_start, n)
    p.lines = data.count(b"\n", body_start, n)
    return p


def header_part(data: bytes) -> Part:
    """The top-level header of *data* as a Part, the MIME structure not parsed:
    the root `parse_message` would give as far as the header goes (the
    same start and body start; fields and first fields made on demand).
    Enough for BODY[HEADER], HEADER.FIELDS(.NOT) and header SEARCH, which
    is all a header read alone (read_header) serves."""
    sc = _Scanner(data)  # (for its reading of bare-LF mail, as parse_message's)
    _, body_start = find_header_end(data, 0, sc.n, sc.lf_form)
    return Part(0, body_start, sc.n)


def parse_message(data: bytes) -> Part:
    """Parse a whole message (wire form, CRLF lines) into its structure.

    Never raises on any input: malformed MIME is cut into parts the way
    Dovecot would, and an internal error (which would be a bug) falls back
    to a single text/plain part so the message can still be served.
    """
    try:
        return _entity(_Scanner(data), 0, [], False, False, 0)[0]
    except Exception:  # pragma: no cover - defensive: never let a message be unreadable
        if _STRICT:
            raise
        return _fallback(data)


#: Tests set this to see internal errors instead of the fallback.
_STRICT = False
