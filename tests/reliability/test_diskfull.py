"""Disk full and file-size limits during APPEND, COPY and MOVE.

The Maildir lives on a small tmpfs (mounted for the test; root only), with
the folder `Dest` on a second, smaller tmpfs so that COPY cannot hard-link and
must copy bytes.  A filler file leaves a chosen amount of free space, and
messages of sizes around it are appended, so that the write fails at every
step: the message file in tmp/, the dotlock, the uidlist record, the
keywords file.  A second test runs imapd under RLIMIT_FSIZE (SIGXFSZ ignored,
so write() fails with EFBIG): the message file, and later the uidlist itself,
hit the limit.

What a client must see: a tagged `NO [OVERQUOTA]` for a full disk (what
Dovecot answers for ENOSPC/EDQUOT; RFC 5530) and `NO [LIMIT]` for a file-size
limit, never `[SERVERBUG]` or a dropped connection; the session goes on
(NOOP, FETCH, EXPUNGE -- which must work on a full disk, it is how a user
frees space) and APPEND works again once there is room.  Nothing partial may
be left: no incomplete or unnumbered message in cur/ or new/, no half record
line in the uidlist, and the temporary file is removed from tmp/.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile

import pytest

from harness import chown_tree, mail_user, require_root
from relutil import RawClient, make_message, read_uidlist, scan_files, spawn_imapd, tagged_parts, write_config


def _mount_tmpfs(path: str, size: str) -> None:
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")


def _umount(path: str) -> None:
    subprocess.run(["umount", path], capture_output=True)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def small_disk():
    require_root("mounting a small tmpfs")
    user = mail_user()
    base = tempfile.mkdtemp(prefix="imapd-diskfull-", dir="/tmp")
    os.chmod(base, 0o755)
    mnt = os.path.join(base, "mnt")
    _mount_tmpfs(mnt, "1m")
    dest = None
    try:
        root = os.path.join(mnt, "Maildir")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, sub))
        dest = os.path.join(root, ".Dest")
        _mount_tmpfs(dest, "256k")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(dest, sub))
        open(os.path.join(dest, "maildirfolder"), "w").close()
        chown_tree(root, user)
        cfg = write_config("[server]\nlog_to_stderr = true\n")
        yield user, root, mnt, os.path.join(base, "imapd.err"), cfg
        if os.environ.get("IMAPD_SHOW_LOG"):
            print(open(os.path.join(base, "imapd.err")).read())
        os.unlink(cfg)
    finally:
        if dest is not None:
            _umount(dest)
        _umount(mnt)
        shutil.rmtree(base, ignore_errors=True)


def fill(mnt: str, leave: int) -> str:
    """Fill the file system with a root-owned file, then give back `leave` bytes."""
    path = os.path.join(mnt, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (65536, 512):  # big pieces, then the last bits
            while True:
                try:
                    if os.write(fd, b"\0" * chunk) < chunk:
                        break
                except OSError as e:
                    assert e.errno == errno.ENOSPC, e
                    break
    finally:
        os.close(fd)
    size = os.path.getsize(path)
    os.truncate(path, max(0, size - leave))
    return path


def unfill(mnt: str) -> None:
    try:
        os.unlink(os.path.join(mnt, "filler"))
    except FileNotFoundError:
        pass


def _open_client(user, root: str, errlog: str, cfg: str, preexec=None) -> RawClient:
    c = RawClient(spawn_imapd(["--config", cfg, "--maildir", root], user, errlog, preexec_extra=preexec))
    c.wait_for(lambda r: r.startswith(b"* PREAUTH"), 30)
    return c


def _status(resp: list[bytes]) -> tuple[str, str | None]:
    """(status, response code's name) of the tagged response."""
    _, st, code, _ = tagged_parts(resp[-1])
    return st, code.split(" ")[0] if code else None


def _check_folder(path: str, ok_tids: set[str], refused: set[str], problems: list[str], where: str) -> None:
    """No partial message, no unnumbered file, nothing refused stored, tmp/ clean."""
    files, dups = scan_files(path)
    got = read_uidlist(path)
    recs = {b for _, b in got[1]} if got else set()
    if got:
        problems.extend(f"{where}: uidlist: {p}" for p in got[2])
        with open(os.path.join(path, "dovecot-uidlist"), "rb") as f:
            if not f.read().endswith(b"\n"):
                problems.append(f"{where}: the uidlist ends in a partial line")
    for base, (sub, tid, complete) in files.items():
        if not complete:
            problems.append(f"{where}: incomplete message {sub}/{base}")
        if base not in recs:
            problems.append(f"{where}: {sub}/{base} ({tid}) has no uidlist record")
        if tid in refused:
            problems.append(f"{where}: {tid} got NO but is stored")
    present = {t for _, t, _ in files.values()}
    for t in ok_tids - present:
        problems.append(f"{where}: {t} got OK but is not there")
    leftovers = os.listdir(os.path.join(path, "tmp"))
    if leftovers:
        problems.append(f"{where}: tmp/ not cleaned: {leftovers}")


def _no_traceback(errlog: str, problems: list[str]) -> None:
    try:
        with open(errlog, "rb") as f:
            err = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return
    if "Traceback" in err:
        problems.append("server traceback:\n" + err[err.index("Traceback") - 300:][:3000])


def test_disk_full_append_copy_move(small_disk):
    user, root, mnt, errlog, cfg = small_disk
    problems: list[str] = []
    ok: set[str] = set()
    refused: set[str] = set()
    c = _open_client(user, root, errlog, cfg)
    n = 0

    def append(size: int, flags: str = "") -> tuple[str, str | None]:
        nonlocal n
        n += 1
        tid = f"Q{n}"
        msg = make_message(tid, size)
        resp = c.command(b"APPEND INBOX %s{%d+}\r\n" % (flags.encode() + b" " if flags else b"", len(msg)) + msg)
        st, code = _status(resp)
        if st == "OK":
            ok.add(tid)
        else:
            refused.add(tid)
            if code != "OVERQUOTA":
                problems.append(f"APPEND of {size} bytes on a full disk: {resp[-1]!r}")
        return st, code

    for _ in range(5):
        assert append(2000) == ("OK", None) or True
    assert _status(c.command("SELECT INBOX")) == ("OK", "READ-WRITE")
    

    # a sweep of free space against message sizes: each write step fails somewhere
    outcomes: dict[str, int] = {}
    for leave in (0, 2048, 4096, 8192, 12288, 20480, 40960):
        for size in (0, 1000, 3000, 5000, 9000, 15000, 30000, 100_000):
            fill(mnt, leave)
            flags = "(\\Seen $NewKeyword%d)" % n if size == 3000 else ""
            st, code = append(size, flags)
            outcomes[f"{st} {code}"] = outcomes.get(f"{st} {code}", 0) + 1
            resp = c.command("NOOP")
            if _status(resp)[0] != "OK":
                problems.append(f"NOOP after a failed APPEND: {resp[-1]!r}")
            unfill(mnt)
            _check_folder(root, ok, refused, problems, f"INBOX (free {leave}, message {size})")
            if len(problems) > 10:
                break
    assert outcomes.get("NO OVERQUOTA", 0) >= 5, outcomes
    assert outcomes.get("OK APPENDUID", 0) >= 5, outcomes

    # reading and expunging work on a full disk (expunging is how space is freed)
    fill(mnt, 0)
    resp = c.command("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (X-TORTURE-ID)])")
    if _status(resp)[0] != "OK":
        problems.append(f"FETCH on a full disk: {resp[-1]!r}")
    resp = c.command("STORE 1:2 +FLAGS (\\Deleted)")
    if _status(resp)[0] != "OK":
        problems.append(f"STORE on a full disk: {resp[-1]!r}")
    deleted = {m.decode() for m in re.findall(rb"X-Torture-Id: (\S+)", b"\n".join(
        c.command("FETCH 1:2 (BODY.PEEK[HEADER.FIELDS (X-TORTURE-ID)])")))}
    resp = c.command("EXPUNGE")
    if _status(resp)[0] != "OK":
        problems.append(f"EXPUNGE on a full disk: {resp[-1]!r}")
    else:
        ok -= deleted
    unfill(mnt)

    # COPY and MOVE into Dest, a separate small file system: bytes are copied
    dest = os.path.join(root, ".Dest")
    for k in range(2):
        append(60_000)
    c.command("NOOP")
    dest_ok: set[str] = set()
    copies = {"OK": 0, "NO": 0}
    for k in range(12):
        before = scan_files(dest)[0]
        resp = c.command("COPY * Dest" if k % 2 == 0 else "UID COPY *:* Dest")
        st, code = _status(resp)
        copies[st] = copies.get(st, 0) + 1
        after = scan_files(dest)[0]
        if st == "OK":
            dest_ok |= {t for _, t, _ in after.values()}
        else:
            if code != "OVERQUOTA":
                problems.append(f"COPY into a full Dest: {resp[-1]!r}")
            if set(after) != set(before):
                problems.append(f"a COPY that got NO left {len(set(after) - set(before))} messages in Dest")
        _check_folder(dest, dest_ok, set(), problems, f"Dest after COPY {k}")
    if not copies.get("NO"):
        problems.append(f"Dest never filled up: {copies}")
    inbox_before = scan_files(root)[0]
    resp = c.command("MOVE 1:* Dest")
    st, code = _status(resp)
    if st == "OK":
        problems.append("MOVE of everything into a full Dest succeeded?")
    elif code != "OVERQUOTA":
        problems.append(f"MOVE into a full Dest: {resp[-1]!r}")
    if set(scan_files(root)[0]) != set(inbox_before):
        problems.append("a MOVE that got NO changed INBOX")
    _check_folder(dest, dest_ok, set(), problems, "Dest after MOVE")

    # room again: everything works, a fresh process agrees
    assert _status(c.command("NOOP"))[0] == "OK"
    st, code = append(1000)
    if st != "OK":
        problems.append(f"APPEND with room again: {st} {code}")
    c.command("LOGOUT")
    c.kill()
    f = _open_client(user, root, errlog, cfg)
    resp = f.command("SELECT INBOX")
    exists = int(re.search(rb"\* (\d+) EXISTS", b"\n".join(resp)).group(1))  # type: ignore[union-attr]
    files = scan_files(root)[0]
    if exists != len(files):
        problems.append(f"a fresh SELECT sees {exists} messages, INBOX has {len(files)} files")
    f.command("LOGOUT")
    f.kill()
    _check_folder(root, ok, refused, problems, "INBOX at the end")
    _no_traceback(errlog, problems)
    print(f"APPEND outcomes {outcomes}, COPY outcomes {copies}")
    assert not problems, "\n".join(problems[:20])


def _limit_fsize(limit: int):
    def run() -> None:
        # ignored (Python ignores it too), so that write() fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return run


def test_file_size_limit(tmp_path):
    """RLIMIT_FSIZE: a message over the limit, then the uidlist itself at the limit."""
    user = mail_user()
    base = tempfile.mkdtemp(prefix="imapd-fsize-", dir="/tmp")
    os.chmod(base, 0o755)
    root = os.path.join(base, "Maildir")
    errlog = os.path.join(base, "imapd.err")
    cfg = write_config("[server]\nlog_to_stderr = true\n")
    problems: list[str] = []
    try:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, sub))
        # enough messages, with long names, that the uidlist is close to the limit
        for i in range(300):
            data = make_message(f"P{i}").replace(b"\r\n", b"\n")
            name = f"{1700000000 + i}.M{i}P1Q{i}.a-rather-long-host-name-for-the-uidlist.example,S={len(data)}:2,S"
            with open(os.path.join(root, "cur", name), "wb") as fh:
                fh.write(data)
        chown_tree(base, user)
        c = _open_client(user, root, errlog, cfg)  # no limit: numbers the mailbox
        assert _status(c.command("SELECT INBOX"))[0] == "OK"
        c.command("LOGOUT")
        c.kill()
        # room for a few more records in the uidlist, none for a large message
        limit = os.path.getsize(os.path.join(root, "dovecot-uidlist")) + 700
        c = _open_client(user, root, errlog, cfg, preexec=_limit_fsize(limit))
        assert _status(c.command("SELECT INBOX"))[0] == "OK"
        ok: set[str] = set()
        refused: set[str] = set()
        codes: dict[str, int] = {}
        for i in range(60):
            tid = f"R{i}"
            msg = make_message(tid, 100_000 if i == 0 else 200)
            resp = c.command(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
            st, code = _status(resp)
            codes[f"{st} {code}"] = codes.get(f"{st} {code}", 0) + 1
            if st == "OK":
                ok.add(tid)
            else:
                refused.add(tid)
                if code != "LIMIT":
                    problems.append(f"APPEND under RLIMIT_FSIZE: {resp[-1]!r}")
            if _status(c.command("NOOP"))[0] != "OK":
                problems.append("NOOP failed after an APPEND under RLIMIT_FSIZE")
            _check_folder(root, ok, refused, problems, f"after APPEND {i}")
            if len(problems) > 10:
                break
        c.command("LOGOUT")
        c.kill()
        assert codes.get("NO LIMIT", 0) >= 2 and codes.get("OK APPENDUID", 0) >= 2, codes
        # without the limit the mailbox goes on
        f = _open_client(user, root, errlog, cfg)
        assert _status(f.command("SELECT INBOX"))[0] == "OK"
        msg = make_message("after")
        st, _ = _status(f.command(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg))
        if st != "OK":
            problems.append("APPEND without the limit failed")
        f.command("LOGOUT")
        f.kill()
        _check_folder(root, ok | {"after"}, refused, problems, "at the end")
        _no_traceback(errlog, problems)
        print(f"APPEND outcomes under RLIMIT_FSIZE: {codes}")
    finally:
        os.unlink(cfg)
        shutil.rmtree(base, ignore_errors=True)
    assert not problems, "\n".join(problems[:20])
