"""LOGIN, AUTHENTICATE, ENABLE and ID: their grammars, and the commands they produce.

Imported when such a command first arrives (see `parser.later`): a session
started pre-authenticated (ssh, a tunnel) may never send one.
"""

from __future__ import annotations

from .commands import Command
from .parser import _BASE64, Reader, _text, command


class Login(Command):
    __slots__ = ('user', 'password')
    user: bytes
    password: bytes


class Authenticate(Command):
    __slots__ = ('mechanism', 'initial')
    mechanism: str
    initial: bytes | None  # SASL-IR initial response (base64 text), b"=" for empty


class Enable(Command):
    __slots__ = ('capabilities',)
    capabilities: list[str]


class Id(Command):
    __slots__ = ('params',)
    params: dict[str, str | None] | None


@command("LOGIN")
def _login(r: Reader, tag: str, name: str) -> Command:
    r.sp("user name")
    user = r.astring("user name")
    r.sp("password")
    password = r.astring("password")
    return Login(tag, name, user, password)


@command("AUTHENTICATE")
def _authenticate(r: Reader, tag: str, name: str) -> Command:
    r.sp("SASL mechanism")
    mech = r.atom("SASL mechanism").upper()
    initial = None
    if r.try_sp():
        start = r.pos
        end = r.scan(_BASE64)
        for _ in range(2):
            if r.text[end : end + 1] == b"=":
                end += 1
        r.pos = end
        tok = r.text[start:end]
        if not tok:
            raise r.error("Expected base64 initial response")
        initial = tok
    return Authenticate(tag, name, mech, initial)


@command("ENABLE")
def _enable(r: Reader, tag: str, name: str) -> Command:
    caps = []
    while r.try_sp():
        caps.append(r.atom("capability").upper())
    if not caps:
        raise r.error("ENABLE needs at least one capability")
    return Enable(tag, name, caps)


@command("ID")
def _id(r: Reader, tag: str, name: str) -> Command:
    r.sp("ID parameter list")
    if r.peek(3).upper() == b"NIL":
        r.pos += 3
        return Id(tag, name, None)
    r.expect(b"(", "Expected '(' or NIL")
    params: dict[str, str | None] = {}
    if r.peek() != b")":
        while True:
            key = _text(r.string("ID field name"))
            r.sp("ID field value")
            value = r.nstring("ID field value")
            if len(params) < 30:
                params[key[:64]] = None if value is None else _text(value[:1024])
            if not r.try_sp():
                break
    r.expect(b")", "Expected ')' to end ID list")
    return Id(tag, name, params)
