"""Mailbox management: CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB
NAMESPACE STATUS (RFC 3501, RFC 5258 LIST-EXTENDED, RFC 5819 LIST-STATUS,
RFC 6154 SPECIAL-USE, RFC 8438 STATUS=SIZE)."""

from __future__ import annotations

import re
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

from ..protocol import responses as R
from ..protocol.commands import MailboxCommand
from ..protocol.mailbox_syntax import List, Rename, Status
from ..store.base import MailboxInfo, StoreError
from . import CommandError, Result, ok
from .names import fold_inbox, from_wire, to_wire


def _delimiter(session: Any) -> str | None:
    return session.store.delimiter


def create(session: Any, cmd: MailboxCommand) -> Result:
    name = from_wire(session, cmd.mailbox)
    delim = _delimiter(session)
    if delim and name.endswith(delim):
        name = name.rstrip(delim)  # "foo." announces future children (RFC 3501 §6.3.3)
    if not name:
        raise CommandError("Invalid mailbox name", "CANNOT")
    if name == "INBOX":
        raise CommandError("INBOX always exists", "ALREADYEXISTS")
    _check_create_params(session, name, cmd.params)
    session.store.create(name)
    return ok("CREATE completed")


def _check_create_params(session: Any, name: str, params: list[Any]) -> None:
    """RFC 4466 CREATE parameters: only RFC 6154's USE, and only with the
    attributes the configuration already gives `name` (imapd keeps special
    use in its configuration, not per mailbox, so it does not announce
    CREATE-SPECIAL-USE).  Anything else is refused before a mailbox is made."""
    i = 0
    while i < len(params):
        param = params[i]
        if isinstance(param, str) and param.upper() == "USE" and i + 1 < len(params) \
                and isinstance(params[i + 1], list):
            wanted = {str(a).lower() for a in params[i + 1]}
            configured = {a.lower() for a in session.config.mail.special_use.get(name, "").split()}
            if wanted and wanted != configured:
                raise CommandError("Special-use attributes come from the server's configuration "
                                   "([mail] special_use)", "USEATTR")
            i += 2
            continue
        raise CommandError(f"Unknown CREATE parameter {param if isinstance(param, str) else '(...)'}",
                           status="BAD")


def delete(session: Any, cmd: MailboxCommand) -> Result:
    name = from_wire(session, cmd.mailbox)
    if name == "INBOX":
        raise CommandError("INBOX cannot be deleted", "CANNOT")
    if session.selected is not None and session.selected.mailbox.name == name:
        session.close_selected()
    session.store.delete(name)
    return ok("DELETE completed")


def rename(session: Any, cmd: Rename) -> Result:
    old = from_wire(session, cmd.old)
    new = from_wire(session, cmd.new)
    if new == "INBOX":
        raise CommandError("Cannot rename to INBOX", "ALREADYEXISTS")
    if old == new:
        raise CommandError("Names are the same", "ALREADYEXISTS")
    session.store.rename(old, new)
    return ok("RENAME completed")


def subscribe(session: Any, cmd: MailboxCommand) -> Result:
    session.store.subscribe(from_wire(session, cmd.mailbox))
    return ok("SUBSCRIBE completed")


def unsubscribe(session: Any, cmd: MailboxCommand) -> Result:
    name = from_wire(session, cmd.mailbox)
    if name not in session.store.subscriptions():
        raise CommandError(f"Not subscribed to {name}", "NONEXISTENT")
    session.store.unsubscribe(name)
    return ok("UNSUBSCRIBE completed")


def namespace(session: Any, cmd: Any) -> Iterator[bytes]:
    yield b"* NAMESPACE " + R.encode([["", _delimiter(session)]]) + b" NIL NIL\r\n"
    return ok("NAMESPACE completed")


# ----------------------------------------------------------------- LIST


def pattern_regex(pattern: str, delimiter: str | None) -> re.Pattern[str]:
    """`*` matches anything, `%` anything but the delimiter; INBOX is matched case-insensitively."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(delimiter)}]*" if delimiter else ".*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def _matches(rx: re.Pattern[str], name: str) -> bool:
    if rx.match(name):
        return True
    # "inbox" and "Inbox.Sub" patterns must find INBOX and INBOX.Sub
    if name == "INBOX" or name.startswith("INBOX"):
        return bool(rx.match(name.lower())) or bool(rx.match(name.capitalize()))
    return False


def _canonical_pattern(reference: str, pattern: str, delimiter: str | None) -> str:
    if not reference:
        return pattern
    if delimiter and pattern.startswith(delimiter):
        return pattern  # an absolute pattern ignores the reference
    return reference + pattern


def list_command(session: Any, cmd: List) -> Iterator[bytes]:
    store = session.store
    delim = _delimiter(session)
    delim_value = delim if delim else None
    lsub = cmd.name == "LSUB"
    select_opts = set(cmd.select_options)
    for opt in select_opts:
        if opt not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
            raise CommandError(f"Unknown LIST selection option {opt}", status="BAD")
    if select_opts == {"RECURSIVEMATCH"}:
        raise CommandError("RECURSIVEMATCH needs another selection option", status="BAD")
    return_opts, status_items = _return_options(cmd.return_options)

    # LIST "" "" asks for the hierarchy delimiter and root
    if not lsub and len(cmd.patterns) == 1 and cmd.patterns[0] == "":
        yield b"* LIST (\\Noselect) " + R.encode(delim_value) + b' ""\r\n'
        return ok("LIST completed")

    reference = fold_inbox(_decode_name(cmd.reference), delim)
    patterns = [_canonical_pattern(reference, _decode_name(p), delim) for p in cmd.patterns]
    regexes = [pattern_regex(p, delim) for p in patterns]

    infos = {i.name: i for i in store.list_mailboxes()}
    subscribed = set(store.subscriptions()) if (lsub or "SUBSCRIBED" in select_opts or "SUBSCRIBED" in return_opts) else set()

    results: dict[str, tuple[list[str], list[Any]]] = {}
    if lsub or "SUBSCRIBED" in select_opts:
        candidates = sorted(subscribed)
        for name in candidates:
            if any(_matches(rx, name) for rx in regexes):
                info = infos.get(name)
                attrs = _attributes(info, return_opts | {"CHILDREN"} if not lsub else set(), lsub)
                if info is None and not lsub:
                    attrs.append("\\NonExistent")
                if not lsub:
                    attrs.append("\\Subscribed")
                results[name] = (attrs, [])
        # a subscribed child whose parent does not match (or with %): report the parent
        for name in candidates:
            if not delim:
                break
            parts = name.split(delim)
            for depth in range(1, len(parts)):
                parent = delim.join(parts[:depth])
                if parent in results or not any(_matches(rx, parent) for rx in regexes):
                    continue
                if "RECURSIVEMATCH" in select_opts:
                    attrs = _attributes(infos.get(parent), return_opts, lsub)
                    if parent in subscribed:
                        attrs.append("\\Subscribed")
                    results[parent] = (attrs, [b'("CHILDINFO" ("SUBSCRIBED"))'])
                elif lsub and parent not in subscribed:
                    results[parent] = (["\\Noselect"], [])
    else:
        for name, info in infos.items():
            if any(_matches(rx, name) for rx in regexes):
                if "SPECIAL-USE" in select_opts and not info.special_use:
                    continue
                attrs = _attributes(info, return_opts | {"CHILDREN"}, lsub)
                if name in subscribed:
                    attrs.append("\\Subscribed")
                results[name] = (attrs, [])

    for name in sorted(results, key=lambda n: (n != "INBOX", n)):
        attrs, extra = results[name]
        line = (
            f"* {cmd.name} (".encode()
            + " ".join(attrs).encode()
            + b") "
            + R.encode(delim_value)
            + b" "
            + to_wire(name)
        )
        if extra:
            line += b" " + b" ".join(extra)
        yield line + b"\r\n"
        if status_items and infos.get(name) is not None and infos[name].selectable:
            try:
                yield _status_line(session, name, status_items)
            except StoreError:
                pass
    return ok(f"{cmd.name} completed")


def _decode_name(raw: str) -> str:
    from ..protocol import mutf7

    try:
        return mutf7.decode(raw)
    except ValueError:
        return raw


def _return_options(options: list[Any]) -> tuple[set[str], list[str]]:
    names: set[str] = set()
    status_items: list[str] = []
    i = 0
    while i < len(options):
        opt = str(options[i]).upper() if not isinstance(options[i], list) else ""
        if opt == "STATUS":
            if i + 1 >= len(options) or not isinstance(options[i + 1], list):
                raise CommandError("RETURN STATUS needs a list of items", status="BAD")
            status_items = [str(x).upper() for x in options[i + 1]]
            i += 2
            continue
        if opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE"):
            raise CommandError(f"Unknown LIST return option {options[i]}", status="BAD")
        names.add(opt)
        i += 1
    return names, status_items


def _attributes(info: MailboxInfo | None, return_opts: set[str], lsub: bool) -> list[str]:
    if info is None:
        return [] if lsub else []
    attrs: list[str] = []
    if not info.selectable:
        attrs.append("\\Noselect")
    if not lsub:
        attrs.append("\\HasChildren" if info.has_children else "\\HasNoChildren")
        attrs.extend(sorted(info.special_use))
    return attrs


# --------------------------------------------------------------- STATUS

SUPPORTED_STATUS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "APPENDLIMIT")


def _status_line(session: Any, name: str, items: list[str]) -> bytes:
    st = session.store.status(name, [i for i in items if i != "APPENDLIMIT"])
    values: list[Any] = []
    for item in items:
        if item not in SUPPORTED_STATUS:
            raise CommandError(f"STATUS item {item} is not supported", status="BAD")
        if item == "APPENDLIMIT":
            value: Any = session.config.limits.append_size
        else:
            value = getattr(st, item.lower())
        values += [R.Atom(item), value]
    return b"* STATUS " + to_wire(name) + b" " + R.encode(values) + b"\r\n"


def status(session: Any, cmd: Status) -> Iterator[bytes]:
    name = from_wire(session, cmd.mailbox)
    for item in cmd.items:
        if item not in SUPPORTED_STATUS:
            raise CommandError(f"STATUS item {item} is not supported", status="BAD")
    yield _status_line(session, name, cmd.items)
    return ok("STATUS completed")
