"""Typed commands: what the parser produces and the handlers consume.

Strings that are names or text from the client stay as the client sent them
(`str` decoded as UTF-8 with surrogateescape, so 8-bit input survives for the
handlers to judge); search and login values that may carry any octets stay
`bytes`.  Mailbox names are still in their wire form (modified UTF-7).
"""

from __future__ import annotations

from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

# A search key is a tuple (NAME, *args): ("ALL",), ("FLAG", "\\Seen"),
# ("UNFLAG", "\\Seen"), ("NOT", key), ("OR", key, key), ("AND", [keys]),
# ("ORN", [keys]) for a chain `OR a OR b c` (any of the keys; read without recursion),
# ("SEQ", SeqSet), ("UID", SeqSet), ("HEADER", field, bytes), ("BODY", bytes),
# ("TEXT", bytes), ("BEFORE"|"ON"|"SINCE"|"SENTBEFORE"|"SENTON"|"SENTSINCE", date),
# ("LARGER"|"SMALLER", int), ("NEW",), ("OLD",), ("RECENT",), ("NOTRECENT",),
# ("MODSEQ", int), ("OLDER"|"YOUNGER", int).  FROM/TO/CC/BCC/SUBJECT become HEADER.
SearchKey = tuple


class Command(Record):
    __slots__ = ('tag', 'name')
    tag: str
    name: str  # upper-case command name, e.g. "FETCH" (without the UID prefix)

    uid = False  # class default; UID-capable commands override


class Simple(Command):
    """Commands with no arguments: CAPABILITY NOOP LOGOUT STARTTLS CHECK CLOSE
    UNSELECT EXPUNGE IDLE NAMESPACE."""

    __slots__ = ()


class MailboxCommand(Command):
    """SELECT EXAMINE CREATE DELETE SUBSCRIBE UNSUBSCRIBE."""

    __slots__ = ('mailbox', 'params')
    _defaults = {'params': list}

    mailbox: str
    params: list[Any]  # e.g. SELECT (CONDSTORE)


# The commands a session may never send are defined with their grammars,
# loaded at first use (see `parser.later`); they are still importable from
# here, which then loads that grammar.
_DEFINED_IN = {
    "Section": "fetch_syntax", "FetchItem": "fetch_syntax", "Fetch": "fetch_syntax",
    "Search": "search_syntax",
    "Store": "update_syntax", "CopyMove": "update_syntax", "UidExpunge": "update_syntax",
    "AppendMessage": "update_syntax", "Append": "update_syntax",
    "Rename": "mailbox_syntax", "List": "mailbox_syntax", "Status": "mailbox_syntax",
    "Login": "session_syntax", "Authenticate": "session_syntax", "Enable": "session_syntax", "Id": "session_syntax",
}
if TYPE_CHECKING:  # (what __getattr__ gives, for the checker)
    from .fetch_syntax import Fetch, FetchItem, Section  # noqa: F401
    from .mailbox_syntax import List, Rename, Status  # noqa: F401
    from .search_syntax import Search  # noqa: F401
    from .session_syntax import Authenticate, Enable, Id, Login  # noqa: F401
    from .update_syntax import Append, AppendMessage, CopyMove, Store, UidExpunge  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _DEFINED_IN.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(__import__(f"{__package__}.{module}", fromlist=[name]), name)
    globals()[name] = value
    return value
