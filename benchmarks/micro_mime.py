"""Micro-benchmark: the cold path of ``FETCH 1:* (ENVELOPE BODYSTRUCTURE)``.

Per message the server parses the structure, builds ENVELOPE and
BODYSTRUCTURE, encodes both for the wire and caches the part tree; this
times exactly that, on real-looking mail from the benchmark corpus, with the
messages already in memory (so only CPU is measured, no disk).

Run::

    python benchmarks/micro_mime.py [-n 5000] [-r 5] [--cold] [--phases]
    python benchmarks/micro_mime.py --profile                 # cProfile one round
    python benchmarks/micro_mime.py --dump /tmp/mime.out      # outputs, to compare
    python benchmarks/micro_mime.py --root /tmp/old-checkout  # another version

The best of ``-r`` rounds is the figure to compare: other work on the
machine only ever adds time.  On a busy machine, compare two versions by
running them alternately several times (``--root`` picks the checkout whose
``imapd`` is measured), not once each.  The module caches of `imapd.mime`
and of the encoder are cleared before every round, so each round starts as
cold as a fresh server.

By default each message is in the CPU cache when its work starts, as it is
in the server right after read(2) copied it, and only that work is timed
(wall clock, per message).  ``--cold`` times whole rounds (CPU time) with
the messages streamed from RAM instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

CORPUS = Path(__file__).parent / "out" / "corpus-100000" / "Maildir" / "cur"
TESTS_CORPUS = Path(__file__).resolve().parents[1] / "tests" / "mime" / "corpus"


def _not_imported(*args: Any) -> Any:
    raise RuntimeError("_import() first")


# set by _import(): the functions measured, from the chosen checkout
parse_message: Callable[[bytes], Any] = _not_imported
envelope: Callable[[bytes, Any], Any] = _not_imported
body_structure: Callable[..., Any] = _not_imported
encode: Callable[[Any], bytes] = _not_imported
to_wire: Callable[[bytes], bytes] = _not_imported
_caches: list[dict[Any, Any]] = []


def _import(root: Path) -> None:
    """Import imapd from the checkout at *root*."""
    global parse_message, envelope, body_structure, encode, to_wire
    sys.path.insert(0, str(root))
    import imapd.mime as mime
    from imapd.mime import address, headers, structure
    from imapd.protocol import responses
    from imapd.store.maildir.message import to_wire as _to_wire

    if not Path(mime.__file__).resolve().is_relative_to(root.resolve()):
        raise SystemExit(f"imapd imported from {mime.__file__}, not from {root}")
    parse_message, envelope, body_structure = mime.parse_message, mime.envelope, mime.body_structure
    encode, to_wire = responses.encode, _to_wire
    # every module-level cache of the parsers and the encoder (*_CACHE dicts)
    _caches[:] = [
        obj for mod in (structure, headers, address, responses)
        for name, obj in vars(mod).items() if name.endswith("_CACHE") and isinstance(obj, dict)
    ]


def load(n: int, corpus: Path = CORPUS) -> list[bytes]:
    """The first *n* messages (sorted file names) in wire form."""
    names = sorted(os.listdir(corpus))[:n]
    return [to_wire((corpus / name).read_bytes()) for name in names]


def _clear_caches() -> None:
    """Empty the parsers' and the encoder's caches: every round starts cold."""
    for cache in _caches:
        cache.clear()


def one(data: bytes) -> tuple[bytes, bytes, object]:
    """What a cold FETCH (ENVELOPE BODYSTRUCTURE) computes for one message."""
    root = parse_message(data)
    cached = root.to_cache()
    env = encode(envelope(data, root))
    bs = encode(body_structure(data, root, True))
    return env, bs, cached


def run(msgs: list[bytes]) -> float:
    """CPU seconds for one pass over *msgs*, each message read from RAM.

    With thousands of messages in memory every pass streams them from RAM,
    so the first scan of each message also pays for cache misses.
    """
    _clear_caches()
    t0 = time.process_time()
    for data in msgs:
        root = parse_message(data)
        root.to_cache()
        encode(envelope(data, root))
        encode(body_structure(data, root, True))
    return time.process_time() - t0


def run_hot(msgs: list[bytes]) -> float:
    """Seconds for one pass over *msgs*, each message already in the CPU
    cache, as it is in the server right after read(2) copied it.

    Each message is brought into the cache by an untimed pass over it, and
    only the work on it is timed (perf_counter_ns costs well under 1%).
    """
    _clear_caches()
    clock = time.perf_counter_ns
    total = 0
    for data in msgs:
        data.count(b"\x00")  # untimed: touch every byte
        t0 = clock()
        root = parse_message(data)
        root.to_cache()
        encode(envelope(data, root))
        encode(body_structure(data, root, True))
        total += clock() - t0
    return total / 1e9


PHASES = ("parse", "to_cache", "envelope", "encode env", "bodystructure", "encode bs")


def run_phases(msgs: list[bytes]) -> list[float]:
    """Like `run_hot`, but seconds per step, in the order of `PHASES`."""
    _clear_caches()
    clock = time.perf_counter_ns
    acc = [0] * len(PHASES)
    for data in msgs:
        data.count(b"\x00")
        t0 = clock()
        root = parse_message(data)
        t1 = clock()
        root.to_cache()
        t2 = clock()
        env = envelope(data, root)
        t3 = clock()
        encode(env)
        t4 = clock()
        bs = body_structure(data, root, True)
        t5 = clock()
        encode(bs)
        t6 = clock()
        for i, dt in enumerate((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
            acc[i] += dt
    return [x / 1e9 for x in acc]


def dump(msgs: list[bytes], path: str) -> None:
    """Write every message's encoded ENVELOPE, BODYSTRUCTURE and to_cache()
    (repr) to *path*, one block per message, for byte-for-byte comparison."""
    with open(path, "wb") as f:
        for i, data in enumerate(msgs):
            env, bs, cached = one(data)
            f.write(b"#%d\n" % i + env + b"\n" + bs + b"\n" + repr(cached).encode() + b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=5000, help="messages to load")
    ap.add_argument("-r", "--rounds", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="messages not in the CPU cache (see run)")
    ap.add_argument("--phases", action="store_true", help="time each step separately")
    ap.add_argument("--profile", action="store_true", help="cProfile one round")
    ap.add_argument("--dump", metavar="FILE", help="write outputs (corpus + tests/mime) and exit")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                    help="checkout whose imapd to measure (default: this one)")
    args = ap.parse_args()
    _import(args.root)
    msgs = load(args.n)
    if args.dump:
        raw = [p.read_bytes() for p in sorted(TESTS_CORPUS.glob("*.eml"))]
        tricky = [to_wire(r) for r in raw] + raw  # wire form, and as stored (bare LF)
        # twice: the second pass runs with warm module caches
        dump(msgs + tricky + tricky + msgs[:200], args.dump)
        return
    size = sum(map(len, msgs))
    print(f"{args.root}: {len(msgs)} messages, {size / len(msgs) / 1024:.1f} KB average, "
          f"{'cold (from RAM)' if args.cold else 'hot (in CPU cache)'}")
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        run(msgs)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
        return
    if args.phases:
        rounds = [run_phases(msgs) for _ in range(args.rounds)]
        best = min(rounds, key=sum)
        print("  ".join(f"{name} {t / len(msgs) * 1e6:.1f}" for name, t in zip(PHASES, best)),
              f" total {sum(best) / len(msgs) * 1e6:.1f} us/msg")
        return
    one_round = run if args.cold else run_hot
    times = [one_round(msgs) for _ in range(args.rounds)]
    per = [t / len(msgs) * 1e6 for t in times]
    print("rounds (us/msg):", " ".join(f"{x:.1f}" for x in per))
    print(f"best {min(per):.1f} us/msg, median {sorted(per)[len(per) // 2]:.1f} us/msg")


if __name__ == "__main__":
    main()
