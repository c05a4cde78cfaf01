"""Command line entry: argv -> Config -> a session on stdin/stdout.

Every connection pays for start-up, so this module imports almost nothing at
the top, parses argv by hand (argparse alone costs milliseconds) and writes
the greeting before loading the parser, the store or TLS where it can.
"""

from __future__ import annotations

import posix
import sys

USAGE = """\
usage: imapd [--config FILE] [--maildir PATH] [--preauth] [--tls] [--demo]
       imapd --check-config [FILE]
       imapd --hash-password
       imapd --compile
       imapd --version | --help

Serve IMAP on stdin/stdout: started by inetd, xinetd or systemd (socket
activation with Accept=yes), by ssh as a pre-authenticated tunnel, or from a
terminal.

options:
  --config FILE     configuration file (default /etc/imapd/imapd.toml if present)
  --maildir PATH    Maildir to serve when pre-authenticated (default ~/Maildir,
                    created if missing)
  --preauth         greet with * PREAUTH as the invoking user (the default when
                    not started as root; refused as root)
  --tls             implicit TLS from the first byte (port 993)
  --demo            serve a throwaway Maildir with sample messages, pre-authenticated
                    (as the user nobody when started as root)
  --check-config    validate a configuration file and report each problem
  --hash-password   read a password and print a bcrypt hash for a passwd-file
  --compile         write the start-up code cache (after installing or upgrading;
                    a session refreshes it itself where it may write there)
  --version         print the version
  --help            print this help
"""


class Args:
    config: str | None = None
    maildir: str | None = None
    preauth = False
    tls = False
    demo = False
    check_config = False
    check_config_file: str | None = None
    hash_password = False
    compile = False
    version = False
    help = False


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> Args:
    a = Args()
    i = 0
    while i < len(argv):
        arg = argv[i]
        key, eq, inline = arg.partition("=")
        if key in ("--config", "--maildir"):
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UsageError(f"{key} needs a value")
            setattr(a, key[2:], value)
        elif arg == "--check-config":
            a.check_config = True
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                i += 1
                a.check_config_file = argv[i]
        elif arg in ("--preauth", "--tls", "--demo", "--version", "--help", "--hash-password", "--compile"):
            setattr(a, arg[2:].replace("-", "_"), True)
        elif arg == "-h":
            a.help = True
        else:
            raise UsageError(f"unknown argument {arg!r}")
        i += 1
    return a


def _out(text: str) -> None:
    sys.stdout.write(text)  # protocol: command-line output, never inside a session


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        sys.stderr.write(f"imapd: {e}\n{USAGE}")  # protocol: command-line usage error
        return 2
    if args.help:
        _out(USAGE)
        return 0
    if args.version:
        from . import __version__

        _out(f"imapd {__version__}\n")
        return 0
    if args.check_config:
        return check_config(args.check_config_file or args.config)
    if args.hash_password:
        return hash_password()
    if args.compile:
        return compile_code_cache()
    try:
        return serve(args)
    except KeyboardInterrupt:
        return 0


def run_and_exit() -> None:
    """The `imapd` command: `main()`, then end the process with `posix._exit`.

    By then the session has ended: the index and caches are written, the
    transport closed (TLS close_notify sent); the log lines held back until
    the session waited (log.defer_routine) are written here.  What is left is the interpreter's teardown --
    freeing every module and the mailbox's 100,000-entry arrays one object at a
    time -- which costs a short session a noticeable part of its life.  Only
    stdout and stderr can hold buffered bytes (command-line output): flushed
    first.  An exception escaping `main()` (a fault of ours outside any
    command) is logged, not printed -- under inetd standard error is the
    client's socket -- and the process ends with status 70 (EX_SOFTWARE).

    The cyclic garbage collector is paused from here (from the launcher's
    first line, when started through it) until the session first waits with
    work done (see `session.run`): start-up allocates tens of thousands of
    objects (modules, classes, functions) that are never garbage, and a short
    session would spend milliseconds scanning them.

    Last, the start-up code cache is rewritten if it served this process
    badly and may be (imapd/__init__.py)."""
    import gc

    gc.disable()
    try:
        code = main()
    except Exception:  # noqa: BLE001 - never a traceback on the client's socket
        from . import log

        log.exception("imapd stopped by an internal error")
        code = 70
    log_module = sys.modules.get("imapd.log")
    if log_module is not None:
        log_module.flush()  # (lines held back until the session waited or ended)
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # under cProfile or a coverage tool: let it write its report at exit
    _refresh_code_cache()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    posix._exit(code)


def check_config(path: str | None) -> int:
    from .config import DEFAULT_PATH, ConfigError, load

    target = path or DEFAULT_PATH
    try:
        load(target)
    except ConfigError as e:
        for problem in e.problems:
            _out(f"{e.path}: {problem}\n")
        return 1
    _out(f"{target}: OK\n")
    return 0


def hash_password() -> int:
    from .auth.passwdfile import hash_password as make_hash
    from .auth.passwdfile import read_new_password

    try:
        _out(make_hash(read_new_password()) + "\n")
    except ValueError as e:
        sys.stderr.write(f"imapd: {e}\n")  # protocol: command-line output
        return 1
    return 0


def compile_code_cache() -> int:
    from . import cache_path
    from .codecache import write

    try:
        count = write()
    except OSError as e:
        sys.stderr.write(f"imapd: cannot write {cache_path()}: {e.strerror}\n")  # protocol: command-line output
        return 1
    _out(f"{cache_path()}: {count} modules\n")
    return 0


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            n = posix.write(fd, data)
        except BlockingIOError:
            import select  # (only now: the greeting goes out before the loop's modules load)

            select.select([], [fd], [], 5)
            continue
        data = data[n:]


def _stderr_is_client() -> bool:
    """Whether standard error is the client's socket (inetd and xinetd pass it as
    fds 0, 1 and 2): log lines written there would corrupt the protocol."""
    import stat

    try:
        err = posix.fstat(2)
        if not stat.S_ISSOCK(err.st_mode):
            return False
        return any((err.st_dev, err.st_ino) == (st.st_dev, st.st_ino) for st in (posix.fstat(0), posix.fstat(1)))
    except OSError:
        return False


def _refuse(message: str, log_line: str, code: str = "UNAVAILABLE") -> int:
    from . import log

    log.error(log_line)
    try:
        _write_all(1, f"* BYE [{code}] {message}\r\n".encode())
    except OSError:
        pass
    return 1


def serve(args: Args) -> int:
    from . import log
    from .config import ConfigError, load

    try:
        cfg = load(args.config)
    except ConfigError as e:
        return _refuse("Server configuration error", f"bad configuration: {e}")
    log.configure(cfg.server.log_facility, cfg.server.log_to_stderr and not _stderr_is_client())
    log.defer_routine()  # (written when the session first waits for its client, or ends)
    as_root = posix.geteuid() == 0
    user_name = None
    if as_root and args.demo and not args.preauth:
        problem = _become_demo_user()
        if problem:
            return _refuse("The demo cannot run as root", problem)
        as_root = False
        user_name = DEMO_USER  # ($USER still names root)
    if as_root and (args.preauth or args.demo):
        return _refuse("Pre-authentication as root is refused",
                       "refusing --preauth/--demo as root: mail is never served as root")
    if args.tls and not cfg.tls_configured:
        return _refuse("TLS is not configured", "--tls given but tls.certificate/tls.key are not set")

    # The greeting goes out before the parser, the store and TLS are loaded
    # where nothing it says depends on them: every connection waits for it.
    from .capabilities import capabilities, greeting

    demo_dir = None
    greeted = False
    peer = None
    if not as_root:
        user_name = user_name or _own_user_name()
        if not args.tls:
            caps = capabilities(True, cfg.tls_configured, False, True, cfg.limits.append_size)
            try:
                _write_all(1, greeting(True, user_name, caps))
            except OSError:
                return 0
            greeted = True

    from . import log as _log
    from .peer import describe_peer

    peer = describe_peer(0)
    _log.info(f"connection from {peer.kind} {peer.address or ''}".rstrip())

    from .transport import StdioTransport

    tls_factory = None
    if cfg.tls_configured:
        def tls_factory() -> object:
            from .tls import make_server_context

            return make_server_context(cfg.tls.certificate, cfg.tls.key, cfg.tls.min_version, cfg.tls.ciphers or None)

    transport = StdioTransport(0, 1, tls_factory)
    if args.tls and not transport.start_tls(float(cfg.limits.login_timeout)):
        transport.close()
        return 0

    store_opener = None
    login_backend = None
    on_login = None
    kind = cfg.mail.store
    use_inotify = bool(cfg.idle.inotify)
    if not as_root:
        if args.demo:
            from .demo import make_demo_maildir

            demo_dir = make_demo_maildir()
            maildir = demo_dir
        else:
            maildir = _expand_home(args.maildir or "~/Maildir")

        def store_opener(_user: object) -> object:
            from .store import open_store

            return open_store(maildir, kind=kind, create=kind != "readonly", use_inotify=use_inotify,
                              special_use=cfg.mail.special_use)
    else:
        login_backend = _login_backend(cfg, peer.address)

        def on_login(account: object) -> None:
            from .auth.privileges import drop_privileges

            _preload_for_session()
            _refresh_code_cache()  # (while root may still write the installation's cache)
            drop_privileges(account)  # type: ignore[arg-type]
            _leave_root_cwd(getattr(account, "home", "") or "/")

        def store_opener(account: object) -> object:
            from .store import open_store

            return open_store(account.mail_location, kind=kind, create=kind != "readonly",  # type: ignore[attr-defined]
                              use_inotify=use_inotify, special_use=cfg.mail.special_use)

    from .session import Session, run

    secure = peer.is_secure(cfg.auth.secure_networks)
    session = Session(
        cfg,
        user=user_name,
        store_opener=store_opener,
        login_backend=login_backend,
        tls_available=tls_factory is not None,
        tls_active=args.tls,
        secure_channel=secure,
        on_login=on_login,
    )
    if not greeted:
        session.out += session.greeting()
    try:
        run(session, transport)
    finally:
        if demo_dir is not None:
            from .demo import remove_demo_maildir

            remove_demo_maildir(demo_dir)
    return 0


# What a logged-in session may import later.  After the privilege drop the
# process may no longer read the directory imapd is installed in (a root-only
# virtualenv, /root/...): then everything is imported while still root,
# packages walked so that submodules they import lazily are loaded too.
_SESSION_MODULES = (
    "imapd.selected",
    "imapd.store",
    "imapd.store.base",
    "imapd.store.maildir",
    "imapd.mime",
    "imapd.protocol",
    "imapd.commands",
)
from . import PACKAGE_DIR as _PACKAGE_DIR  # noqa: E402


def _own_user_name() -> str:
    """The name a pre-authenticated session reports (greeting, logs): $USER or
    $LOGNAME, as ssh, login and systemd set them and Dovecot's pre-authenticated
    imap reads them, else the password database's name for our uid.  The
    name is only shown: mail is found through $HOME or --maildir, with the
    rights of the uid.  Asking the password database first costs every
    session 0.25 ms (the name service reads its configuration)."""
    for variable in (b"USER", b"LOGNAME"):
        value = posix.environ.get(variable)
        if value:
            return value.decode("utf-8", "replace")
    import pwd

    try:
        return pwd.getpwuid(posix.getuid()).pw_name
    except KeyError:
        return str(posix.getuid())


def _expand_home(path: str) -> str:
    """`os.path.expanduser` without importing `os` (see imapd._absolute):
    ~ is $HOME, or the home in the user's password entry; ~name is name's."""
    if not path.startswith("~"):
        return path
    name, slash, rest = path[1:].partition("/")
    import pwd

    try:
        if name:
            home = pwd.getpwnam(name).pw_dir
        else:
            env = posix.environ.get(b"HOME")
            home = env.decode("utf-8", "surrogateescape") if env else pwd.getpwuid(posix.getuid()).pw_dir
    except KeyError:
        return path
    return (home.rstrip("/") or "/") + (("/" if home.rstrip("/") else "") + rest if slash else "")


def _installed_for_everyone(package_dir: str = _PACKAGE_DIR) -> bool:
    """Whether any user can import imapd's modules: every directory above the
    package searchable by others, and the package's directories and module
    files readable by them.  (The usual installation: a session then imports
    what it needs as it goes; preloading every module would cost each login
    tens of milliseconds.)  Walked with `posix.scandir`: a login loads no
    `os` for it (see imapd._absolute)."""
    from _stat import S_IROTH, S_IXOTH

    try:
        path = package_dir
        while path != "/":
            path = path.rpartition("/")[0] or "/"
            if not posix.stat(path).st_mode & S_IXOTH:
                return False
        todo = [package_dir]
        while todo:
            directory = todo.pop()
            if posix.stat(directory).st_mode & (S_IROTH | S_IXOTH) != S_IROTH | S_IXOTH:
                return False
            with posix.scandir(directory) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):  # (as os.walk: no symlinked directories)
                        todo.append(entry.path)
                    elif entry.name.endswith((".py", ".pyc")) and not entry.stat().st_mode & S_IROTH:
                        return False
    except OSError:
        return False
    return True


def _session_module_names(package_dir: str = _PACKAGE_DIR) -> list[str]:
    """`_SESSION_MODULES` and, for packages, every module and package below."""
    import os

    names: list[str] = []
    for name in _SESSION_MODULES:
        base = os.path.join(os.path.dirname(package_dir), *name.split("."))
        names.append(name)
        if not os.path.isdir(base):
            continue
        for dirpath, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and os.path.isfile(os.path.join(dirpath, d, "__init__.py")))
            package = name + dirpath[len(base):].replace(os.sep, ".")
            if dirpath != base:
                names.append(package)
            names += [f"{package}.{f[:-3]}" for f in sorted(files) if f.endswith(".py") and f != "__init__.py"]
    return list(dict.fromkeys(names))  # (a package walked also lists modules named on their own)


def _refresh_code_cache() -> None:
    """Rewrite the start-up code cache if this process found it missing or
    stale, and may (see imapd/__init__.py)."""
    from . import refresh

    refresh()


def _preload_for_session() -> None:
    if _installed_for_everyone():
        return
    from . import log

    for name in _session_module_names():
        try:
            __import__(name)
        except Exception as e:  # noqa: BLE001 - a missing part fails later, with a NO, not here
            log.warning(f"cannot preload {name}: {e}")


DEMO_USER = "nobody"


def _become_demo_user() -> str | None:
    """`imapd --demo` started as root (a container, a fresh machine): become
    the unprivileged `nobody` before the demo Maildir is made, since mail is
    never served as root.  None on success, else why not."""
    import pwd

    from .auth.base import User
    from .auth.privileges import PrivilegeError, drop_privileges

    try:
        pw = pwd.getpwnam(DEMO_USER)
    except KeyError:
        return f"--demo as root needs the unprivileged user {DEMO_USER!r} to run as; run it as an ordinary user"
    try:
        drop_privileges(User(pw.pw_name, pw.pw_uid, pw.pw_gid, "/", ""))
    except PrivilegeError as e:
        return str(e)
    _leave_root_cwd("/")
    return None


def _leave_root_cwd(home: str) -> None:
    """After the switch, work from the user's home (or "/"), never root's directory."""
    for target in (home, "/"):
        try:
            posix.chdir(target)
            return
        except OSError:
            continue


def _login_backend(cfg: object, client_address: str | None) -> object:
    from . import log

    auth = cfg.auth  # type: ignore[attr-defined]
    if auth.backend == "passwd-file":
        from .auth.passwdfile import PasswdFileBackend

        return PasswdFileBackend(auth.passwd_file, mail_location=auth.mail_location, on_problem=log.warning)
    from .auth.pam import PamBackend

    return PamBackend(service=auth.pam_service, mail_location=auth.mail_location, rhost=client_address)
