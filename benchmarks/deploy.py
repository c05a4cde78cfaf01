"""imapd as inetd runs it: started as root with a TCP socket on stdin/stdout,
the sample config, a login, TLS.  Times each session from spawn to its end.

    python benchmarks/deploy.py [--maildir DIR] [--runs N] [--imapd-src DIR ...]

Needs root (login mode) and `openssl` (a throw-away certificate).  The user
logs in from a passwd-file made here, as the owner of --maildir (default: a
fresh Maildir of 1,000 small messages owned by `nobody`).  With several
--imapd-src trees (e.g. a checkout of an older commit) their runs alternate,
so that machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(REPO, "bin", "imapd")
SESSIONS = [
    ("greeting, LOGOUT", b"z LOGOUT\r\n", False),
    ("LOGIN, SELECT, LOGOUT", b"a LOGIN bench s3cret\r\nb SELECT INBOX\r\nz LOGOUT\r\n", False),
    ("implicit TLS: handshake, greeting, LOGOUT", b"z LOGOUT\r\n", True),
]


def make_maildir(root: str, owner: pwd.struct_passwd, count: int = 1000) -> str:
    maildir = os.path.join(root, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    for i in range(count):
        with open(os.path.join(maildir, "cur", f"{1700000000 + i}.M{i}P1.bench:2,S"), "wb") as f:
            f.write(b"From: a@example.org\nTo: b@example.org\nSubject: message %d\n\nhello\n" % i)
    for dirpath, _dirs, files in os.walk(root):
        os.chown(dirpath, owner.pw_uid, owner.pw_gid)
        for name in files:
            os.chown(os.path.join(dirpath, name), owner.pw_uid, owner.pw_gid)
    return maildir


def setup(work: str, maildir: str) -> tuple[str, ssl.SSLContext]:
    """Certificate, passwd-file and config (the sample with passwd-file login and TLS)."""
    owner = pwd.getpwuid(os.stat(maildir).st_uid)
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    sys.path.insert(0, REPO)
    from imapd.auth.passwdfile import hash_password

    passwd = os.path.join(work, "passwd")
    with open(passwd, "w") as f:
        f.write(f"bench:{hash_password('s3cret', rounds=4)}:{owner.pw_uid}:{owner.pw_gid}:/:{maildir}:\n")
    os.chmod(passwd, 0o600)
    with open(os.path.join(REPO, "etc", "imapd.toml"), encoding="utf-8") as f:
        text = f.read()
    for old, new in (('backend = "pam"', 'backend = "passwd-file"'),
                     ('passwd_file = "/etc/imapd/passwd"', f'passwd_file = "{passwd}"'),
                     ('certificate = ""', f'certificate = "{cert}"'), ('key = ""', f'key = "{key}"')):
        assert old in text, old
        text = text.replace(old, new)
    config = os.path.join(work, "imapd.toml")
    with open(config, "w") as f:
        f.write(text)
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = False
    return config, context


def session(src: str, config: str, context: ssl.SSLContext, script: bytes, tls: bool) -> float:
    """Milliseconds from spawning imapd on an accepted TCP connection to its exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    listener.close()
    env = {"PATH": os.path.dirname(sys.executable) + ":/usr/bin:/bin", "PYTHONPATH": src}
    start = time.perf_counter()
    own = os.path.join(src, "bin", "imapd")  # a tree's own launcher, if it has one (it may differ)
    launcher = own if os.path.exists(own) else LAUNCHER
    proc = subprocess.Popen([launcher, "--config", config] + (["--tls"] if tls else []), stdin=conn, stdout=conn,
                            stderr=subprocess.DEVNULL, env=env, cwd="/")
    conn.close()
    sock = context.wrap_socket(client, server_hostname="localhost") if tls else client
    with sock, sock.makefile("rb") as reader:
        reader.readline()  # the greeting
        sock.sendall(script)
        last = script.split(b"\r\n")[-2].split()[0]
        while True:
            line = reader.readline()
            if not line or line.startswith(last + b" "):
                break
        if not line.startswith(last + b" OK"):
            raise SystemExit(f"{src}: session failed: {line!r}")
    proc.wait()
    return (time.perf_counter() - start) * 1000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--maildir", help="Maildir to SELECT (its owner logs in); default: a fresh small one")
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--imapd-src", action="append", help="imapd tree(s) to measure; default: this checkout")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("deploy.py runs imapd in login mode: run it as root")
    sources = a.imapd_src or [REPO]
    work = tempfile.mkdtemp(prefix="imapd-deploy-")
    os.chmod(work, 0o711)  # the user reaches its Maildir in here; the rest stays root's
    try:
        maildir = a.maildir or make_maildir(os.path.join(work, "mail"), pwd.getpwnam("nobody"))
        config, context = setup(work, maildir)
        print(f"| session | {' | '.join(sources)} |")
        print("|---|" + "---|" * len(sources))
        for label, script, tls in SESSIONS:
            times: dict[str, list[float]] = {src: [] for src in sources}
            for _ in range(a.runs):
                for src in sources:
                    times[src].append(session(src, config, context, script, tls))
            cells = [f"{statistics.median(t):.1f} ms ({min(t):.1f}–{max(t):.1f})" for t in times.values()]
            print(f"| {label} | {' | '.join(cells)} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
