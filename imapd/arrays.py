"""`array.array`, imported without loading `collections` or `_collections_abc`.

When first imported, `array` registers its type as a
collections.abc.MutableSequence, and importing `collections.abc` runs
`collections/__init__.py` (OrderedDict, Counter, ChainMap..., with keyword,
operator and reprlib) and `_collections_abc` (two dozen abstract classes):
about 2 ms of every session's start-up, for modules no session uses.  So
`array` is given a stand-in `collections` package for its import, removed at
once: its `abc` is the real `_collections_abc` where that is loaded already
(`os` loads it), and otherwise a placeholder whose `register` does nothing.
Then `isinstance(an_array, collections.abc.MutableSequence)` is False in
this process, as it is for a list subclass nobody registered; nothing here
asks.  A later `import collections` loads the real package.  Where
`collections` is loaded already, or the stand-in does not serve, this is a
plain import.

Even so, loading the C library costs a session 0.29 M instructions and
nine page faults (its symbols bound one by one against the interpreter's),
and a warm SELECT builds no array: the UIDs, flags, sizes and dates stay in
the index file.  So `array` is imported at the
first `arrays.array` (a module attribute made on demand); the modules on the
way to a session's first command use that, and `at_first_call` for a C
function they may not need.  `from imapd.arrays import array` loads it at
once, for modules that always use it.
"""

import sys


def _import_without_collections() -> None:
    modules = sys.modules
    if "array" in modules or "collections" in modules:
        return
    abc = modules.get("_collections_abc")
    if abc is None:
        abc = type(sys)("collections.abc")
        # (for `array`'s registration: an object with a `register` that does nothing)
        abc.MutableSequence = type(sys)("MutableSequence")  # type: ignore[attr-defined]
        abc.MutableSequence.register = lambda cls: cls  # type: ignore[attr-defined]
    stand_in = type(sys)("collections")
    stand_in.__path__ = []  # a package, so that "collections.abc" resolves
    stand_in.abc = abc  # type: ignore[attr-defined]
    modules["collections"] = stand_in
    modules["collections.abc"] = abc
    try:
        import array  # noqa: F401
    except ImportError:
        pass  # tried again below, the usual way
    finally:
        if modules.get("collections") is stand_in:
            del modules["collections"]
        if modules.get("collections.abc") is abc:
            del modules["collections.abc"]


TYPE_CHECKING = False
if TYPE_CHECKING:
    from array import array


def __getattr__(name: str) -> object:
    """`array`, imported at its first use (PEP 562)."""
    if name != "array":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _import_without_collections()
    from array import array

    globals()["array"] = array
    return array


def at_first_call(module: str, name: str, namespace: dict) -> object:
    """A stand-in for `from <module> import <name>` in the module whose
    globals are `namespace`: at its first call it imports the real function
    and puts it in its place, so later calls in that module go straight to
    it.  For the C helpers a session may never need (`_bisect`): each such
    library costs a start-up about 0.3 ms to load; and for a module of ours
    that only some commands call into (`module` may be a dotted name)."""

    def stand_in(*args: object) -> object:
        real = getattr(__import__(module, fromlist=[name]), name)
        namespace[name] = real
        return real(*args)

    return stand_in


__all__ = ["array", "at_first_call"]
