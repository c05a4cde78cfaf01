"""The scenarios: what each session does and what it measures.

Every measured session is a fresh server process.  Scenarios run in phases:

* `start`  — start-up to greeting (and the `python3 -S -c pass` baseline);
* `cold`   — the servers' own files deleted first (indexes; for a first open also the UID list);
* `warm`   — after a priming session has built each server's index and cache;
* `write`  — on a fresh private copy of the primed Maildir per repetition (STORE, EXPUNGE,
             APPEND, IDLE deliveries change the mailbox);
* `idle`   — CPU used by idling sessions, both servers at once.

Within a scenario the servers alternate (imapd first on even repetitions, Dovecot
first on odd ones), so that noise on the machine falls on both alike.
"""

from __future__ import annotations

import os
import re
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import Reply
from .corpus import HOST, RARE_SENDER, RARE_WORD, Manifest
from .servers import (
    Child,
    Identity,
    Imapd,
    Server,
    clone_maildir,
    remove_tree,
    run_to_exit,
    settle,
)

HEADER_FIELDS = b"BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]"
_EXISTS = re.compile(rb"\* (\d+) EXISTS")


class ScenarioError(Exception):
    pass


@dataclass
class Target:
    """A goal from the issue.  kind: "ratio" (imapd/Dovecot at most `value`), "baseline"
    (imapd at most `value` × the python3 -S baseline), "throughput" (imapd at least `value`
    × Dovecot), "faster" (Dovecot/imapd at least `value`), "max" (imapd below `value`)."""

    kind: str
    value: float
    text: str = ""

    def describe(self, unit: str) -> str:
        if self.text:
            return self.text
        return {"ratio": f"≤ {self.value:g}× Dovecot", "baseline": f"≤ {self.value:g}× python3 -S",
                "throughput": f"≥ {self.value:g}× Dovecot", "faster": f"≥ {self.value:g}× faster",
                "max": f"< {self.value:g} {unit}"}[self.kind]


@dataclass
class Metric:
    key: str
    label: str
    unit: str = "s"                  # s, ms, MB/s, ticks, MB
    target: Target | None = None
    higher_is_better: bool = False


@dataclass
class Sample:
    metrics: dict[str, float] = field(default_factory=dict)
    received: int = 0                # bytes from the server during the measured command(s)
    maxrss_kb: int = 0               # peak resident memory of the session's process
    notes: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class Options:
    reps: int = 3
    slow_reps: int = 3               # for the scenarios that read every message body
    write_reps: int = 3
    startup_reps: int = 10
    idle_deliveries: int = 20
    idle_cpu_seconds: float = 10.0
    append_count: int = 1000
    timeout: float = 3600.0


@dataclass
class Context:
    servers: list[Server]
    ident: Identity
    manifest: Manifest
    options: Options
    primed: dict[str, Path]          # server name -> its primed Maildir
    work: dict[str, Path]            # server name -> where write scenarios clone it
    baseline_argv: list[str]
    append_messages: list[bytes] = field(default_factory=list)   # wire form (CRLF)
    deliveries: list[bytes] = field(default_factory=list)        # disk form (LF)
    profile_dir: Path | None = None  # set: imapd sessions run under cProfile
    current: str = ""
    profiles: list[Path] = field(default_factory=list)

    def open(self, server: Server, maildir: Path, profiled: bool = True) -> Child:
        profile = None
        if profiled and self.profile_dir is not None and isinstance(server, Imapd):
            profile = server.home / f"profile-{self.current}-{len(self.profiles)}.prof"
            self.profiles.append(profile)
        return server.open(maildir, profile)


@contextmanager
def session(ctx: Context, server: Server, maildir: Path, profiled: bool = True) -> Iterator[Child]:
    child = ctx.open(server, maildir, profiled)
    try:
        yield child
    except BaseException:
        child.kill()
        raise


def _check(reply: Reply, what: str) -> Reply:
    if not reply.ok:
        raise ScenarioError(f"{what}: {reply.line.decode('utf-8', 'replace')[:300]}")
    return reply


def _select(child: Child, expect: int | None = None) -> tuple[Reply, int]:
    reply = _check(child.client.command(b"SELECT INBOX", keep=b"* ", timeout=3600), "SELECT")
    exists = -1
    for head in reply.heads:
        m = _EXISTS.match(head)
        if m:
            exists = int(m.group(1))
    if expect is not None and exists != expect:
        raise ScenarioError(f"SELECT: {exists} EXISTS, expected {expect}")
    return reply, exists


def _completes(tag: bytes) -> Callable[[bytes], bool]:
    prefix = tag + b" "
    return lambda head: head.startswith(prefix)


def _count_fetch(reply: Reply) -> int:
    return sum(1 for h in reply.heads if b" FETCH " in h[:24])


def _search_hits(reply: Reply) -> int:
    return sum(len(h.split()) - 2 for h in reply.heads if h.startswith(b"* SEARCH"))


# ---------------------------------------------------------------- scenario bodies

def run_startup(ctx: Context, server: Server, maildir: Path) -> Sample:
    s = Sample()
    if isinstance(server, Imapd):
        base = run_to_exit(ctx.baseline_argv, server.env(), ctx.ident, server.home)
        s.metrics["baseline"] = base.seconds
        module = Imapd(server.home, server.ident, server.pipe_size, server.log, server.snapshot, via_module=True)
        child = module.spawn(maildir)
        child.client.greeting()
        s.metrics["startup_module"] = time.perf_counter() - child.started
        child.logout()
    child = server.spawn(maildir)
    try:
        child.client.greeting()
        s.metrics["startup"] = time.perf_counter() - child.started
    except BaseException:
        child.kill()
        raise
    s.maxrss_kb = child.logout().maxrss_kb
    return s


def _select_scenario(key: str) -> Callable[[Context, Server, Path], Sample]:
    def run(ctx: Context, server: Server, maildir: Path) -> Sample:
        with session(ctx, server, maildir) as child:
            reply, exists = _select(child, ctx.manifest.count)
            end = child.logout()
        return Sample({key: end.seconds, key + "_command": reply.seconds}, reply.received, end.maxrss_kb,
                      {"exists": exists})
    return run


def _fetch_scenario(key: str, command: bytes, throughput: bool = False) -> Callable[[Context, Server, Path], Sample]:
    def run(ctx: Context, server: Server, maildir: Path) -> Sample:
        with session(ctx, server, maildir) as child:
            _select(child, ctx.manifest.count)
            reply = _check(child.client.command(command, keep=b"* ", timeout=ctx.options.timeout), key)
            end = child.logout()
        n = _count_fetch(reply)
        if n != ctx.manifest.count:
            raise ScenarioError(f"{key}: {n} FETCH responses, expected {ctx.manifest.count}")
        s = Sample({key: reply.seconds}, reply.received, end.maxrss_kb)
        if throughput:
            s.metrics[key + "_mbps"] = reply.received / reply.seconds / 1e6
        return s
    return run


def _search_scenario(key: str, criteria: bytes, expected: Callable[[Manifest], int]) \
        -> Callable[[Context, Server, Path], Sample]:
    def run(ctx: Context, server: Server, maildir: Path) -> Sample:
        with session(ctx, server, maildir) as child:
            _select(child, ctx.manifest.count)
            reply = _check(child.client.command(b"SEARCH " + criteria, keep=b"* SEARCH",
                                                timeout=ctx.options.timeout), key)
            end = child.logout()
        hits = _search_hits(reply)
        s = Sample({key: reply.seconds}, reply.received, end.maxrss_kb, {"hits": hits})
        want = expected(ctx.manifest)
        if hits != want:
            s.notes["mismatch"] = f"{hits} hits, the corpus has {want}"
        return s
    return run


def run_store(ctx: Context, server: Server, maildir: Path) -> Sample:
    with session(ctx, server, maildir) as child:
        _select(child, ctx.manifest.count)
        add = _check(child.client.command(b"STORE 1:* +FLAGS.SILENT (\\Seen)", timeout=ctx.options.timeout), "STORE +")
        rem = _check(child.client.command(b"STORE 1:* -FLAGS.SILENT (\\Seen)", timeout=ctx.options.timeout), "STORE -")
        end = child.logout()
    return Sample({"store_add": add.seconds, "store_remove": rem.seconds}, add.received + rem.received, end.maxrss_kb)


def run_expunge(ctx: Context, server: Server, maildir: Path) -> Sample:
    n = ctx.manifest.count
    every = list(range(10, n + 1, 10))
    with session(ctx, server, maildir) as child:
        _select(child, n)
        marks = [b"STORE " + b",".join(b"%d" % k for k in every[i:i + 1000]) + b" +FLAGS.SILENT (\\Deleted)"
                 for i in range(0, len(every), 1000)]
        for r in child.client.pipeline(marks, timeout=ctx.options.timeout):
            _check(r, "STORE \\Deleted")
        reply = _check(child.client.command(b"EXPUNGE", keep=b"* ", timeout=ctx.options.timeout), "EXPUNGE")
        end = child.logout()
    expunged = sum(1 for h in reply.heads if h.endswith(b" EXPUNGE\r\n"))
    s = Sample({"expunge": reply.seconds}, reply.received, end.maxrss_kb, {"expunged": expunged})
    if expunged != len(every):
        s.notes["mismatch"] = f"{expunged} EXPUNGE responses, expected {len(every)}"
    return s


def run_append(ctx: Context, server: Server, maildir: Path) -> Sample:
    commands = [b"APPEND INBOX (\\Seen) {%d+}\r\n" % len(m) + m for m in ctx.append_messages]
    with session(ctx, server, maildir) as child:
        before = child.client.received
        started = time.perf_counter()
        replies = child.client.pipeline(commands, timeout=ctx.options.timeout)
        seconds = time.perf_counter() - started
        received = child.client.received - before
        bad = [r for r in replies if not r.ok]
        end = child.logout()
    if bad:
        raise ScenarioError(f"APPEND: {len(bad)} failed, first: {bad[0].line.decode('utf-8', 'replace')[:200]}")
    sent = sum(len(m) for m in ctx.append_messages)
    return Sample({"append": seconds, "append_per_s": len(commands) / seconds}, received, end.maxrss_kb,
                  {"bytes_sent": sent})


def run_idle_latency(ctx: Context, server: Server, maildir: Path) -> Sample:
    latencies: list[float] = []
    uid, gid = ctx.ident.uid, ctx.ident.gid
    with session(ctx, server, maildir) as child:
        _, exists = _select(child, ctx.manifest.count)
        tag = child.client.next_tag()
        child.client.send(tag + b" IDLE\r\n")
        child.client.wait_head(lambda h: h.startswith(b"+"), 30)
        time.sleep(0.2)
        for k, data in enumerate(ctx.deliveries[:ctx.options.idle_deliveries]):
            name = f"{int(time.time())}.M{k}P{os.getpid()}Q{k}.{HOST}"
            tmp = maildir / "tmp" / name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                if ctx.ident.switch:
                    os.fchown(fd, uid, gid)
            finally:
                os.close(fd)
            want = exists + 1
            started = time.perf_counter()
            os.rename(tmp, maildir / "new" / name)
            while True:
                head = child.client.wait_head(lambda h: _EXISTS.match(h) is not None, 40)
                m = _EXISTS.match(head)
                assert m is not None
                if int(m.group(1)) >= want:
                    break
            latencies.append(time.perf_counter() - started)
            exists = int(m.group(1))
            time.sleep(0.05)
        child.client.exchange(b"DONE\r\n", _completes(tag), 30)
        end = child.logout()
    ms = sorted(x * 1000 for x in latencies)
    return Sample({"idle_ms": statistics.median(ms)}, 0, end.maxrss_kb,
                  {"latencies_ms": [round(x, 2) for x in ms]})


def run_idle_cpu(ctx: Context, servers: list[Server]) -> dict[str, Sample]:
    """Both servers idle at once on their primed Maildirs; CPU ticks over the period."""
    children: dict[str, tuple[Child, bytes]] = {}
    out: dict[str, Sample] = {}
    try:
        for server in servers:
            child = ctx.open(server, ctx.primed[server.name])
            children[server.name] = (child, b"")
            _select(child, ctx.manifest.count)
            tag = child.client.next_tag()
            child.client.send(tag + b" IDLE\r\n")
            child.client.wait_head(lambda h: h.startswith(b"+"), 30)
            children[server.name] = (child, tag)
        time.sleep(1.0)
        before = {name: c.cpu_ticks() for name, (c, _) in children.items()}
        time.sleep(ctx.options.idle_cpu_seconds)
        after = {name: c.cpu_ticks() for name, (c, _) in children.items()}
        for name, (child, tag) in children.items():
            child.client.exchange(b"DONE\r\n", _completes(tag), 30)
            end = child.logout()
            out[name] = Sample({"idle_cpu": float(after[name] - before[name])}, 0, end.maxrss_kb,
                               {"seconds": ctx.options.idle_cpu_seconds})
    except BaseException:
        for child, _ in children.values():
            child.kill()
        raise
    return out


# ---------------------------------------------------------------- the list

@dataclass
class Scenario:
    name: str
    phase: str
    metrics: list[Metric]
    run: Callable[[Context, Server, Path], Sample] | None = None
    run_all: Callable[[Context, list[Server]], dict[str, Sample]] | None = None
    reps: Callable[[Options], int] = lambda o: o.reps
    drop: str = ""                   # "index" or "uids": files deleted before each session
    description: str = ""
    reads_mail: bool = False         # reads every message file: the page cache is filled before each session


def _from_hits(m: Manifest) -> int:
    return m.from_rare


def _body_hits(m: Manifest) -> int:
    return m.body_rare


SCENARIOS: list[Scenario] = [
    Scenario("startup", "start", [
        Metric("startup", "start-up to greeting", "s", Target("baseline", 2.0)),
        Metric("baseline", "python3 -S -c pass (baseline, spawn to exit)"),
        Metric("startup_module", "start-up to greeting, python -m imapd"),
    ], run_startup, reps=lambda o: o.startup_reps,
        description="spawn to the first byte of the greeting; then LOGOUT"),
    Scenario("select_first", "cold", [
        Metric("select_first", "SELECT first open, no UIDs yet (spawn to exit)"),
    ], _select_scenario("select_first"), drop="uids",
        description="dovecot-uidlist and all index files deleted: the server assigns UIDs and builds its index"),
    Scenario("select_cold", "cold", [
        Metric("select_cold", "SELECT cold (spawn to exit)", target=Target("ratio", 1.0)),
    ], _select_scenario("select_cold"), drop="index",
        description="index files deleted, dovecot-uidlist kept"),
    Scenario("fetch_envbs_cold", "cold", [
        Metric("fetch_envbs_cold", "FETCH 1:* (ENVELOPE BODYSTRUCTURE) cold", target=Target("ratio", 1.5)),
    ], _fetch_scenario("fetch_envbs_cold", b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)"), drop="index",
        description="index and cache deleted before the session; the FETCH alone is timed", reads_mail=True),
    Scenario("select_warm", "warm", [
        Metric("select_warm", "SELECT warm (spawn to exit)", target=Target("ratio", 2.0)),
    ], _select_scenario("select_warm"), reps=lambda o: max(o.reps, o.startup_reps)),  # (a few ms each: as many as start-up)
    Scenario("uid_fetch_flags", "warm", [
        Metric("uid_fetch_flags", "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)", target=Target("ratio", 1.0)),
    ], _fetch_scenario("uid_fetch_flags", b"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")),
    Scenario("fetch_envbs_warm", "warm", [
        Metric("fetch_envbs_warm", "FETCH 1:* (ENVELOPE BODYSTRUCTURE) warm", target=Target("ratio", 1.0)),
    ], _fetch_scenario("fetch_envbs_warm", b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)")),
    Scenario("fetch_header_fields", "warm", [
        Metric("fetch_header_fields", "FETCH 1:* BODY.PEEK[HEADER.FIELDS (5 fields)]", target=Target("ratio", 1.0)),
    ], _fetch_scenario("fetch_header_fields", b"FETCH 1:* " + HEADER_FIELDS)),
    Scenario("search_from", "warm", [
        Metric("search_from", f"SEARCH FROM \"{RARE_SENDER}\" (~1%)", target=Target("ratio", 1.0)),
    ], _search_scenario("search_from", f"FROM \"{RARE_SENDER}\"".encode(), _from_hits)),
    Scenario("search_body", "warm", [
        Metric("search_body", f"SEARCH BODY \"{RARE_WORD}\" (~1%)", target=Target("ratio", 1.0)),
    ], _search_scenario("search_body", f"BODY \"{RARE_WORD}\"".encode(), _body_hits), reps=lambda o: o.slow_reps,
        reads_mail=True),
    Scenario("fetch_bodies", "warm", [
        Metric("fetch_bodies", "FETCH 1:* BODY.PEEK[] (every body)"),
        Metric("fetch_bodies_mbps", "FETCH 1:* BODY.PEEK[] throughput", "MB/s", Target("throughput", 1.0),
               higher_is_better=True),
    ], _fetch_scenario("fetch_bodies", b"FETCH 1:* BODY.PEEK[]", throughput=True), reps=lambda o: o.slow_reps,
        reads_mail=True),
    Scenario("store", "write", [
        Metric("store_add", "STORE 1:* +FLAGS.SILENT (\\Seen)", target=Target("ratio", 1.0)),
        Metric("store_remove", "STORE 1:* -FLAGS.SILENT (\\Seen)", target=Target("ratio", 1.0)),
    ], run_store, reps=lambda o: o.write_reps),
    Scenario("expunge", "write", [
        Metric("expunge", "EXPUNGE of 10% (every 10th \\Deleted)", target=Target("ratio", 1.0)),
    ], run_expunge, reps=lambda o: o.write_reps),
    Scenario("append", "write", [
        Metric("append", "APPEND of {append:,} pipelined (LITERAL+), one session", target=Target("faster", 10.0)),
        Metric("append_per_s", "APPEND messages per second", "msg/s", higher_is_better=True),
    ], run_append, reps=lambda o: o.write_reps),
    Scenario("idle_latency", "write", [
        Metric("idle_ms", "IDLE: rename into new/ → * n EXISTS (median)", "ms", Target("max", 20.0)),
    ], run_idle_latency, reps=lambda o: 1),
    Scenario("idle_cpu", "idle", [
        Metric("idle_cpu", "CPU ticks while idling in IDLE, {idle_cpu:g} s", "ticks", Target("max", 1, "0 ticks")),
    ], run_all=run_idle_cpu, reps=lambda o: 1),
]


# ---------------------------------------------------------------- running

def fill_page_cache(maildir: Path) -> None:
    """Read every message file of the corpus, so that the session that follows
    finds them in the kernel's page cache.  Every server's copy links these
    same files.  (Some VMs give the page cache back to the host steadily: 5
    to 10 MB/s on the one the README's table comes from, where the first
    session over 2.5 GB of mail after a few minutes of other scenarios read
    part of it from disk, 14 s where the others took 4.)"""
    buffer = bytearray(1 << 20)
    for sub in ("cur", "new"):
        with os.scandir(maildir / sub) as entries:
            for entry in entries:
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    while os.readv(fd, [buffer]) == len(buffer):
                        pass
                finally:
                    os.close(fd)


def prime(ctx: Context, server: Server, maildir: Path) -> None:
    """Build the server's index and cache the way a client's first sessions would."""
    with session(ctx, server, maildir, profiled=False) as child:
        _select(child)
        c = child.client
        for command in (b"UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)", b"FETCH 1:* (ENVELOPE BODYSTRUCTURE)",
                        b"FETCH 1:* " + HEADER_FIELDS, f"SEARCH FROM \"{RARE_SENDER}\"".encode()):
            _check(c.command(command, timeout=ctx.options.timeout), command.decode())
        child.logout()


def sync(ctx: Context, server: Server, maildir: Path) -> None:
    with session(ctx, server, maildir, profiled=False) as child:
        _select(child)
        child.logout()


def _synced(ctx: Context, server: Server, maildir: Path) -> Sample:
    sync(ctx, server, maildir)
    return Sample()


def _guarded(fn: Callable[[Context, Server, Path], Sample], ctx: Context, server: Server, maildir: Path) -> Sample:
    try:
        return fn(ctx, server, maildir)
    except Exception as e:  # noqa: BLE001 - a failing server is a result, not the end of the run
        return Sample(error=f"{type(e).__name__}: {e}", notes={"traceback": traceback.format_exc()[-2000:]})


def run_scenario(ctx: Context, sc: Scenario, progress: Callable[[str], None]) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {s.name: [] for s in ctx.servers}
    ctx.current = sc.name
    reps = sc.reps(ctx.options)
    for rep in range(reps):
        if sc.run_all is not None:
            try:
                for name, sample in sc.run_all(ctx, ctx.servers).items():
                    samples[name].append(sample)
            except Exception as e:  # noqa: BLE001
                for lst in samples.values():
                    lst.append(Sample(error=f"{type(e).__name__}: {e}"))
            continue
        order = ctx.servers if rep % 2 == 0 else list(reversed(ctx.servers))
        broken: dict[str, Sample] = {}
        if sc.phase == "write":
            for server in ctx.servers:
                clone_maildir(ctx.primed[server.name], ctx.work[server.name], ctx.ident)
            settle()
            for server in ctx.servers:
                failed = _guarded(_synced, ctx, server, ctx.work[server.name])
                if failed.error:
                    broken[server.name] = failed
        for server in order:
            if server.name in broken:
                samples[server.name].append(broken[server.name])
                continue
            maildir = ctx.work[server.name] if sc.phase == "write" else ctx.primed[server.name]
            if sc.drop:
                server.drop_indexes(maildir, uids_too=sc.drop == "uids")
            assert sc.run is not None
            if sc.reads_mail:
                fill_page_cache(Path(ctx.manifest.maildir))
            sample = _guarded(sc.run, ctx, server, maildir)
            samples[server.name].append(sample)
            progress(f"  {sc.name} rep {rep + 1}/{reps} {server.name}: "
                     + (sample.error or ", ".join(f"{k}={v:.4g}" for k, v in sample.metrics.items())))
        if sc.phase == "write":
            for server in ctx.servers:
                remove_tree(ctx.work[server.name])
    return samples
