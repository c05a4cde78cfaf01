"""`Record`: small value classes without importing `dataclasses`.

`dataclasses` pulls in `inspect`, `ast` and `dis` and builds each class with
`exec` at import time — about 20 ms that every connection would pay before
its first command.  A record declares its fields in `__slots__` (and
defaults in `_defaults`, where a callable default is a factory, e.g. `list`)
and gets `__init__`, `__eq__`, `__hash__` and `__repr__` from here.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MISSING = object()


class Record:
    __slots__ = ()
    _fields: tuple[str, ...] = ()
    _defaults: "dict[str, Any]" = {}

    def __init_subclass__(cls, **kwargs: "Any") -> None:
        # (records inherit singly: the base's fields and defaults are complete;
        # this runs for a dozen classes before every session's first answer)
        super().__init_subclass__(**kwargs)
        base = cls.__mro__[1]
        inherited = base._fields
        cls._fields = inherited + tuple(s for s in cls.__dict__.get("__slots__", ()) if s not in inherited)
        own = cls.__dict__.get("_defaults")
        cls._defaults = {**base._defaults, **own} if own else base._defaults

    def __init__(self, *args: "Any", **kwargs: "Any") -> None:
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} arguments")
        for name, value in zip(fields, args):
            object.__setattr__(self, name, value)
        for name in fields[len(args):]:
            value = kwargs.pop(name, _MISSING)
            if value is _MISSING:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__} missing argument {name!r}")
                value = self._defaults[name]
                if callable(value):
                    value = value()
            object.__setattr__(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(_hashable(getattr(self, f)) for f in self._fields))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"


def _hashable(value: "Any") -> "Any":
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value
