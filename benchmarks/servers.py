"""The servers under test, how to start them, and the Maildirs they work on.

Both servers run pre-authenticated over two pipes, as the same unprivileged
user, each session in a fresh process: imapd through its launcher (`bin/imapd`,
what users run), Dovecot as its own `imap` binary with a minimal config.  A
`Child` is one such process with a client on its pipes; `finish()` reaps it
with `wait4`; its peak resident memory is read from /proc just before LOGOUT.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .client import StdioClient

BENCH_USER = "imapdbench"
DOVECOT_IMAP = "/usr/lib/dovecot/imap"
SETTLE_SECONDS = 1.1   # Dovecot re-reads a directory changed within the last second


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gid: int

    @property
    def switch(self) -> bool:
        return os.geteuid() != self.uid


def bench_identity(name: str = BENCH_USER) -> Identity:
    """The user both servers run as: `name` (created if missing) when we are root,
    else ourselves (Dovecot refuses root; imapd refuses PREAUTH as root)."""
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.getuid())
        return Identity(pw.pw_name, pw.pw_uid, pw.pw_gid)
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", name], check=True)
        pw = pwd.getpwnam(name)
    return Identity(pw.pw_name, pw.pw_uid, pw.pw_gid)


def server_python(ident: Identity) -> tuple[str, str]:
    """(path, version) of the interpreter imapd runs on: the one running the
    benchmark if the benchmark user can run it, else the first Python 3.11 or
    later on the system path that they can.  (An interpreter under a private
    home directory, a pyenv or venv one of root's, is out of the benchmark
    user's reach: imapd's launcher would then quietly fall back to `python3` on
    the path, and the start-up baseline would not run at all.)"""
    own = os.path.realpath(sys.executable)
    candidates = [own]
    for name in (f"python{sys.version_info[0]}.{sys.version_info[1]}", "python3"):
        found = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
        if found and os.path.realpath(found) not in candidates:
            candidates.append(os.path.realpath(found))
    for exe in candidates:
        try:
            probe = subprocess.run([exe, "-S", "-c", "import sys; print(*sys.version_info[:3], sep='.')"],
                                   capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"},
                                   cwd="/", user=ident.uid if ident.switch else None,
                                   group=ident.gid if ident.switch else None,
                                   extra_groups=[] if ident.switch else None)
        except (OSError, subprocess.SubprocessError):
            continue
        version = probe.stdout.strip()
        if probe.returncode == 0 and tuple(map(int, version.split("."))) >= (3, 11):
            return exe, version
    raise SystemExit(f"user {ident.name} can run none of {', '.join(candidates)} (Python 3.11 or later): "
                     "make one reachable (a private home directory hides the interpreter) or run from another")


@dataclass
class Exit:
    seconds: float       # spawn to exit
    maxrss_kb: int       # peak memory of the session (VmHWM before LOGOUT, or server + helpers at once)
    status: int


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _private_kb(pid: int) -> int:
    """Memory a process holds that no other process shares (what a forked
    helper adds to its parent's)."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    total += int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return total


def _status_kb(pid: int, field: bytes) -> int:
    """A kB figure (VmRSS, VmHWM) from /proc/<pid>/status; 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(field + b":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class HelperWatch:
    """The session's memory while the server has child processes (imapd's
    cold-FETCH helper): the server's resident memory plus what its children
    hold privately, at the same moment, sampled every 20 ms; the largest sum."""

    def __init__(self, pid: int) -> None:
        import threading

        self.pid = pid
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            kids = _children(self.pid)
            if kids:
                total = sum(map(_private_kb, kids)) + _status_kb(self.pid, b"VmRSS")
                self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kb


class Child:
    """One server process on two pipes, with a client attached."""

    def __init__(self, proc: subprocess.Popen[bytes], started: float) -> None:
        self.proc = proc
        self.started = started
        self._hwm = 0
        self._helpers = HelperWatch(proc.pid)
        assert proc.stdin is not None and proc.stdout is not None
        self.client = StdioClient(proc.stdin.fileno(), proc.stdout.fileno())

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_ticks(self) -> int:
        """utime + stime of the process so far, in clock ticks."""
        with open(f"/proc/{self.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def peak_rss_kb(self) -> int:
        """VmHWM: the process's peak resident memory so far.  (ru_maxrss from wait4 is no use
        here: a child forked from the benchmark inherits the benchmark's own high-water mark.)"""
        return _status_kb(self.pid, b"VmHWM")

    def logout(self, timeout: float = 600.0) -> Exit:
        """Read the peak memory, LOGOUT, then reap: the Exit covers spawn to exit."""
        try:
            self._hwm = max(self.peak_rss_kb(), self._helpers.stop())
            self.client.command(b"LOGOUT", timeout=timeout)
        except Exception:
            self.kill()
            raise
        return self.finish(timeout)

    def finish(self, timeout: float = 600.0) -> Exit:
        """Close our ends of the pipes and reap the process (killing it after `timeout`)."""
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass
        pidfd = os.pidfd_open(self.pid)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(timeout * 1000):
                self.proc.kill()
        finally:
            os.close(pidfd)
        _, status, _ = os.wait4(self.pid, 0)
        ended = time.perf_counter()
        self._helpers.stop()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return Exit(ended - self.started, self._hwm, self.proc.returncode)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.finish(10)


class Server:
    """What the benchmark needs to know about one server."""

    name = ""
    label = ""
    # files the server keeps beside the messages: deleted for "cold" runs ...
    index_globs: tuple[str, ...] = ()
    # ... and, with these, for a first open (no UIDs assigned yet)
    uid_globs: tuple[str, ...] = ("dovecot-uidlist*", "dovecot-uidvalidity*", "imapd-uidvalidity*")

    def __init__(self, home: Path, ident: Identity, pipe_size: int, log: Path) -> None:
        self.home = home
        self.ident = ident
        self.pipe_size = pipe_size
        self.log = log

    def argv(self, maildir: Path, profile: Path | None = None) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "USER": self.ident.name,
                "LOGNAME": self.ident.name, "LANG": "C.UTF-8"}

    def version(self) -> str:
        raise NotImplementedError

    def spawn(self, maildir: Path, profile: Path | None = None) -> Child:
        return spawn(self.argv(maildir, profile), self.env(), self.ident, self.home, self.pipe_size, self.log)

    def open(self, maildir: Path, profile: Path | None = None) -> Child:
        child = self.spawn(maildir, profile)
        try:
            child.client.greeting()
        except Exception:
            child.kill()
            raise
        return child

    def drop_indexes(self, maildir: Path, uids_too: bool = False) -> None:
        globs = self.index_globs + (self.uid_globs if uids_too else ())
        for pattern in globs:
            for p in maildir.glob(pattern):
                p.unlink()


def spawn(argv: list[str], env: dict[str, str], ident: Identity, cwd: Path, pipe_size: int,
          log: Path) -> Child:
    with open(log, "ab") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                env=env, cwd=cwd, bufsize=0, close_fds=True,
                                user=ident.uid if ident.switch else None,
                                group=ident.gid if ident.switch else None,
                                extra_groups=[] if ident.switch else None)
    if pipe_size:
        for f in (proc.stdin, proc.stdout):
            try:
                fcntl.fcntl(f.fileno(), fcntl.F_SETPIPE_SZ, pipe_size)  # type: ignore[union-attr]
            except OSError:
                pass
    return Child(proc, started)


def run_to_exit(argv: list[str], env: dict[str, str], ident: Identity, cwd: Path) -> Exit:
    """Spawn-to-exit of a command with no input (the `python3 -S -c pass` baseline)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=cwd, close_fds=True,
                            user=ident.uid if ident.switch else None,
                            group=ident.gid if ident.switch else None,
                            extra_groups=[] if ident.switch else None)
    _, status, _ = os.wait4(proc.pid, 0)
    ended = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Exit(ended - started, 0, proc.returncode)


class Imapd(Server):
    """imapd from a snapshot of the source tree, started through its launcher.

    The snapshot (package + `bin/imapd` + a `python3` link beside it, byte-compiled)
    keeps a long run independent of edits made meanwhile, and lets the benchmark
    user import it without writing `__pycache__`."""

    name = "imapd"
    label = "imapd"
    index_globs = ("imapd.*",)

    def __init__(self, home: Path, ident: Identity, pipe_size: int, log: Path, snapshot: Path,
                 via_module: bool = False) -> None:
        super().__init__(home, ident, pipe_size, log)
        self.snapshot = snapshot
        self.via_module = via_module

    @property
    def python(self) -> str:
        return str(self.snapshot / "bin" / "python3")

    def argv(self, maildir: Path, profile: Path | None = None) -> list[str]:
        if profile is not None:
            return [self.python, "-m", "cProfile", "-o", str(profile), "-m", "imapd", "--maildir", str(maildir)]
        if self.via_module:
            return [self.python, "-m", "imapd", "--maildir", str(maildir)]
        return [str(self.snapshot / "bin" / "imapd"), "--maildir", str(maildir)]

    def env(self) -> dict[str, str]:
        return super().env() | {"PYTHONPATH": str(self.snapshot / "lib")}

    def version(self) -> str:
        init = (self.snapshot / "lib" / "imapd" / "__init__.py").read_text()
        version = next((line.split("=", 1)[1].strip().strip("\"'") for line in init.splitlines()
                        if line.startswith("__version__")), "?")
        return f"imapd {version} ({(self.snapshot / 'SOURCE').read_text().strip()})"


def make_snapshot(source: Path, dest: Path, python: str) -> Path:
    """Copy imapd/ and bin/imapd from a checkout into `dest`, with a python3 link to
    `python`, compiled by it (.pyc files, and imapd's start-up code cache as
    `imapd --compile` writes it)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "bin").mkdir(parents=True)
    shutil.copytree(source / "imapd", dest / "lib" / "imapd", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(source / "bin" / "imapd", dest / "bin" / "imapd")
    os.symlink(python, dest / "bin" / "python3")
    subprocess.run([python, "-m", "compileall", "-q", str(dest / "lib")], stdout=subprocess.DEVNULL, check=True)
    subprocess.run([str(dest / "bin" / "imapd"), "--compile"], env={"PYTHONPATH": str(dest / "lib")},
                   stdout=subprocess.DEVNULL, check=True)
    describe = "unknown revision"
    try:
        rev = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "imapd", "bin"],
                               capture_output=True, text=True, check=True).stdout.strip()
        describe = f"git {rev}{' + uncommitted changes' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        pass
    (dest / "SOURCE").write_text(describe + "\n")
    for dirpath, _, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, 0o755 if name == "imapd" else 0o644)
    return dest


class Dovecot(Server):
    """Dovecot's own `imap` binary, pre-authenticated as the invoking user."""

    name = "dovecot"
    label = "Dovecot"
    index_globs = ("dovecot.index*", "dovecot.list.index*")

    def __init__(self, home: Path, ident: Identity, pipe_size: int, log: Path, binary: str = DOVECOT_IMAP) -> None:
        super().__init__(home, ident, pipe_size, log)
        self.binary = binary
        self.config = home / "dovecot.conf"
        self.config.write_text(
            "# minimal config for running imap by hand (benchmarks/servers.py)\n"
            "protocols = imap\nlisten =\nssl = no\n"
            "log_path = /dev/null\ninfo_log_path = /dev/null\n"
            f"mail_location = maildir:{home}/Maildir\n")
        self.config.chmod(0o644)

    def argv(self, maildir: Path, profile: Path | None = None) -> list[str]:
        return [self.binary, "-c", str(self.config), "-o", f"mail_location=maildir:{maildir}"]

    def version(self) -> str:
        try:
            out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True, check=True).stdout
            return "Dovecot " + out.strip()
        except (OSError, subprocess.CalledProcessError):
            return "Dovecot (version unknown)"

    @staticmethod
    def available(binary: str = DOVECOT_IMAP) -> bool:
        return os.access(binary, os.X_OK)


# ---------------------------------------------------------------- Maildir copies

def chown_tree(path: Path, ident: Identity) -> None:
    if not ident.switch:
        return
    os.chown(path, ident.uid, ident.gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            os.chown(os.path.join(dirpath, name), ident.uid, ident.gid)
        for name in filenames:
            os.lchown(os.path.join(dirpath, name), ident.uid, ident.gid)


def clone_maildir(src: Path, dst: Path, ident: Identity) -> None:
    """A private copy of a Maildir: messages hard-linked (servers only ever rename or
    unlink them), every other file (indexes, uidlist) copied, as they are written in place."""
    if dst.exists():
        remove_tree(dst)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst / rel if rel != "." else dst
        target.mkdir(mode=0o700, exist_ok=True)
        if ident.switch:
            os.chown(target, ident.uid, ident.gid)
        messages = os.path.basename(dirpath) in ("cur", "new", "tmp")
        for name in filenames:
            s, d = os.path.join(dirpath, name), os.path.join(target, name)
            if messages:
                os.link(s, d)
            else:
                shutil.copy2(s, d)
                if ident.switch:
                    os.chown(d, ident.uid, ident.gid)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def settle() -> None:
    time.sleep(SETTLE_SECONDS)
