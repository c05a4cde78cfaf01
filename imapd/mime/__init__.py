"""MIME: message structure with byte offsets, ENVELOPE, BODYSTRUCTURE, sections.

Sans-I/O.  Every function takes the whole message in wire form (CRLF line
ends) as ``bytes``; offsets, sizes and line counts refer to that form.  No
function raises on malformed mail (`binary_section` raises `UnknownCTE` on
purpose, for ``NO [UNKNOWN-CTE]``).

Typical use::

    root = parse_message(data)                 # once per message
    env = envelope(data, root)                 # ENVELOPE value
    bs = body_structure(data, root, True)      # BODYSTRUCTURE value
    cached = root.to_cache()                   # marshal-able, for the index
    root = Part.from_cache(cached)             # later, without re-parsing
    section_bytes(data, root, (1, 2), "MIME")  # BODY[1.2.MIME]

ENVELOPE/BODYSTRUCTURE values: None = NIL, int = number, str/bytes = string,
list = parenthesised list.  Text taken from the message is always ``bytes``
(it may be 8-bit); ``str`` is used only for ASCII constants such as
``"7bit"`` or the default ``("charset" "us-ascii")``.  A field that is absent
is NIL, one that is present but empty is "".  Module docstrings give the
rules chosen where the RFCs leave room (mostly Dovecot's behaviour).
"""

from .bodystructure import body_structure
from .decode import decode_charset, decode_encoded_words, decode_transfer
from .envelope import envelope
from .headers import Field
from .part import Part
from .searchtext import all_headers_text, body_contains, body_text, header_text
from .sections import UnknownCTE, binary_section, find_part, header_fields_bytes, section_bytes
from .structure import parse_message

__all__ = [
    "Field",
    "Part",
    "UnknownCTE",
    "all_headers_text",
    "binary_section",
    "body_contains",
    "body_structure",
    "body_text",
    "decode_charset",
    "decode_encoded_words",
    "decode_transfer",
    "envelope",
    "find_part",
    "header_fields_bytes",
    "header_text",
    "parse_message",
    "section_bytes",
]
