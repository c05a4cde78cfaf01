"""`array.array`, imported without loading `collections`.

When first imported, `array` registers its type as a
collections.abc.MutableSequence, and importing `collections.abc` runs
`collections/__init__.py` (OrderedDict, Counter, ChainMap..., with keyword,
operator and reprlib): about 2 ms of every session's start-up, for modules
no session uses.  The abstract classes live in `_collections_abc`, which
`os` has loaded already and which *is* `collections.abc`: `array` finds it
through a stand-in `collections` package that is removed at once, so a
later `import collections` loads the real one, and the registration is the
same either way.  Where `collections` is loaded already, or the stand-in
does not serve, this is a plain import.

Modules on the way to a session's first command import `array` from here.
"""

import sys


def _import_without_collections() -> None:
    modules = sys.modules
    if "array" in modules or "collections" in modules:
        return
    import _collections_abc

    stand_in = type(sys)("collections")
    stand_in.__path__ = []  # a package, so that "collections.abc" resolves
    stand_in.abc = _collections_abc  # type: ignore[attr-defined]
    modules["collections"] = stand_in
    modules["collections.abc"] = _collections_abc
    try:
        import array  # noqa: F401
    except ImportError:
        pass  # tried again below, the usual way
    finally:
        if modules.get("collections") is stand_in:
            del modules["collections"]
        if modules.get("collections.abc") is _collections_abc:
            del modules["collections.abc"]


_import_without_collections()

from array import array  # noqa: E402

__all__ = ["array"]
