"""The plain subset of TOML that imapd's config files are written in, read
without importing `tomllib`.

Every connection reads the config file before its greeting, and `tomllib`
brings `re`, `typing`, `datetime` and `string` with it: several milliseconds
a connection.  A config file is `[section]` headers and `key = value` lines
whose values are plain strings, integers, decimal floats, booleans, and
one-line arrays or inline tables of strings.  `parse` reads exactly that
and returns None for anything else -- an escape, a dotted key, a date, a
duplicate key, a syntax error -- and the caller then hands the text to
`tomllib`, which stays the authority on TOML (and on its error messages).
Where `parse` answers, its answer is what `tomllib.loads` gives.
"""

from __future__ import annotations

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
_WS = " \t"


def _text_ok(s: str) -> bool:
    """No control character but tab (TOML forbids them in strings and comments)."""
    return s.isprintable() or all(c == "\t" or (" " <= c != "\x7f") for c in s)


def _bare(s: str) -> bool:
    return bool(s) and _BARE.issuperset(s)


def _rest_ok(rest: str) -> bool:
    """What may follow a value or header on its line: blanks, then a comment."""
    rest = rest.lstrip(_WS)
    return not rest or (rest[0] == "#" and _text_ok(rest))


def _string(s: str) -> tuple[str, str] | None:
    """A basic string without escapes or a literal string at the start of `s`:
    (its value, what follows)."""
    q = s[0]
    end = s.find(q, 1)
    if end < 0:
        return None
    value = s[1:end]
    if (q == '"' and "\\" in value) or not _text_ok(value):
        return None
    return value, s[end + 1:]


def _number(s: str) -> int | float | None:
    body = s[1:] if s[:1] in ("-", "+") else s
    whole, dot, frac = body.partition(".")
    if not whole or not _DIGITS.issuperset(whole) or (len(whole) > 1 and whole[0] == "0"):
        return None
    if not dot:
        try:
            return int(s)
        except ValueError:  # more digits than int() converts: tomllib says what it makes of it
            return None
    if not frac or not _DIGITS.issuperset(frac):
        return None
    return float(s)


def _value(s: str) -> tuple[object, str] | None:
    """The value at the start of `s` and what follows it, or None."""
    if not s:
        return None
    c = s[0]
    if c in "\"'":
        return _string(s)
    if c == "[":
        items: list[object] = []
        s = s[1:].lstrip(_WS)
        while not s.startswith("]"):
            if not s or s[0] not in "\"'":
                return None
            got = _string(s)
            if got is None:
                return None
            items.append(got[0])
            s = got[1].lstrip(_WS)
            if s.startswith(","):
                s = s[1:].lstrip(_WS)
            elif not s.startswith("]"):
                return None
        return items, s[1:]
    if c == "{":
        return _inline_table(s[1:].lstrip(_WS))
    word, _, after = s.partition("#")
    word = word.rstrip(_WS)
    rest = s[len(word):]
    if word == "true":
        return True, rest
    if word == "false":
        return False, rest
    number = _number(word)
    return None if number is None else (number, rest)


def _inline_table(s: str) -> tuple[dict[str, object], str] | None:
    """`{ key = "string", ... }` after its brace: keys bare or quoted, values
    strings (what a config's tables hold), and what follows the closing brace."""
    table: dict[str, object] = {}
    if s.startswith("}"):
        return table, s[1:]
    while True:
        if not s:
            return None
        if s[0] in "\"'":
            got = _string(s)
            if got is None:
                return None
            key, s = got
        else:
            n = 0
            while n < len(s) and s[n] in _BARE:
                n += 1
            key, s = s[:n], s[n:]
            if not key:
                return None
        s = s.lstrip(_WS)
        if not s.startswith("="):
            return None
        s = s[1:].lstrip(_WS)
        if not s or s[0] not in "\"'" or key in table:
            return None
        got = _string(s)
        if got is None:
            return None
        table[key] = got[0]
        s = got[1].lstrip(_WS)
        if s.startswith("}"):
            return table, s[1:]
        if not s.startswith(","):
            return None
        s = s[1:].lstrip(_WS)


def parse(text: str) -> dict[str, object] | None:
    """The document as `tomllib.loads` reads it, or None: not in the subset."""
    if text.endswith("\r"):
        return None  # a carriage return must end a line together with its newline
    root: dict[str, object] = {}
    table = root
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        line = line.strip(_WS)
        if not line:
            continue
        if line[0] == "#":
            if not _text_ok(line):
                return None
            continue
        if line[0] == "[":
            end = line.find("]")
            name = line[1:end].strip(_WS) if end > 0 else ""
            if not _bare(name) or name in root or not _rest_ok(line[end + 1:]):
                return None
            table = root[name] = {}
            continue
        key, eq, value = line.partition("=")
        key = key.rstrip(_WS)
        if not eq or not _bare(key) or key in table:
            return None
        got = _value(value.lstrip(_WS))
        if got is None or not _rest_ok(got[1]):
            return None
        table[key] = got[0]
    return root
