"""Programs that share the Maildir with imapd during the torture test.

    python actors.py mda  ROOT SEED   deliver like an MDA: write tmp/, rename into new/
    python actors.py mutt ROOT SEED   act like mutt: rename files in cur/ to change
                                      flags, and now and then take a file from new/
                                      into cur/ itself

Both run (as the mail user) until SIGTERM, then finish the operation in hand
and exit.  The MDA prints `D <id> <folder dir>` on stdout after each delivery
is complete (renamed into new/); mutt prints a summary line at the end.
Neither ever sets or clears the T (\\Deleted) flag, so an expunge is always
the work of an IMAP session that asked for it.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
import time

stop = False


def _on_term(signum, frame):  # type: ignore[no-untyped-def]
    global stop
    stop = True


def message(tid: str, lines: int) -> bytes:
    body = b"".join(b"delivered line %d of %s\n" % (i, tid.encode()) for i in range(lines))
    return (
        f"Return-Path: <mda@example.org>\n"
        f"From: mda@example.org\n"
        f"To: victim@example.org\n"
        f"Subject: delivery {tid}\n"
        f"Message-ID: <{tid}@mda.example.org>\n"
        f"X-Torture-Id: {tid}\n"
        f"\n"
    ).encode() + body + f"X-End: {tid}\n".encode()


def mda(root: str, seed: int) -> None:
    rng = random.Random(seed)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    n = 0
    while not stop:
        n += 1
        tid = f"D{seed}-{n}"
        folder = "" if rng.random() < 0.8 else ".Work"
        data = message(tid, rng.choice((1, 3, 20, 200)))
        t = time.time()
        name = f"{int(t)}.M{int((t % 1) * 1e6)}P{os.getpid()}Q{n}.{host}"
        if rng.random() < 0.5:
            name += f",S={len(data)}"
        base = os.path.join(root, folder)
        tmp = os.path.join(base, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(base, "new", name))
        sys.stdout.write(f"D {tid} {folder or '-'}\n")
        sys.stdout.flush()
        time.sleep(rng.uniform(0.01, 0.06))


def mutt(root: str, seed: int) -> None:
    rng = random.Random(seed)
    renames = takes = lost_races = 0
    while not stop:
        folder = os.path.join(root, "" if rng.random() < 0.75 else ".Work")
        if rng.random() < 0.12:
            # take a new message into cur/ ourselves, marking it seen
            names = os.listdir(os.path.join(folder, "new"))
            if names:
                nm = rng.choice(names)
                base = nm.partition(":")[0]
                try:
                    os.rename(os.path.join(folder, "new", nm), os.path.join(folder, "cur", base + ":2,S"))
                    takes += 1
                except FileNotFoundError:
                    lost_races += 1
        else:
            names = os.listdir(os.path.join(folder, "cur"))
            if names:
                nm = rng.choice(names)
                base, sep, info = nm.partition(":")
                letters = set(info[2:]) if info.startswith("2,") else set()
                flag = rng.choice("FRS")
                letters ^= {flag}
                new = base + ":2," + "".join(sorted(letters))
                try:
                    os.rename(os.path.join(folder, "cur", nm), os.path.join(folder, "cur", new))
                    renames += 1
                except FileNotFoundError:
                    lost_races += 1
        time.sleep(rng.uniform(0.003, 0.02))
    sys.stdout.write(f"M renames={renames} takes={takes} lost_races={lost_races}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_term)
    role, root, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"mda": mda, "mutt": mutt}[role](root, seed)
