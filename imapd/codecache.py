"""Writing the start-up code cache (see imapd/__init__.py for what it holds,
why, and how it is read).

Only `imapd --compile`, and a process that found the cache stale and may
write it, run this; a session that reads the cache does not load it.
"""

import marshal
import os

from . import EXTENSIONS, PACKAGE_DIR, Entry, _header, cache_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import CodeType
    from typing import Any


def write(package_dir: str = PACKAGE_DIR) -> int:
    """Compile every module of the package into a new cache file, replacing the
    old one atomically.  Returns how many modules it holds.  Where the cache
    may not be written, fails with OSError before compiling anything."""
    target = cache_path(package_dir)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temporary = f"{target}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        # Readable by whoever may read the package's sources, whatever the
        # umask of the process writing it (a systemd unit's is 0077).
        os.fchmod(fd, os.stat(os.path.join(package_dir, "__init__.py")).st_mode & 0o644)
        with os.fdopen(fd, "wb") as f:
            count = _write_to(f, package_dir)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return count


def _write_to(f: "Any", package_dir: str) -> int:
    root = os.path.dirname(package_dir)
    index: dict[str, Entry] = {}
    blobs: list[bytes] = []
    for dirpath, dirs, files in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for file_name in sorted(files):
            if not file_name.endswith(".py"):
                continue
            path = os.path.join(dirpath, file_name)
            relative = os.path.relpath(path, root)
            name = relative[:-3].replace(os.sep, ".")
            is_package = file_name == "__init__.py"
            if is_package:
                name = name[:-len(".__init__")]
            compiled = _compile(path)
            if compiled is None:
                continue  # left to the path finder
            mtime_ns, size, code = compiled
            index[name] = (is_package, relative, mtime_ns, size, 0, len(code))
            blobs.append(code)
    header = _header(package_dir)
    index_bytes = _index_bytes(index, blobs, len(header) + 4, _extension_entries())
    f.write(header + len(index_bytes).to_bytes(4, "little") + index_bytes)
    for blob in blobs:
        f.write(blob)
    return len(index)


def _compile(path: str) -> tuple[int, int, bytes] | None:
    """(mtime_ns, size, marshalled code) of a source file, or None if it does
    not compile or changed while it was read."""
    try:
        with open(path, "rb") as f:
            before = os.fstat(f.fileno())
            source = f.read()
        code = _compile_source(source, path)
        after = os.stat(path)
    except (OSError, SyntaxError, ValueError):
        return None
    if (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, after.st_size) or len(source) != after.st_size:
        return None
    return after.st_mtime_ns, after.st_size, marshal.dumps(code)


def _compile_source(source: bytes, path: str) -> "CodeType":
    """Compile a module as Python would, less what a server process never reads.

    - `from __future__ import annotations` becomes the compiler flag it stands
      for.  At run time that statement only imports `__future__` (a stat, an
      open and a read of the standard library's file: 0.15 ms for the first
      module of every session) and binds the name `annotations`, which no
      module uses.
    - Docstrings and the annotations of functions' parameters and results
      are left out, as `python -OO` leaves docstrings out (asserts stay): they
      are for readers and type checkers, and nothing in imapd reads `__doc__`
      or a function's `__annotations__`.  Every session unmarshalled them and
      built each function's annotation tuple: 0.97 M instructions of a warm
      SELECT's 45 M.  Annotated assignments (a class's fields) stay."""
    import __future__
    import ast

    tree = ast.parse(source, path)
    flags = 0
    for i, node in enumerate(tree.body):
        if (isinstance(node, ast.ImportFrom) and node.module == "__future__"
                and [(alias.name, alias.asname) for alias in node.names] == [("annotations", None)]):
            del tree.body[i]
            flags = __future__.annotations.compiler_flag
            break
    _strip_for_running(tree)
    return compile(tree, path, "exec", flags=flags, dont_inherit=True)


def _strip_for_running(tree: "Any") -> None:
    """Remove docstrings and function annotations from a module's tree, in place."""
    import ast

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                        arguments.vararg, arguments.kwarg):
                if arg is not None:
                    arg.annotation = None
            if not isinstance(node, ast.Lambda):
                node.returns = None
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                stripped = ast.Pass()
                ast.copy_location(stripped, body[0])
                node.body = body[1:] or [stripped]


def _extension_entries() -> dict[str, Entry]:
    """Where this interpreter's path finder finds EXTENSIONS (those built in are left out)."""
    from importlib.machinery import ExtensionFileLoader, PathFinder

    found: dict[str, Entry] = {}
    for name in EXTENSIONS:
        spec = PathFinder.find_spec(name)
        if spec is None or not isinstance(spec.loader, ExtensionFileLoader) or not spec.origin:
            continue
        try:
            st = os.stat(spec.origin)
        except OSError:
            continue
        found[name] = (None, spec.origin, st.st_mtime_ns, st.st_size, 0, 0)
    return found


def _index_bytes(index: dict[str, Entry], blobs: list[bytes], start: int, extensions: dict[str, Entry]) -> bytes:
    """The marshalled index with each module's offset filled in.  Offsets
    depend on the index's own length, which the offsets can change: settle it."""
    length = 0
    while True:
        offset = start + length
        for name, blob in zip(index, blobs):
            is_package, relative, mtime_ns, size, _, n = index[name]
            index[name] = (is_package, relative, mtime_ns, size, offset, n)
            offset += n
        data = marshal.dumps({**index, **extensions})
        if len(data) == length:
            return data
        length = len(data)
