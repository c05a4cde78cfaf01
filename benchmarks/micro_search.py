"""Micro benchmark: SEARCH BODY's per-message test, old way against new.

Old: ``needle in body_text(data, root).casefold()`` (what
imapd.commands.search did); new: ``body_contains(data, root, needle)``.

Loads the first N messages of the benchmark corpus (sorted file names) in
wire form and parses them, untimed; then times both per needle, best of
--reps passes (CPU time, so other work on the machine distorts less), and
checks that both give the same answer for every message (mismatches are
printed and make the exit status 1).

    python benchmarks/micro_search.py [-n 5000] [--reps 5] [--maildir DIR] [needle ...]

With --verify-all no timing is done: every message of the Maildir is read
one at a time and both answers compared, for each needle.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imapd.mime import body_contains, body_text, parse_message  # noqa: E402
from imapd.mime.part import Part  # noqa: E402
from imapd.store.maildir.message import to_wire  # noqa: E402

DEFAULT_MAILDIR = Path(__file__).resolve().parent / "out" / "corpus-100000" / "Maildir"
NEEDLES = ["kumquat", "zzzznotthere", "the", "grüße"]

Messages = list[tuple[str, bytes, Part]]


def load(maildir: Path, n: int) -> Messages:
    """The first *n* messages of ``cur/`` (read only), in wire form, parsed."""
    cur = maildir / "cur"
    names = sorted(os.listdir(cur))[:n]
    out: Messages = []
    for name in names:
        with open(cur / name, "rb") as f:
            data = to_wire(f.read())
        out.append((name, data, parse_message(data)))
    return out


def best_of(reps: int, fn: object, msgs: Messages, needle: str) -> tuple[float, list[bool]]:
    """Minimum CPU seconds over *reps* passes of fn over all messages."""
    best = float("inf")
    got: list[bool] = []
    for _ in range(reps):
        t = time.process_time()
        got = [fn(data, root, needle) for _name, data, root in msgs]  # type: ignore[operator]
        best = min(best, time.process_time() - t)
    return best, got


def old(data: bytes, root: Part, needle: str) -> bool:
    return needle in body_text(data, root).casefold()


def verify_all(maildir: Path, needles: list[str]) -> int:
    """Compare old and new on every message, streaming; return mismatches."""
    cur = maildir / "cur"
    names = sorted(os.listdir(cur))
    found = dict.fromkeys(needles, 0)
    bad = 0
    t = time.perf_counter()
    for i, name in enumerate(names):
        with open(cur / name, "rb") as f:
            data = to_wire(f.read())
        root = parse_message(data)
        text = body_text(data, root).casefold()
        for needle in needles:
            want = needle in text
            if body_contains(data, root, needle) != want:
                bad += 1
                print(f"MISMATCH {needle!r} {name}: body_text says {want}")
            found[needle] += want
        if i % 10000 == 9999:
            print(f"  {i + 1} messages, {time.perf_counter() - t:.0f} s", file=sys.stderr)
    print(f"{len(names)} messages verified; matches: "
          + ", ".join(f"{k!r} {v}" for k, v in found.items()))
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5000, help="messages (default 5000)")
    ap.add_argument("--reps", type=int, default=5, help="timed passes (default 5)")
    ap.add_argument("--maildir", type=Path, default=DEFAULT_MAILDIR)
    ap.add_argument("--verify-all", action="store_true",
                    help="no timing: compare old and new on every message")
    ap.add_argument("needles", nargs="*", default=NEEDLES)
    args = ap.parse_args()
    if args.verify_all:
        bad = verify_all(args.maildir, [n.casefold() for n in args.needles])
        print("all results identical" if not bad else f"{bad} MISMATCHES")
        return 1 if bad else 0

    t = time.perf_counter()
    msgs = load(args.maildir, args.n)
    size = sum(len(d) for _n, d, _r in msgs)
    print(f"{len(msgs)} messages, {size / len(msgs) / 1024:.1f} KiB average, "
          f"loaded and parsed in {time.perf_counter() - t:.1f} s")
    body_contains(b"x\r\n\r\ny", parse_message(b"x\r\n\r\ny"), "warm-up")  # one-time tables

    bad = 0
    print(f"{'needle':16} {'matches':>8} {'old us/msg':>11} {'new us/msg':>11} {'speed-up':>9}")
    for raw in args.needles:
        needle = raw.casefold()
        t_old, want = best_of(args.reps, old, msgs, needle)
        t_new, got = best_of(args.reps, body_contains, msgs, needle)
        for (name, _d, _r), w, g in zip(msgs, want, got):
            if w != g:
                bad += 1
                print(f"MISMATCH {needle!r} {name}: body_text says {w}, body_contains {g}")
        n = len(msgs)
        print(f"{needle!r:16} {sum(want):8} {t_old / n * 1e6:11.1f} {t_new / n * 1e6:11.1f} "
              f"{t_old / t_new if t_new else float('inf'):8.1f}x")
    print("all results identical" if not bad else f"{bad} MISMATCHES")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
