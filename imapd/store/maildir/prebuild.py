"""Values built from many message files by helper processes, batch by
batch, while this process caches and answers.

A cold `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` reads and parses every message:
in one process, bound by one core.  This process hands each helper batches
of file names, a few ahead, and takes the results in UID order; it builds a
batch itself only when no helper is left (none started, or each died,
garbled its output or stalled).  One helper per core, at most MAX_HELPERS.

A helper is a fresh interpreter (this same Python, spawned, not forked)
that imports only the parser: a fork would share this process's pages
until it wrote to them, and every object it touched (reference counts, the
allocator's free lists) became a private copy -- 26 MB of them at 100,000
messages.  A fresh one holds only what it uses.

The helper only reads message files (through the directory descriptors it
is given) and runs a builder on their wire bytes.  It writes no file and
takes no lock; its standard error goes nowhere (the client's connection is
never its own).  Requests and results are marshal frames over two pipes.
Whatever goes wrong in a helper just ends it: this process then builds
that helper's batches itself, as it would without one.  When this process
ends, a helper reads the end of its requests and ends too.

A builder is named, not passed: (module, attribute, arguments), and
`getattr(module, attribute)(*arguments)` is the callable -- each process
makes its own.
"""

from __future__ import annotations

import marshal
import os
import signal
from _bisect import bisect_left
from stat import S_ISREG

from .message import read_wire
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, Sequence

    BuilderName = tuple[str, str, tuple[Any, ...]]

BATCH = 128  # messages per batch
AHEAD = 3  # batches a helper has queued at most
MAX_HELPERS = 2
PIPE_SIZE = 1 << 20  # results the helper may run ahead by (a larger pipe where allowed)
STALL = 30.0  # seconds the helper may take over one batch before it is given up
BIG_MESSAGE = 1 << 20  # a helper trims its heap right after building a message this large
SPARSE = BATCH // 16  # a batch asked from fewer times than this was mostly built for nothing
SPARSE_BATCHES = 2  # ... and after this many such batches in a row the building stops
_LEN = 4  # frame header: payload length, little-endian
_FIRST_DIR_FD = 3  # the helper's directory descriptors: 3, 4, ... (0 and 1 are the pipes)


def helpers_to_use() -> int:
    """How many helpers pay off: none on one core; otherwise one per core,
    at most MAX_HELPERS (each holds a few megabytes)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_HELPERS)


def make_builder(name: BuilderName) -> Callable[[bytes], Any]:
    import importlib

    module, attribute, args = name
    return getattr(importlib.import_module(module), attribute)(*args)  # type: ignore[no-any-return]


def build_file(uid: int, dirfd: int, name: str, build: Callable[[bytes], Any], open_flags: int) -> tuple[Any, ...]:
    """(uid, mtime, wire size, build(wire bytes)) for one message file, or
    (uid,) when it cannot be read or built (the caller's usual path then
    finds out why)."""
    try:
        fd = os.open(name, open_flags, dir_fd=dirfd)
        try:
            st = os.fstat(fd)
            if not S_ISREG(st.st_mode):
                return (uid,)
            data = read_wire(fd, st.st_size)
        finally:
            os.close(fd)
        return (uid, st.st_mtime, len(data), build(data))
    except Exception:  # noqa: BLE001 - built again, or reported, by the usual path
        return (uid,)


def _write_frame(fd: int, payload: bytes, batch: int = -1) -> None:
    """A request: length, payload; a result: length, batch number, payload."""
    head = len(payload).to_bytes(_LEN, "little")
    if batch >= 0:
        head += batch.to_bytes(_LEN, "little")
    view = memoryview(head + payload)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, n: int) -> bytes | None:
    parts = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def helper_main() -> None:
    """The helper process: requests on its standard input, results on its
    standard output, directories as descriptors 3, 4, ...  The first
    request names the builder and the open flags; each after it is
    (batch, [(uid, directory number, file name), ...]), answered with the
    batch number and [build_file(...) for each].  Ends at the end of its
    input."""
    from imapd.memory import note_parsed, trim

    code = 1
    try:
        head = _read_exactly(0, _LEN)
        first = head and _read_exactly(0, int.from_bytes(head, "little"))
        if first:
            name, open_flags = marshal.loads(first)
            build = make_builder(name)
            while True:
                head = _read_exactly(0, _LEN)
                payload = head and _read_exactly(0, int.from_bytes(head, "little"))
                if not payload:
                    break
                batch, todo = marshal.loads(payload)
                out = []
                for uid, slot, file_name in todo:
                    got = build_file(uid, _FIRST_DIR_FD + slot, file_name, build, open_flags)
                    if len(got) > 2:
                        if got[2] >= BIG_MESSAGE:
                            trim()  # its copies go back now, not 8 MB of mail later
                        else:
                            note_parsed(got[2])
                    out.append(got)
                _write_frame(1, marshal.dumps(out), batch)
        code = 0
    except BaseException:  # noqa: BLE001 - the server builds what is missing; nobody reads our errors
        pass
    os._exit(code)


_HELPER_CODE = ("import sys; sys.path.insert(0, %r); "
                "from imapd.store.maildir.prebuild import helper_main; helper_main()")


def _spawn(dirs: list[int]) -> tuple[int, int, int]:
    """Start a helper; (pid, its request pipe, its result pipe).  OSError if
    it cannot start."""
    import sys

    import imapd

    exe = sys.executable
    if not exe:
        raise OSError("no interpreter to start")
    import fcntl

    root = os.path.dirname(os.path.dirname(os.path.abspath(imapd.__file__)))
    opened: list[int] = []
    try:
        req_r, req_w = os.pipe()
        opened += (req_r, req_w)
        res_r, res_w = os.pipe()
        opened += (res_r, res_w)
        for w in (res_w, req_w):  # (requests: AHEAD batches of long names must fit, or a write could wait)
            try:
                fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # the default size: the helper runs less far ahead
        # every descriptor the helper gets is first copied above the numbers
        # it will have there, so no dup2 lands on another one's source
        low = _FIRST_DIR_FD + len(dirs)
        sources = [req_r, res_w, *dirs]
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low) for fd in sources]
        opened += high
        actions = [(os.POSIX_SPAWN_DUP2, high[0], 0), (os.POSIX_SPAWN_DUP2, high[1], 1),
                   (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
        actions += [(os.POSIX_SPAWN_DUP2, fd, _FIRST_DIR_FD + i) for i, fd in enumerate(high[2:])]
        # isolated (no environment, no site, no current directory on the
        # path): it imports imapd from where this process did.  (The C
        # allocator, or a fixed mmap threshold, saved it a megabyte or two
        # but cost it 12-80% more time a message.)
        argv = [exe, "-I", "-S", "-c", _HELPER_CODE % root]
        pid = os.posix_spawn(exe, argv, {}, file_actions=actions,
                             setsigdef=(signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
    except BaseException:
        for fd in opened:
            os.close(fd)
        raise
    for fd in (req_r, res_w, *high):
        os.close(fd)
    return pid, req_w, res_r


class _Helper:
    """One helper process as this process sees it."""

    __slots__ = ("pid", "requests", "results", "sent", "buf")

    def __init__(self, pid: int, requests: int, results: int) -> None:
        self.pid = pid
        self.requests = requests  # write end of its input
        self.results = results  # read end of its output
        self.sent: list[int] = []  # batches given to it, not back yet, in order
        self.buf = bytearray()  # its output read so far


class SharedBuild:
    """This process's end: `take(uid)` in ascending UID order; `close()`."""

    def __init__(
        self,
        uids: Sequence[int],
        locate: Callable[[int], tuple[int, str] | None],
        builder: BuilderName,
        open_flags: int,
        on_file: Callable[[int, float, int], bool],
        dirs: list[int],
    ) -> None:
        self.uids = uids
        self.locate = locate  # uid -> (directory fd, file name); None if gone
        self.builder = builder
        self.build: Callable[[bytes], Any] | None = None  # this process's own, made if ever needed
        self.open_flags = open_flags
        self.on_file = on_file
        self.dirs = {fd: i for i, fd in enumerate(dirs)}  # directory fd -> its number in the helpers
        self.nbatches = -(-len(uids) // BATCH)
        self.helpers: list[_Helper] = []  # those still working
        self.reaped: list[int] = []  # pids of helpers given up, to be waited for
        self.owner: dict[int, _Helper] = {}  # batch -> the helper building it
        self.next_free = 0  # the lowest batch given to nobody yet
        self._current = -1  # the batch take() was last asked from
        self._takes = 0  # how many times, so far
        self._sparse = 0  # batches in a row asked from fewer than SPARSE times
        self.stopped = False  # given up: the caller builds what it misses itself
        self.received = 0  # batches the helpers built
        self.mine: dict[int, dict[int, tuple[Any, ...]]] = {}  # batch -> built here, by UID
        self.theirs: dict[int, Any] = {}  # batch -> a helper's, by UID (or as it came)
        import select  # (not at the top: loading it costs a helper about 1 MB of its own)

        self._poll = select.poll()
        self._POLLIN = select.POLLIN

    # ------------------------------------------------------------ helpers
    def start(self, count: int) -> bool:
        """Start up to `count` helpers; False if none started."""
        first = marshal.dumps((self.builder, self.open_flags))
        for _ in range(count):
            try:
                h = _Helper(*_spawn(list(self.dirs)))
            except OSError:
                break
            self.helpers.append(h)
            self._poll.register(h.results, self._POLLIN)
            try:
                _write_frame(h.requests, first)
            except OSError:
                self._lost(h, "did not take its first request")
        self._refill()
        return bool(self.helpers)

    def _lost(self, h: _Helper, why: str = "") -> None:
        """A helper is gone, garbled or stuck (`why`, logged; nothing when the
        build is over): stop it; what it had is built here."""
        if h not in self.helpers:
            return
        if why:
            from imapd import log

            log.notice(f"FETCH helper {h.pid} {why}; its batches are built in the session")
        self.helpers.remove(h)
        self._poll.unregister(h.results)
        os.close(h.requests)
        os.close(h.results)
        for b in h.sent:
            del self.owner[b]
        h.sent.clear()
        h.buf.clear()
        try:
            os.kill(h.pid, signal.SIGKILL)
        except OSError:
            pass
        self.reaped.append(h.pid)

    def _refill(self) -> None:
        """Keep AHEAD batches queued at each helper, handed out in order to
        the one with the fewest."""
        while self.helpers and self.next_free < self.nbatches:
            h = min(self.helpers, key=lambda h: len(h.sent))
            if len(h.sent) >= AHEAD:
                return
            b = self.next_free
            self.next_free += 1
            todo = []
            for uid in self.uids[b * BATCH : (b + 1) * BATCH]:
                where = self.locate(uid)
                if where is not None and where[0] in self.dirs:
                    todo.append((uid, self.dirs[where[0]], where[1]))
            try:
                _write_frame(h.requests, marshal.dumps((b, todo)))
            except (OSError, ValueError):
                self._lost(h, "stopped taking requests")
                continue
            h.sent.append(b)
            self.owner[b] = h

    def _frames(self, h: _Helper) -> None:
        """Take in the batches complete in `h`'s output (kept as they came:
        decoded only when their turn comes, so batches read ahead stay
        small)."""
        buf = h.buf
        while len(buf) >= 2 * _LEN:
            n = int.from_bytes(buf[:_LEN], "little")
            if len(buf) < 2 * _LEN + n:
                return
            b = int.from_bytes(buf[_LEN : 2 * _LEN], "little")
            if not h.sent or b != h.sent[0]:
                self._lost(h, "sent a garbled batch")  # trust nothing more from it
                return
            self.theirs[b] = bytes(buf[2 * _LEN : 2 * _LEN + n])
            del buf[: 2 * _LEN + n]
            del h.sent[0]
            del self.owner[b]
            self.received += 1

    def _wait(self, timeout: float | None = None) -> None:
        """Read what the helpers have written, waiting up to `timeout`
        seconds (STALL by default) for some; then hand out batches to those
        that have room."""
        stall = timeout is None
        if timeout is None:
            timeout = STALL
        try:
            ready = self._poll.poll(timeout * 1000)
        except InterruptedError:
            return
        if not ready:
            if stall:  # helpers this slow are stuck: do without them
                for h in list(self.helpers):
                    self._lost(h, f"sent nothing for {STALL:g} s")
            return
        by_fd = {h.results: h for h in self.helpers}
        for fd, _ in ready:
            h = by_fd.get(fd)
            if h is None:
                continue
            try:
                chunk = os.read(fd, PIPE_SIZE)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:  # it ended (or died): the rest is built without it
                self._lost(h, "ended early")
                continue
            h.buf += chunk
            self._frames(h)
        self._refill()

    def _build_here(self, b: int) -> None:
        from imapd.memory import note_parsed

        if self.build is None:
            self.build = make_builder(self.builder)
        built = self.mine[b] = {}
        build, flags, locate = self.build, self.open_flags, self.locate
        size = 0
        for uid in self.uids[b * BATCH : (b + 1) * BATCH]:
            where = locate(uid)
            got = (uid,) if where is None else build_file(uid, where[0], where[1], build, flags)
            if len(got) > 2:
                size += got[2]
            built[uid] = got
        note_parsed(size)

    # ------------------------------------------------------------ parent
    def take(self, uid: int) -> Any:
        """What was built for `uid` (by a helper, or here when none is left),
        or None: build it the usual way (not in `uids`, unreadable, or the
        building stopped because the caller's misses became scattered)."""
        i = bisect_left(self.uids, uid)
        if i == len(self.uids) or self.uids[i] != uid:
            return None
        b = i // BATCH
        mine, theirs = self.mine, self.theirs
        if b != self._current:  # a new batch: forget those passed, keep the helpers busy
            if self._current >= 0:
                # batches built whole for a few messages each: the rest of the
                # caller's misses are scattered (it caches the others), so
                # stop building everything and let it build those alone
                self._sparse = self._sparse + 1 if self._takes < SPARSE else 0
                if self._sparse >= SPARSE_BATCHES:
                    self.stopped = True
                    self.close()
            self._current = b
            self._takes = 0
            for done in (mine, theirs):
                for old in [k for k in done if k < b]:  # never asked for again
                    del done[old]
            if self.helpers:
                self._wait(0)
        if self.stopped:
            return None
        self._takes += 1
        while b not in mine and b not in theirs:
            if b in self.owner:
                self._wait()
            elif b >= self.next_free and self.helpers:
                self.next_free = b  # the batches before it were never asked for
                self._refill()
                if b not in self.owner:  # (every queue is full of those)
                    self._build_here(b)
            else:
                self._build_here(b)  # no helper left, or its helper was lost
        table = mine.get(b)
        if table is None:
            table = theirs[b]
            if type(table) is bytes:
                from imapd.memory import note_parsed

                note_parsed(len(table))  # (what is decoded here is dropped soon: trimmed now and then)
                try:
                    table = {t[0]: t for t in marshal.loads(table)}
                except (ValueError, EOFError, TypeError, IndexError):
                    table = {}  # garbled: the caller builds these the usual way
                theirs[b] = table
        got = table.get(uid)
        if got is None or len(got) < 4:
            return None
        _, mtime, wire_size, value = got
        if not self.on_file(uid, mtime, wire_size):
            return None
        return value

    def close(self) -> None:
        """Stop the helpers (if they still run) and reap them."""
        for h in list(self.helpers):
            self._lost(h)
        for pid in self.reaped:
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        self.reaped.clear()

    def __del__(self) -> None:
        self.close()


def start(
    uids: Sequence[int],
    locate: Callable[[int], tuple[int, str] | None],
    builder: BuilderName,
    open_flags: int,
    on_file: Callable[[int, float, int], bool],
    dirs: list[int],
    count: int = 1,
) -> SharedBuild | None:
    """Hand building the value `builder` names for the message file of each
    of `uids` (ascending, a list or an array: no int object per UID;
    `locate` gives its directory fd, one of `dirs`, and name) to `count`
    helper processes; None if none can start."""
    if len(uids) < 2 * BATCH:
        return None
    shared = SharedBuild(uids, locate, builder, open_flags, on_file, dirs)
    if shared.start(count):
        return shared
    shared.close()
    return None
