"""The start-up code cache (read in imapd/__init__.py, written by
imapd/codecache.py), on a copy of the package so
the checkout's own cache is left alone: written whole, served module by
module, never trusted for a source edited since, a garbled file or another
directory; written by a session that may, not by one told not to."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness import REPO, _demote, chown_tree, mail_user, require_root

CACHE = f"imapd-code.{sys.implementation.cache_tag}.cache"


@pytest.fixture
def base():
    """A directory any user may enter (the mail user runs sessions from it)."""
    path = Path(tempfile.mkdtemp(prefix="imapd-test-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def package(base):
    """A copy of imapd/ (sources only); returns the directory holding it."""
    lib = base / "lib"
    shutil.copytree(os.path.join(REPO, "imapd"), lib / "imapd", ignore=shutil.ignore_patterns("__pycache__"))
    return lib


def _python(lib, code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter started like the launcher starts imapd."""
    out = subprocess.run([sys.executable, "-S", "-P", "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(lib), **(env or {})}, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout


def _loaders(lib, modules: list[str]) -> dict[str, str]:
    """How each module was loaded after `install()`: the loader's class name."""
    code = ("import imapd as c, importlib\n"
            "c.install()\n"
            f"for name in {modules!r}:\n"
            "    m = importlib.import_module(name)\n"
            "    print(name, type(m.__loader__).__name__, m.__file__)\n")
    result = {}
    for line in _python(lib, code).splitlines():
        name, loader, path = line.split(" ", 2)
        assert path.startswith(f"{lib}/imapd/") and path.endswith(".py"), path
        result[name] = loader
    return result


def _count_sources(lib) -> int:
    return sum(f.endswith(".py") for _, _, files in os.walk(lib / "imapd") for f in files)


def test_compile_writes_every_module_and_a_session_imports_them_from_it(package):
    out = subprocess.run([os.path.join(REPO, "bin", "imapd"), "--compile"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(package), "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin"},
                         timeout=60)
    assert out.returncode == 0, out.stderr
    path = package / "imapd" / "__pycache__" / CACHE
    assert out.stdout == f"{path}: {_count_sources(package)} modules\n"
    loaders = _loaders(package, ["imapd.session", "imapd.store.maildir", "imapd.store.maildir.mailbox",
                                 "imapd.protocol.parser"])
    assert set(loaders.values()) == {"CacheFinder"}, loaders
    # A package served from the cache still finds its submodules, cached or not.
    assert _python(package, "import imapd as c\nc.install()\nimport imapd.mime.wire as w\n"
                            "import imapd.store.maildir as m\nprint(m.__path__ == [m.__file__.rsplit('/', 1)[0]],"
                            " c.stale())\n") == "True False\n"


def test_a_module_edited_since_is_compiled_from_its_source_and_the_cache_renewed(package):
    _python(package, "import imapd.codecache as c\nprint(c.write())")
    with open(package / "imapd" / "record.py", "a") as f:
        f.write("\nEDITED = 'yes'\n")
    code = ("import imapd as c\nc.install()\nimport imapd.record, imapd.session\n"
            "print(type(imapd.record.__loader__).__name__, type(imapd.session.__loader__).__name__,"
            " imapd.record.EDITED, c.stale())\nc.refresh()\n")
    assert _python(package, code) == "SourceFileLoader CacheFinder yes True\n"
    # The refresh compiled the edited module into the cache.
    assert _python(package, code) == "CacheFinder CacheFinder yes False\n"


def test_cached_modules_postpone_annotations_without_importing_future(package):
    """`from __future__ import annotations` is compiled in as its flag: the
    session does not import the standard library's `__future__` for it."""
    _python(package, "import imapd.codecache as c\nc.write()")
    code = ("import sys, imapd as c\nc.install()\n"
            "import imapd.session, imapd.store.maildir.mailbox as m\n"
            "print(type(m.__loader__).__name__, '__future__' in sys.modules,"
            " m.idxmod.IndexData.__annotations__['count'])\n")
    assert _python(package, code) == "CacheFinder False int\n"
    # From source the same module imports it, and reads the same class annotations.
    assert _python(package, code.replace("c.install()", "pass")) == "SourceFileLoader True int\n"


def test_cached_code_has_no_docstrings_or_function_annotations(package):
    """What only readers and type checkers use is not in the cache: a session
    would unmarshal it for nothing.  From source, both are there."""
    _python(package, "import imapd.codecache as c\nc.write()")
    code = ("import imapd as c\nc.install()\n"
            "import imapd.store.maildir.mailbox as m\n"
            "f = m.MaildirMailbox.first_unseen_index\n"
            "print(type(m.__loader__).__name__, m.__doc__ is None, m.Mailbox.__doc__ is None,"
            " m.MaildirMailbox._names_from_uidlist.__doc__ is None, f.__annotations__)\n")
    assert _python(package, code) == "CacheFinder True True True {}\n"
    assert _python(package, code.replace("c.install()", "pass")) == \
        "SourceFileLoader False False False {'return': 'int'}\n"


def test_c_libraries_load_from_where_the_cache_recorded_them(package):
    """`array`, `select`... are loaded from the file the cache names, so the
    path finder never walks sys.path to list lib-dynload for them; an entry
    that no longer names the file (moved, or another interpreter's) is left
    to the path finder."""
    _python(package, "import imapd.codecache as c\nc.write()")
    dynload = [p for p in sys.path if p.endswith("lib-dynload")]
    code = ("import sys, imapd as c\nf = c.install()\n{tamper}"
            "import array, select\n"
            "print(sorted(n for n in ('array', 'select') if n in f.index),"
            " sorted(p for p in sys.path_importer_cache if p.endswith('lib-dynload')),"
            " array.array('I', [7])[0], type(array.__spec__.loader).__name__)\n")
    files = sorted(n for n in ("array", "select") if n not in sys.builtin_module_names)
    loader = "ExtensionFileLoader" if files else "BuiltinImporter"
    assert _python(package, code.format(tamper="")) == f"{files} [] 7 {loader}\n"
    if files:
        tamper = "f.index['array'] = (None, '/nonexistent/array.so', 0, 0, 0, 0)\n"
        assert _python(package, code.format(tamper=tamper)) == f"{files} {dynload} 7 {loader}\n"


def test_a_garbled_or_truncated_cache_is_not_used(package):
    _python(package, "import imapd.codecache as c\nc.write()")
    path = package / "imapd" / "__pycache__" / CACHE
    whole = path.read_bytes()
    for damaged in (b"", whole[:30], b"\0" * len(whole), os.urandom(4096)):
        path.write_bytes(damaged)
        loaders = _loaders(package, ["imapd.session", "imapd.store.maildir.mailbox"])
        assert set(loaders.values()) == {"SourceFileLoader"}, (len(damaged), loaders)
    # An index that reads, but not as one: no entry is trusted.
    import marshal

    header_end = whole.index(b"\n") + 1 + 4 + 1
    header_end += 2 + int.from_bytes(whole[header_end:header_end + 2], "little")
    bogus = marshal.dumps({"imapd.session": ("x",), "imapd.store.maildir.mailbox": (True, 7, 0, 0, 0, 0)})
    path.write_bytes(whole[:header_end] + len(bogus).to_bytes(4, "little") + bogus)
    loaders = _loaders(package, ["imapd.session", "imapd.store.maildir.mailbox"])
    assert set(loaders.values()) == {"SourceFileLoader"}, loaders
    # Cut short: what is still whole is served, the rest compiled from source.
    path.write_bytes(whole[:len(whole) // 2])
    listed = _python(package, "import imapd as c\nf = c.install()\nprint(' '.join(f.index))").split()
    loaders = _loaders(package, [name for name in listed if name.startswith(("imapd.protocol", "imapd.store", "imapd.mime"))])
    assert set(loaders.values()) == {"SourceFileLoader", "CacheFinder"}, loaders


def test_a_damaged_module_in_an_intact_index_falls_back_to_its_source(package):
    _python(package, "import imapd.codecache as c\nc.write()")
    path = package / "imapd" / "__pycache__" / CACHE
    offset, length = map(int, _python(package, (
        "import imapd as c, marshal, os\nf = c.install()\n"
        "e = f.index['imapd.record']\nprint(e[4], e[5])")).split())
    data = bytearray(path.read_bytes())
    data[offset:offset + length] = b"\xff" * length
    path.write_bytes(bytes(data))
    loaders = _loaders(package, ["imapd.record", "imapd.session"])
    assert loaders == {"imapd.record": "SourceFileLoader", "imapd.session": "CacheFinder"}


def test_a_copied_installation_does_not_use_the_cache_of_the_original(package, base):
    _python(package, "import imapd.codecache as c\nc.write()")
    copy = base / "copy"
    shutil.copytree(package, copy, copy_function=shutil.copy2)  # (same mtimes and sizes)
    assert (copy / "imapd" / "__pycache__" / CACHE).exists()
    loaders = _loaders(copy, ["imapd.session"])
    assert loaders == {"imapd.session": "SourceFileLoader"}


def test_refresh_writes_nothing_when_told_not_to_write_bytecode(package):
    code = "import imapd as c\nc.install()\nimport imapd.session\nc.refresh()\n"
    _python(package, code, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert not (package / "imapd" / "__pycache__" / CACHE).exists()
    _python(package, code)
    assert (package / "imapd" / "__pycache__" / CACHE).exists()


def _demote_with_umask(user):  # type: ignore[no-untyped-def]
    demote = _demote(user)

    def run() -> None:
        os.umask(0o077)
        demote()

    return run


def test_a_session_of_the_user_who_owns_the_installation_writes_the_cache(package, base):
    """`ssh host imapd` from a user's own installation: the first session writes
    the cache; the next one is served from it and leaves it as it is."""
    user = mail_user()
    maildir = base / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    chown_tree(str(base), user)
    env = {"PYTHONPATH": str(package), "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": "/tmp"}
    path = package / "imapd" / "__pycache__" / CACHE

    def session() -> bytes:
        out = subprocess.run([os.path.join(REPO, "bin", "imapd"), "--maildir", str(maildir)],
                             input=b"a SELECT INBOX\r\nb LOGOUT\r\n", capture_output=True, env=env,
                             preexec_fn=_demote_with_umask(user), cwd="/", timeout=60)
        assert out.returncode == 0 and out.stderr == b"", out
        return out.stdout

    first = session()
    assert first.startswith(b"* PREAUTH") and b"a OK [READ-WRITE]" in first and b"b OK" in first
    written = os.stat(path)
    assert written.st_uid == user.uid
    assert written.st_mode & 0o777 == 0o644  # as readable as the sources, whatever the umask
    second = session()
    assert second.replace(b"\r\n", b"\n") == first.replace(b"\r\n", b"\n")
    assert os.stat(path).st_mtime_ns == written.st_mtime_ns  # served from it: not written again


def test_a_user_who_may_not_write_the_installation_is_served_without_a_cache(package, base):
    """The usual system-wide installation before `imapd --compile`: sessions
    neither fail nor leave anything behind."""
    require_root("an installation another user owns")
    user = mail_user()
    maildir = base / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    chown_tree(str(maildir), user)
    (package / "imapd" / "__pycache__").mkdir()
    env = {"PYTHONPATH": str(package), "PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run([os.path.join(REPO, "bin", "imapd"), "--maildir", str(maildir)],
                         input=b"a SELECT INBOX\r\nb LOGOUT\r\n", capture_output=True, env=env,
                         preexec_fn=_demote(user), cwd="/", timeout=60)
    assert out.returncode == 0 and out.stderr == b"" and b"a OK [READ-WRITE]" in out.stdout, out
    assert os.listdir(package / "imapd" / "__pycache__") == []
    # it found out it may not write before loading `os` to try (1.5 ms a session)
    timed = subprocess.run([os.path.join(REPO, "bin", "imapd"), "--maildir", str(maildir)],
                           input=b"a SELECT INBOX\r\nb LOGOUT\r\n", capture_output=True,
                           env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, preexec_fn=_demote(user), cwd="/", timeout=60)
    imported = {line.rsplit("|", 1)[1].strip() for line in timed.stderr.decode().splitlines() if "|" in line}
    assert "imapd.cli" in imported and "os" not in imported, sorted(imported)
