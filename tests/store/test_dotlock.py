import multiprocessing as mp
import os
import time

import pytest

from imapd.store.maildir.dotlock import DotLock, LockTimeout
from imapd.store.maildir.layout import lock_hostname


def _dead_pid() -> int:
    p = mp.get_context("fork").Process(target=lambda: None)
    p.start()
    p.join()
    return p.pid


def test_lock_content_and_release(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    lk = DotLock(fd, "dovecot-uidlist")
    with lk:
        with open(tmp_path / "dovecot-uidlist.lock") as fh:
            assert fh.read() == "%d:%s" % (os.getpid(), lock_hostname())
        with lk:  # re-entrant
            pass
        assert (tmp_path / "dovecot-uidlist.lock").exists()
    assert not (tmp_path / "dovecot-uidlist.lock").exists()
    os.close(fd)


def test_stale_by_dead_pid(tmp_path):
    (tmp_path / "dovecot-uidlist.lock").write_text("%d:%s" % (_dead_pid(), lock_hostname()))
    fd = os.open(tmp_path, os.O_RDONLY)
    lk = DotLock(fd, "dovecot-uidlist", timeout=2)
    t = time.monotonic()
    lk.acquire()
    assert time.monotonic() - t < 1
    lk.release()
    os.close(fd)


def test_stale_by_age(tmp_path):
    lock = tmp_path / "dovecot-uidlist.lock"
    lock.write_text("1:some-other-host")
    (tmp_path / "dovecot-uidlist").write_text("3 V1 N1\n")
    old = time.time() - 500
    os.utime(lock, (old, old))
    os.utime(tmp_path / "dovecot-uidlist", (old, old))
    fd = os.open(tmp_path, os.O_RDONLY)
    lk = DotLock(fd, "dovecot-uidlist", timeout=2)
    lk.acquire()
    lk.release()
    os.close(fd)


def test_live_foreign_lock_times_out(tmp_path):
    (tmp_path / "dovecot-uidlist.lock").write_text("1:some-other-host")
    fd = os.open(tmp_path, os.O_RDONLY)
    lk = DotLock(fd, "dovecot-uidlist", timeout=0.3)
    with pytest.raises(LockTimeout) as ei:
        lk.acquire()
    assert ei.value.code == "INUSE"
    assert (tmp_path / "dovecot-uidlist.lock").exists()  # not ours to remove
    os.close(fd)


def _contend(path: str, n: int, q) -> None:
    fd = os.open(path, os.O_RDONLY)
    lk = DotLock(fd, "counter", timeout=20)
    for _ in range(n):
        with lk:
            cnt = os.path.join(path, "counter")
            v = int(open(cnt).read())
            time.sleep(0.0005)
            with open(cnt + ".new", "w") as fh:
                fh.write(str(v + 1))
            os.rename(cnt + ".new", cnt)
    q.put(True)


def test_contention_between_processes(tmp_path):
    (tmp_path / "counter").write_text("0")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), 40, q)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert (tmp_path / "counter").read_text() == "120"
