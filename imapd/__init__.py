"""imapd: an IMAP server for Maildir, one process per connection, over stdin/stdout.

The package itself holds what every connection runs before anything else:
`_launch`, and the reader of the start-up code cache, the compiled code of
every imapd module in one file.  (Here, because a second module found through
Python's path finder -- a listing of this directory, a .pyc to stat, open,
read and check -- cost every connection 0.2 ms.)

Every connection starts a new interpreter and imports the thirty-odd modules a
session needs.  Through Python's path finder each import stats several
candidate paths, opens, reads and validates its own .pyc: a warm SELECT of
100,000 messages took 29 ms with the cache against 37 without (median of 30,
spawn to exit).  The cache is one file in the package's `__pycache__`,
holding each module's code object with the size and mtime of the source it
was compiled from.  A meta-path finder serves a module from it with one stat
of that source; a module whose source changed, or that the cache does not
hold, is imported the ordinary way.  The index also says where the standard
library's C libraries that sessions import (`array`, `select`...) were
found, so that loading one does not send the path finder through sys.path
(again only while that file is unchanged).

The cache is written (imapd/codecache.py) the way Python writes a .pyc:
atomically, by a process allowed to write there and not told otherwise
(`sys.dont_write_bytecode`): `imapd --compile` after installing or upgrading,
the session of a user who owns the installation, or a server started as root
before it drops privileges.  It is trusted as much as the .pyc files beside
it, and only for the directory it was written for: a copied installation
compiles its own.
"""

__version__ = "0.1.0"

import marshal
import posix
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType, ModuleType
    from typing import Any


def _absolute(path: str) -> str:
    """`os.path.abspath`, without `os`: importing it (and the abstract classes
    of `_collections_abc` it needs) costs a session 6 million instructions,
    a fifth of all it runs of its own for a warm SELECT.  Modules on the way
    to a first command call `posix` instead; `os` waits for the commands
    that need it."""
    if not path.startswith("/"):
        path = posix.getcwd() + "/" + path
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part and part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def _dirname(path: str) -> str:
    """`os.path.dirname` of a path without a trailing slash."""
    head, slash, _ = path.rpartition("/")
    return head or slash


PACKAGE_DIR = _dirname(_absolute(__file__))
FILE_MAGIC = b"imapd code cache 2\n"
# Index entry: module name -> (is a package, source path relative to the package's parent,
# source st_mtime_ns, source st_size, offset of the code in the file, its length);
# for a C library of the standard library: (None, its absolute path, st_mtime_ns, st_size, 0, 0).
Entry = tuple  # (bool | None, str, int, int, int, int)
# The standard library's C libraries that imapd imports on a session's way
# (where the interpreter has them as files, not built in).  The path finder's
# first search for one walks sys.path and lists lib-dynload: 0.4 ms of a
# session that opens a mailbox (`array`), where the recorded path takes 0.1.
EXTENSIONS = ("array", "_bisect", "select", "syslog", "fcntl", "binascii", "_socket", "grp")


def cache_path(package_dir: str = PACKAGE_DIR) -> str:
    return f"{package_dir}/__pycache__/imapd-code.{sys.implementation.cache_tag}.cache"


_CODE_TYPE = type(cache_path.__code__)  # (types.CodeType, without importing types)


def _header(package_dir: str) -> bytes:
    """What a cache must begin with to be read by this interpreter for this
    directory: bytecode and optimization level, and where it was compiled."""
    pyc_magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    where = _dirname(package_dir).encode("utf-8", "surrogateescape")
    return FILE_MAGIC + pyc_magic + bytes([sys.flags.optimize]) + len(where).to_bytes(2, "little") + where


class CacheFinder:
    """Finds and loads `imapd.*` modules from the cache file (kept open)."""

    def __init__(self, path: str, fd: int, root: str, index: dict[str, Entry]) -> None:
        self.path = path
        self.fd = fd
        self.root = root
        self.index = index
        self._buffer = bytearray()

    def find_spec(self, name: str, path: object = None, target: object = None) -> "Any":
        entry = self.index.get(name)
        if entry is None:
            return None
        if entry[0] is None:
            return _extension_spec(name, entry)
        try:
            is_package, relative, mtime_ns, size, offset, length = entry
            origin = f"{self.root}/{relative}"
            st = posix.stat(origin)
            if st.st_mtime_ns != mtime_ns or st.st_size != size:
                return None  # edited since: the path finder compiles the new source
            code = self._load(offset, length)
        except (OSError, ValueError, EOFError, TypeError):
            return None
        if type(code) is not _CODE_TYPE:  # noqa: E721 - a code object, nothing else
            return None
        spec = sys.modules["_frozen_importlib"].ModuleSpec(name, self, origin=origin, is_package=is_package)
        spec.has_location = True  # sets __file__
        spec.cached = self.path  # (else importlib derives a .pyc path for __cached__)
        spec.loader_state = code
        if is_package:
            spec.submodule_search_locations = [_dirname(origin)]
        return spec

    def _load(self, offset: int, length: int) -> object:
        """Unmarshal the `length` bytes at `offset`, read into one buffer that
        every module reuses: a new 10-60 KB string per module touched fresh
        heap pages, about 40 page faults a session.  ValueError if the file
        is shorter."""
        if not hasattr(posix, "preadv"):
            data = posix.pread(self.fd, length, offset)
            if len(data) != length:
                raise ValueError("truncated")
            return marshal.loads(data)
        buffer = self._buffer
        if len(buffer) < length:
            buffer = self._buffer = bytearray(length)
        with memoryview(buffer)[:length] as view:
            if posix.preadv(self.fd, [view], offset) != length:
                raise ValueError("truncated")
            return marshal.loads(view)

    def create_module(self, spec: "Any") -> "ModuleType":
        """The module, with `__file__` and `__cached__` already set: importlib
        asks for both before setting them, and on a module each missing
        attribute costs two formatted AttributeErrors."""
        module = type(sys)(spec.name)
        module.__file__ = spec.origin
        module.__cached__ = spec.cached
        return module

    def exec_module(self, module: "ModuleType") -> None:
        code: "CodeType" = module.__spec__.loader_state
        module.__spec__.loader_state = None
        exec(code, module.__dict__)


def _extension_spec(name: str, entry: Entry) -> "Any":
    """A C library found where it was when the cache was written, if it is
    still that file and in this interpreter's path; else None (the path finder
    looks)."""
    origin, mtime_ns, size = entry[1], entry[2], entry[3]
    if _dirname(origin) not in sys.path:
        return None  # another interpreter's
    try:
        st = posix.stat(origin)
    except OSError:
        return None
    if st.st_mtime_ns != mtime_ns or st.st_size != size:
        return None
    loader = sys.modules["_frozen_importlib_external"].ExtensionFileLoader(name, origin)
    spec = sys.modules["_frozen_importlib"].ModuleSpec(name, loader, origin=origin)
    spec.has_location = True
    return spec


def install(package_dir: str = PACKAGE_DIR) -> CacheFinder | None:
    """Put the cache's finder first on `sys.meta_path`, if a cache for this
    interpreter and directory is there; otherwise imports go on as usual."""
    path = cache_path(package_dir)
    try:
        fd = posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC)
    except OSError:
        return None
    try:
        header = _header(package_dir)
        head = posix.pread(fd, len(header) + 4, 0)
        if head[:len(header)] != header or len(head) != len(header) + 4:
            raise ValueError("not a cache for this interpreter and directory")
        length = int.from_bytes(head[len(header):], "little")
        index = marshal.loads(posix.pread(fd, length, len(header) + 4))
        if not isinstance(index, dict):
            raise ValueError("index is not a table")
    except (OSError, ValueError, EOFError, TypeError):
        posix.close(fd)
        return None
    finder = CacheFinder(path, fd, _dirname(package_dir), index)
    sys.meta_path.insert(0, finder)
    return finder


def stale() -> bool:
    """Whether this process imported an imapd module the cache could not give
    it (none there, or compiled from older source): then a rewrite pays off."""
    for name, module in list(sys.modules.items()):
        if name.startswith("imapd.") and module is not None:
            if not isinstance(getattr(module, "__loader__", None), CacheFinder):
                return True
    return False


_written_here = False


def refresh(package_dir: str = PACKAGE_DIR) -> None:
    """Rewrite the cache if it served this process badly and writing is allowed.
    Any failure (a read-only installation, a full disk) leaves imports as they were."""
    global _written_here
    if sys.dont_write_bytecode or _written_here or not stale():
        return
    # (a user who may not write there -- the usual session of a system-wide
    # installation without --compile -- is told so before `os` is loaded)
    where = _dirname(cache_path(package_dir))
    if not posix.access(where if posix.access(where, posix.F_OK) else package_dir, posix.W_OK):
        return
    from .codecache import write

    try:
        write(package_dir)
    except OSError:
        return
    _written_here = True  # (what this process imported is in it, or was compiled again)


def _launch() -> None:
    """Run the `imapd` command: what `bin/imapd` and `python -m imapd` do once
    this package is found.  The cyclic garbage collector waits (start-up
    allocates objects that are never garbage), and imapd's modules come from
    the start-up code cache where there is one.  (Here, not in
    the launcher's `-c` text, which Python parses and compiles anew for every
    connection: 0.3 M instructions for those lines.)"""
    import gc

    gc.disable()
    install()
    from .cli import run_and_exit

    sys.argv[0] = "imapd"
    run_and_exit()
