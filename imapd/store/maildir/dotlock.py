"""Dovecot-compatible dotlocks (`<file>.lock`), relative to a directory fd.

The lock file holds `<pid>:<hostname>`, and it never exists without it: the
content is written to a unique temporary file that is then link()ed to the
lock name (Dovecot's classic method; link() fails with EEXIST when the lock is
taken).  Creating the lock with O_EXCL and writing afterwards would leave an
empty lock behind a process killed in between, and an empty lock names no pid
to prove it stale: everyone would wait for the 120-second timeout.  Where hard
links are not supported, O_EXCL is the fallback.  A waiter treats a lock as stale when it names this
host and a pid that no longer exists, or when neither the lock nor the file it
protects has changed for `stale_timeout` seconds; it then removes it (only if
it is still the same inode it judged) and retries.  Waiting is bounded: past
`timeout` a StoreError [INUSE] says which lock could not be taken.
"""

from __future__ import annotations

import errno
import posix
import time

from imapd.store.base import StoreError
from imapd.store.maildir.layout import lock_hostname

_MY_HOST = lock_hostname()


class LockTimeout(StoreError):
    code = "INUSE"


def _pid_alive(pid: int) -> bool:
    try:
        posix.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


class DotLock:
    """A re-entrant dotlock on `<name>.lock` inside the directory `dir_fd`."""

    def __init__(
        self,
        dir_fd: int,
        name: str,
        stale_timeout: float = 120.0,
        timeout: float = 30.0,
    ) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self.lock_name = name + ".lock"
        self.stale_timeout = stale_timeout
        self.timeout = timeout
        self._count = 0
        self._ino: int | None = None
        self._dev: int | None = None

    @property
    def held(self) -> bool:
        return self._count > 0

    def _try_create(self) -> bool:
        content = ("%d:%s" % (posix.getpid(), _MY_HOST)).encode()
        tmp = ".%s.%d.%s.tmp" % (self.lock_name, posix.getpid(), posix.urandom(4).hex())
        fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600,
                     dir_fd=self.dir_fd)
        try:
            try:
                n = posix.write(fd, content)
                if n != len(content):
                    raise OSError(errno.ENOSPC, "short write of a lock file")
            finally:
                posix.close(fd)
            try:
                posix.link(tmp, self.lock_name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd, follow_symlinks=False)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV):
                    raise
                return self._try_create_excl()
            st = posix.stat(self.lock_name, dir_fd=self.dir_fd, follow_symlinks=False)
            self._ino, self._dev = st.st_ino, st.st_dev
            return True
        finally:
            try:
                posix.unlink(tmp, dir_fd=self.dir_fd)
            except OSError:
                pass

    def _try_create_excl(self) -> bool:
        """No hard links on this file system: O_EXCL, then the content."""
        try:
            fd = posix.open(
                self.lock_name,
                posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL | posix.O_NOFOLLOW | posix.O_CLOEXEC,
                0o600,
                dir_fd=self.dir_fd,
            )
        except FileExistsError:
            return False
        try:
            posix.write(fd, ("%d:%s" % (posix.getpid(), _MY_HOST)).encode())
            st = posix.fstat(fd)
        except OSError:
            posix.close(fd)
            try:
                posix.unlink(self.lock_name, dir_fd=self.dir_fd)
            except OSError:
                pass
            raise
        posix.close(fd)
        self._ino, self._dev = st.st_ino, st.st_dev
        return True

    def _is_stale(self, now: float) -> tuple[bool, posix.stat_result | None]:
        try:
            st = posix.stat(self.lock_name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True, None
        content = b""
        try:
            fd = posix.open(self.lock_name, posix.O_RDONLY | posix.O_NOFOLLOW | posix.O_CLOEXEC, dir_fd=self.dir_fd)
            try:
                content = posix.read(fd, 512)
            finally:
                posix.close(fd)
        except OSError:
            pass
        pid_s, sep, host = content.decode("utf-8", "replace").strip().partition(":")
        if sep and host == _MY_HOST and pid_s.isdigit():
            pid = int(pid_s)
            if pid != posix.getpid() and not _pid_alive(pid):
                return True, st
        if now - st.st_mtime > self.stale_timeout:
            try:
                fst = posix.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
                if now - fst.st_mtime <= self.stale_timeout:
                    return False, st  # the protected file is still being changed
            except OSError:
                pass
            return True, st
        return False, st

    def acquire(self) -> None:
        """Take the lock (re-entrant); StoreError [INUSE] after `timeout`."""
        if self._count:
            self._count += 1
            return
        deadline = time.monotonic() + self.timeout
        delay = 0.0005
        while True:
            if self._try_create():
                self._count = 1
                return
            stale, st = self._is_stale(time.time())
            if stale:
                if st is not None:
                    try:
                        cur = posix.stat(self.lock_name, dir_fd=self.dir_fd, follow_symlinks=False)
                        if (cur.st_ino, cur.st_dev) == (st.st_ino, st.st_dev):
                            posix.unlink(self.lock_name, dir_fd=self.dir_fd)
                    except FileNotFoundError:
                        pass
                    # like Dovecot: pause a moment so that two waiters that both
                    # judged the lock stale don't remove each other's new lock
                    # (posix.urandom, not `random`: that module costs every session its import)
                    time.sleep(0.0001 + 0.0019 * int.from_bytes(posix.urandom(2), "little") / 0xFFFF)
                continue
            if time.monotonic() >= deadline:
                raise LockTimeout("Timeout while waiting for lock %s" % self.lock_name)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it (one attempt, no waiting): for
        work that can as well be done the next time."""
        if self._count:
            self._count += 1
            return True
        if self._try_create():
            self._count = 1
            return True
        return False

    def release(self) -> None:
        if self._count <= 0:
            return
        self._count -= 1
        if self._count:
            return
        try:
            st = posix.stat(self.lock_name, dir_fd=self.dir_fd, follow_symlinks=False)
            if (st.st_ino, st.st_dev) == (self._ino, self._dev):
                posix.unlink(self.lock_name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EROFS):
                raise
        self._ino = self._dev = None

    def touch(self) -> None:
        """Refresh the lock's mtime during a long operation."""
        if self._count:
            try:
                posix.utime(self.lock_name, dir_fd=self.dir_fd, follow_symlinks=False)
            except OSError:
                pass

    def __enter__(self) -> "DotLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
