"""Benchmark of the Maildir store on a generated mailbox (not a pytest test).

    python tests/store/bench_maildir.py [N]          # default 100000

Generates N small messages in cur/ with a Dovecot-style dovecot-uidlist, then
times the operations of the speed targets, each in a fresh child process so
that the peak memory (ru_maxrss) is per "session".
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))


def generate(root: str, n: int) -> None:
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    cur = os.path.join(root, "cur")
    body = b"From: a@example.com\nTo: b@example.com\nSubject: test %d\n\nHello\nworld\n"
    lines = ["3 V1700000000 N%d G%s\n" % (n + 1, "0" * 32)]
    t0 = 1700000000
    for i in range(1, n + 1):
        data = body % i
        w = len(data) + data.count(b"\n")
        base = "%d.M%dP%d.host,S=%d,W=%d" % (t0 + i // 10, i, 1000 + i % 7, len(data), w)
        flags = "S" if i % 3 else ""
        with open(os.path.join(cur, base + ":2," + flags), "wb") as fh:
            fh.write(data)
        lines.append("%d :%s\n" % (i, base))
    with open(os.path.join(root, "dovecot-uidlist"), "w") as fh:
        fh.writelines(lines)


def child(op: str, root: str) -> dict:
    from imapd.store import open_store

    res: dict = {}
    store = open_store(root, use_inotify=False)
    t = time.perf_counter()
    if op == "append":
        for i in range(1000):
            store.append("INBOX", io.BytesIO(b"Subject: x\r\n\r\nbody %d\r\n" % i), ["\\Seen"])
        res["append1000"] = time.perf_counter() - t
        store.close()
    else:
        mb = store.open("INBOX")
        res["select"] = time.perf_counter() - t
        st = mb.status(["MESSAGES", "UNSEEN", "RECENT", "UIDNEXT", "UIDVALIDITY"])
        res["select+status"] = time.perf_counter() - t
        if op == "fetch":
            t = time.perf_counter()
            out = []
            for u in mb.uids():
                out.append((u, mb.flags(u), mb.size(u), mb.internal_date(u)))
            res["fetch_all"] = time.perf_counter() - t
        elif op == "store":
            t = time.perf_counter()
            mb.store_flags(list(mb.uids()), "add", ["\\Seen"])
            res["store_seen_all"] = time.perf_counter() - t
            mb.sync()
        elif op == "expunge":
            uids = list(mb.uids())[::10]
            mb.store_flags(uids, "add", ["\\Deleted"])
            t = time.perf_counter()
            mb.expunge()
            mb.sync()
            res["expunge_10pct"] = time.perf_counter() - t
        t = time.perf_counter()
        mb.close()
        res["close"] = time.perf_counter() - t
        res["messages"] = st.messages
    res["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def run(op: str, root: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", op, root], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.stdout.write(json.dumps(child(sys.argv[2], sys.argv[3])))
        return
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    base = tempfile.mkdtemp(prefix="imapd-bench-")
    root = os.path.join(base, "Maildir")
    try:
        t = time.perf_counter()
        generate(root, n)
        print("generated %d messages in %.1f s" % (n, time.perf_counter() - t))
        os.sync()
        time.sleep(2)  # let directory mtimes age, as on a real server
        print("cold select (no index):", run("select", root))
        print("warm select:", run("select", root))
        print("fetch all (first, dates not cached):", run("fetch", root))
        print("fetch all (warm):", run("fetch", root))
        print("store +flags \\Seen all:", run("store", root))
        print("select after store:", run("select", root))
        print("expunge 10%:", run("expunge", root))
        print("append 1000:", run("append", root))
        print("select after append:", run("select", root))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
