"""Command handlers, one module per command group.

A handler is a plain function `(session, command)` that calls the store and
either returns a `Result` or is a generator that yields response bytes, or
a list of byte strings that go out in order (a FETCH response with the
message bodies it carries, which are queued rather than copied), and
`Continuation` objects when it needs a line from the client, which the
session sends back into the generator; then it returns a `Result`.
Handlers do no I/O themselves.

The registry maps a command name to "module:function" so that only the
modules a session really uses are imported (start-up time is paid by every
connection).
"""

from __future__ import annotations

from ..record import Record
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable


class Result(Record):
    """The tagged status line that ends a command."""

    __slots__ = ('status', 'text', 'code')
    _defaults = {'status': "OK", 'text': "Completed", 'code': None}

    status: str
    text: str
    code: str | None


class Continuation(Record):
    """Yielded by a handler: send `+ text` and resume with the client's next line."""

    __slots__ = ('text',)
    _defaults = {'text': ""}

    text: str


class Flush:
    """Yielded by a long-running handler: send what is queued now (keepalives)."""


FLUSH = Flush()


class CommandError(Exception):
    """Ends a command with a tagged NO (or BAD) and a response code."""

    def __init__(self, text: str, code: str | None = None, status: str = "NO") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


def ok(text: str = "Completed", code: str | None = None) -> Result:
    return Result("OK", text, code)


REGISTRY: dict[str, str] = {
    "CAPABILITY": "anystate:capability",
    "NOOP": "anystate:noop",
    "LOGOUT": "anystate:logout",
    "ID": "anystate:id_command",
    "ENABLE": "anystate:enable",
    "LOGIN": "auth:login",
    "AUTHENTICATE": "auth:authenticate",
    "STARTTLS": "auth:starttls",
    "SELECT": "select:select",
    "EXAMINE": "select:select",
    "CHECK": "select:check",
    "CLOSE": "select:close",
    "UNSELECT": "select:unselect",
    "EXPUNGE": "select:expunge",
    "CREATE": "mailboxes:create",
    "DELETE": "mailboxes:delete",
    "RENAME": "mailboxes:rename",
    "SUBSCRIBE": "mailboxes:subscribe",
    "UNSUBSCRIBE": "mailboxes:unsubscribe",
    "LIST": "mailboxes:list_command",
    "LSUB": "mailboxes:list_command",
    "NAMESPACE": "mailboxes:namespace",
    "STATUS": "mailboxes:status",
    "APPEND": "append:append",
    "FETCH": "fetch:fetch",
    "STORE": "store:store",
    "SEARCH": "search:search",
    "COPY": "copymove:copy_move",
    "MOVE": "copymove:copy_move",
    "IDLE": "idle:idle",
}

_loaded: dict[str, Callable[..., Any]] = {}


def handler_for(name: str) -> Callable[..., Any] | None:
    """The handler function for a command name, importing its module on first use."""
    fn = _loaded.get(name)
    if fn is None:
        target = REGISTRY.get(name)
        if target is None:
            return None
        module_name, func_name = target.split(":")
        # __import__, not importlib: importlib's package pulls in warnings
        module = __import__(f"imapd.commands.{module_name}", fromlist=[func_name])
        fn = getattr(module, func_name)
        _loaded[name] = fn
    return fn


def implemented(name: str) -> bool:
    """True if a handler module for `name` exists in this installation."""
    target = REGISTRY.get(name)
    if target is None:
        return False
    import importlib.util

    return importlib.util.find_spec(f"imapd.commands.{target.split(':')[0]}") is not None
