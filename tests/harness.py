"""Start the real `imapd` process and talk to it, for the end-to-end tests.

As in production, mail is never served as root: when the tests run as root
(CI does), the server is started as an unprivileged user (`nobody`) on a
Maildir that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAPD = [sys.executable, "-m", "imapd"]


@dataclass
class MailUser:
    name: str
    uid: int
    gid: int


def mail_user() -> MailUser:
    """The user the server runs as: ourselves, or `nobody` when we are root."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
    else:
        pw = pwd.getpwuid(os.getuid())
    return MailUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


def make_maildir(user: MailUser, folders: Sequence[str] = ()) -> str:
    """An empty Maildir (plus `.folder` directories) in a fresh directory `user` owns."""
    base = tempfile.mkdtemp(prefix="imapd-test-", dir="/tmp")
    root = os.path.join(base, "Maildir")
    for folder in ("",) + tuple(folders):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, folder, sub), exist_ok=True)
    chown_tree(base, user)
    return root


def chown_tree(path: str, user: MailUser) -> None:
    """Give `path` to `user`; symlinks are changed themselves, never their targets."""
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, user.uid, user.gid)
        for f in dirnames + filenames:
            os.lchown(os.path.join(dirpath, f), user.uid, user.gid)


def remove_maildir(root: str) -> None:
    shutil.rmtree(os.path.dirname(root), ignore_errors=True)


def deliver(root: str, data: bytes, user: MailUser, name: str | None = None, folder: str = "") -> str:
    """Deliver like an MDA: write in tmp/, rename into new/."""
    name = name or f"{time.time():.6f}.P{os.getpid()}Q{os.urandom(4).hex()}.test"
    base = os.path.join(root, folder)
    tmp = os.path.join(base, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    if os.geteuid() == 0:
        os.chown(tmp, user.uid, user.gid)
    dest = os.path.join(base, "new", name)
    os.rename(tmp, dest)
    return dest


def _demote(user: MailUser):  # type: ignore[no-untyped-def]
    def run() -> None:
        if os.geteuid() == 0:
            os.setgroups([])
            os.setgid(user.gid)
            os.setuid(user.uid)

    return run


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "REMOTE_"))}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["HOME"] = "/tmp"
    if extra:
        env.update(extra)
    return env


class ImapPipe:
    """A client over two pipes (the way ssh runs imapd)."""

    def __init__(self, args: Sequence[str], user: MailUser | None = None, env: dict[str, str] | None = None,
                 as_root: bool = False) -> None:
        preexec = None if as_root or user is None else _demote(user)
        self.proc = subprocess.Popen(
            IMAPD + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=preexec, env=server_env(env), cwd="/",
        )
        self.buf = b""
        self.tag_counter = 0
        self.greeting = self.read_line()

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_some(self, timeout: float = 10.0) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            raise TimeoutError(f"no output from imapd within {timeout}s; have {self.buf[-300:]!r}")
        data = os.read(fd, 65536)
        if not data:
            raise EOFError(f"imapd closed its output; have {self.buf[-300:]!r}")
        return data

    def read_line(self, timeout: float = 10.0) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.read_some(timeout)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_until_tagged(self, tag: str, timeout: float = 10.0) -> list[bytes]:
        """Lines up to and including the tagged response; literals kept inline."""
        lines: list[bytes] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.1, deadline - time.monotonic()))
            m = re.search(rb"\{(\d+)\}$", line)
            while m:  # a literal follows: take its bytes and the rest of the line
                n = int(m.group(1))
                while len(self.buf) < n:
                    self.buf += self.read_some(max(0.1, deadline - time.monotonic()))
                lit, self.buf = self.buf[:n], self.buf[n:]
                rest = self.read_line(max(0.1, deadline - time.monotonic()))
                line = line + b"\r\n" + lit + rest
                m = re.search(rb"\{(\d+)\}$", rest)
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    def command(self, text: str | bytes, timeout: float = 10.0) -> list[bytes]:
        self.tag_counter += 1
        tag = f"t{self.tag_counter}"
        data = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + data + b"\r\n")
        return self.read_until_tagged(tag, timeout)

    def close(self) -> int:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(10)
        finally:
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()

    def __enter__(self) -> "ImapPipe":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.close()


def tagged_status(lines: list[bytes]) -> bytes:
    """`OK`, `NO` or `BAD` of the last (tagged) line."""
    return lines[-1].split(b" ", 2)[1]


# --------------------------------------------------------------------------
# Deployment paths: imapd started as root by a super-server on a TCP socket.

IN_CI = os.environ.get("CI") == "true"


def require_root(what: str = "this test") -> None:
    """Skip without root; in CI (CI=true) a skip would hide a broken setup, so fail."""
    if os.geteuid() != 0:
        if IN_CI:
            import pytest

            pytest.fail(f"{what} must run as root in CI")
        import pytest

        pytest.skip(f"{what} needs root")


def require_tool(name: str) -> str:
    """Path of a program; skip when it is missing, but fail in CI (.ci/run installs it)."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        import pytest

        if IN_CI:
            pytest.fail(f"{name} is missing: .ci/run must install it")
        pytest.skip(f"{name} is not installed")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def launcher_script(directory: str, args: Sequence[str], pythonpath: str = REPO) -> str:
    """A /bin/sh command for a super-server: the real `bin/imapd` launcher with `args`.

    Super-servers pass little or no environment, so the script sets PATH (for the
    launcher's `python3`) and PYTHONPATH (for an uninstalled checkout) itself.
    """
    import shlex

    path = os.path.join(directory, "imapd-launch.sh")
    bindir = os.path.dirname(sys.executable)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"export PATH={shlex.quote(bindir)}:/usr/local/bin:/usr/bin:/bin\n"
                f"export PYTHONPATH={shlex.quote(pythonpath)}\n"
                f"exec {shlex.quote(os.path.join(REPO, 'bin', 'imapd'))} "
                + " ".join(shlex.quote(a) for a in args) + "\n")
    os.chmod(path, 0o755)
    return path


def _tcp_table(pid: int | str = "self") -> list[tuple[str, str, str, str]]:
    """(local, remote, state, inode) of every TCP socket in `pid`'s network namespace."""
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    rows.append((fields[1], fields[2], fields[3], fields[9]))
        except OSError:
            continue
    return rows


def _proc_addr(host: str, port: int) -> str:
    import socket

    return socket.inet_aton(host)[::-1].hex().upper() + f":{port:04X}"


def is_listening(port: int, pid: int | str = "self") -> bool:
    suffix = f":{port:04X}"
    return any(local.endswith(suffix) and state == "0A" for local, _, state, _ in _tcp_table(pid))


class SuperServer:
    """A super-server (socat, systemd-socket-activate, xinetd) that starts one imapd
    per connection with the socket as stdin/stdout, as inetd does.

    `argv` is the whole command; the server is ready when something listens on
    `port` in its network namespace.  Its stderr (and so imapd's, with
    `log_to_stderr`) goes to `log_path`.
    """

    def __init__(self, argv: Sequence[str], port: int, log_path: str, env: dict[str, str] | None = None,
                 ready: Callable[[], bool] | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True, cwd="/", env=env)
        deadline = time.monotonic() + 10
        while not (ready() if ready is not None else is_listening(port, self.proc.pid)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[0]} did not listen on port {port}: {self.log()}")
            time.sleep(0.02)

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()

    def __enter__(self) -> "SuperServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ImapSocket(ImapPipe):
    """A client on a TCP (or AF_UNIX) socket, with STARTTLS; same reading helpers as ImapPipe."""

    def __init__(self, address: object, family: int | None = None, timeout: float = 10.0,
                 greeting: bool = True) -> None:
        import socket

        if family is None:
            family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.raw = self.sock
        self.buf = b""
        self.tag_counter = 0
        self.greeting = self.read_line() if greeting else b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_some(self, timeout: float = 10.0) -> bytes:
        import socket

        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError(f"no output from imapd within {timeout}s; have {self.buf[-300:]!r}") from None
        if not data:
            raise EOFError(f"imapd closed the connection; have {self.buf[-300:]!r}")
        return data

    def silent_for(self, seconds: float) -> bool:
        """True if the server sends nothing at all for `seconds` (nothing buffered either)."""
        if self.buf or getattr(self.sock, "pending", lambda: 0)():
            return False
        r, _, _ = select.select([self.sock], [], [], seconds)
        return not r

    def read_all(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes the connection."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.buf += self.read_some(max(0.1, deadline - time.monotonic()))
            except EOFError:
                data, self.buf = self.buf, b""
                return data

    def starttls(self, context: object, server_hostname: str = "localhost") -> None:
        """Wrap the socket in TLS (after `OK Begin TLS`); nothing may be buffered."""
        assert self.buf == b"", f"plaintext left over before the handshake: {self.buf!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)  # type: ignore[attr-defined]
        self.raw = self.sock  # the plain socket object is detached by wrap_socket

    def server_pid(self) -> int:
        """Pid of the imapd process at the other end of this (TCP) connection."""
        return server_pid_for(self.raw)

    def close(self) -> int:  # type: ignore[override]
        self.sock.close()
        return 0

    def __enter__(self) -> "ImapSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def server_pid_for(sock: object) -> int:
    """The imapd process holding the server side of a TCP connection on this machine."""
    client_host, client_port = sock.getsockname()[:2]  # type: ignore[attr-defined]
    server_host, server_port = sock.getpeername()[:2]  # type: ignore[attr-defined]
    want_local, want_remote = _proc_addr(server_host, server_port), _proc_addr(client_host, client_port)
    inodes = {inode for local, remote, _, inode in _tcp_table()
              if local == want_local and remote == want_remote}
    targets = {f"socket:[{i}]" for i in inodes}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in targets for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if b"imapd" in cmdline:
            found.append(int(pid))
    if len(found) != 1:
        raise LookupError(f"expected one imapd process on the connection, found {found}")
    return found[0]


def proc_status(pid: int) -> dict[str, list[str]]:
    """/proc/<pid>/status as {"Uid": ["1001", "1001", "1001", "1001"], ...}."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


# --------------------------------------------------------------------------
# Hostile-input tests: configs, file-system snapshots, resource readings.


def config_file(text: str) -> str:
    """A config file in /tmp that the server (as `nobody`) can read; the caller removes it."""
    fd, path = tempfile.mkstemp(suffix=".toml", prefix="imapd-test-", dir="/tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def tree_snapshot(path: str) -> dict[str, tuple[str, bytes | str | None]]:
    """Every entry under `path` (symlinks not followed): kind and content or target."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                out[p] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                out[p] = ("dir", None)
            else:
                try:
                    with open(p, "rb") as f:
                        out[p] = ("file", f.read())
                except OSError:
                    out[p] = ("unreadable", None)
    return out


def proc_rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB (VmRSS), 0 once it is gone."""
    try:
        return int(proc_status(pid).get("VmRSS", ["0"])[0])
    except (OSError, ValueError):
        return 0


def proc_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RecordingPipe(ImapPipe):
    """An ImapPipe that keeps every byte the server sent (`transcript`)."""

    def __init__(self, *args: object, **kw: object) -> None:
        self.transcript = bytearray()
        super().__init__(*args, **kw)  # type: ignore[arg-type]

    def read_some(self, timeout: float = 10.0) -> bytes:
        data = super().read_some(timeout)
        self.transcript += data
        return data

    def read_to_eof(self, timeout: float = 10.0) -> bytes:
        """Everything the server still sends until it closes its output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.buf += self.read_some(max(0.1, deadline - time.monotonic()))
            except EOFError:
                data, self.buf = self.buf, b""
                return data


def altered_copy(relative: str, change: Callable[[str], str]) -> str:
    """A copy of the imapd package (sources only) in a new directory every user
    may read, with the file `relative` (e.g. "session.py") rewritten by
    `change`: a broken installation, or a fault injected where no test could
    reach it otherwise.  Returns the directory to put on PYTHONPATH."""
    root = tempfile.mkdtemp(prefix="imapd-test-lib-", dir="/tmp")
    os.chmod(root, 0o755)
    shutil.copytree(os.path.join(REPO, "imapd"), os.path.join(root, "imapd"), ignore=shutil.ignore_patterns("__pycache__"))
    path = os.path.join(root, "imapd", relative)
    with open(path) as f:
        text = f.read()
    changed = change(text)
    assert changed != text, f"{relative}: nothing changed"
    with open(path, "w") as f:
        f.write(changed)
    return root
