"""Values built from many message files by this process and a forked helper
process together, batch by batch, each taking the next batch when free.

A cold `FETCH 1:* (ENVELOPE BODYSTRUCTURE)` reads and parses every message:
bound by one core.  With a helper on a second core it takes about half the
time.  The batches are numbered tokens in a pipe that both processes read
from; the answer still goes out in UID order: when the next batch due is
the helper's and not yet back, this process takes another batch itself
instead of waiting.  So neither process idles while work is left, however
the machine's load falls on them.

Only with `fetch_helper = true` in `[mail]`: the helper's private pages
(copy-on-write of what it touches, about 27 MB at 100,000 messages) take
such a session past the memory a session may use, so it is off by default.

The helper only reads message files and runs a pure function on their wire
bytes.  It writes no file, takes no lock and closes the client's
descriptors at once; results come back over a pipe, one marshal frame per
message.  Whatever goes wrong in the helper just ends it: this process
then builds the rest itself, as it would without one.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
from _bisect import bisect_left
from stat import S_ISREG

from .message import read_wire
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

BATCH = 128  # messages per batch
PIPE_SIZE = 1 << 20  # results the helper may run ahead by (a larger pipe where allowed)
_LEN = 4  # frame header: payload length, little-endian
_TOKEN = 4  # a batch number in the token pipe


def can_fork_helper() -> bool:
    """A helper pays off only with a second core to run on."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) > 1


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


class SharedBuild:
    """This process's end: `take(uid)` in ascending UID order; `close()`."""

    def __init__(
        self,
        uids: list[int],
        locate: Callable[[int], tuple[int, str] | None],
        build: Callable[[bytes], Any],
        open_flags: int,
        on_file: Callable[[int, float, int], bool],
    ) -> None:
        self.uids = uids
        self.locate = locate  # uid -> (directory fd, file name); None if gone
        self.build = build
        self.open_flags = open_flags
        self.on_file = on_file
        self.nbatches = -(-len(uids) // BATCH)
        self.pid = 0
        self.tokens = -1  # read end of the token pipe
        self.results = -1  # read end of the helper's result pipe
        self.taken = -1  # the highest batch number taken by either process so far
        self.mine: dict[int, dict[int, tuple[Any, ...]]] = {}  # batch -> built here, by UID
        self.theirs: dict[int, tuple[Any, ...]] = {}  # the helper's frames read ahead, by UID
        self._buf = bytearray()
        self._poll: Any = None

    # ------------------------------------------------------------ helper
    def start(self) -> bool:
        """Fill the token pipe and fork the helper; False if impossible."""
        tokens = b"".join(b.to_bytes(_TOKEN, "little") for b in range(self.nbatches))
        fds: list[int] = []
        try:
            tr, tw = os.pipe()
            fds += (tr, tw)
            rr, rw = os.pipe()
            fds += (rr, rw)
            import fcntl

            if len(tokens) > 65536:
                fcntl.fcntl(tw, fcntl.F_SETPIPE_SZ, len(tokens))
            try:
                fcntl.fcntl(rw, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass  # the default size: the helper runs less far ahead
            os.set_blocking(tw, False)
            if os.write(tw, tokens) != len(tokens):
                raise OSError("the batch numbers do not fit in a pipe")
            os.close(tw)  # no writer left: an empty token pipe reads as EOF
            fds.remove(tw)
            from imapd.memory import trim

            trim()  # the helper starts with what this process holds resident
            pid = os.fork()
        except OSError:
            for fd in fds:
                os.close(fd)
            return False
        if pid == 0:  # the helper: never returns
            code = 1
            try:
                os.close(rr)
                self._helper(tr, rw)
                code = 0
            finally:
                os._exit(code)
        os.close(rw)
        self.pid = pid
        self.tokens = tr
        self.results = rr
        return True

    def _helper(self, tokens: int, results: int) -> None:
        import gc

        # What the server holds is shared with the helper until one of them
        # writes to it; a collection would write to every object it scans.
        gc.freeze()
        # signals end the helper outright; the server's handlers and wakeup pipe are not its own
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        for fd in (0, 1, 2):  # the client's connection stays the server's alone
            try:
                os.close(fd)
            except OSError:
                pass
        from imapd.memory import note_parsed

        while True:
            token = os.read(tokens, _TOKEN)
            if len(token) < _TOKEN:
                return
            b = int.from_bytes(token, "little")
            out = bytearray()
            size = 0
            for got in self._batch(b):
                if len(got) > 2:
                    size += got[2]
                frame = marshal.dumps(got)
                out += len(frame).to_bytes(_LEN, "little") + frame
            note_parsed(size)
            view = memoryview(out)
            while view:
                view = view[os.write(results, view) :]

    # ------------------------------------------------------------ parent
    def _claim(self) -> int:
        """The next free batch number, now this process's; -1 when none is left."""
        if self.tokens < 0:
            return -1
        try:
            token = os.read(self.tokens, _TOKEN)
        except OSError:
            token = b""
        if len(token) < _TOKEN:  # every batch is taken: the rest are the helper's
            os.close(self.tokens)
            self.tokens = -1
            self.taken = self.nbatches - 1
            return -1
        self.taken = int.from_bytes(token, "little")
        return self.taken

    def _batch(self, b: int) -> Iterator[tuple[Any, ...]]:
        """build_file's answer for each message of batch `b`."""
        build, flags, locate = self.build, self.open_flags, self.locate
        for uid in self.uids[b * BATCH : (b + 1) * BATCH]:
            where = locate(uid)
            yield (uid,) if where is None else build_file(uid, where[0], where[1], build, flags)

    def _build_here(self, b: int) -> None:
        from imapd.memory import note_parsed

        built = self.mine[b] = {}
        size = 0
        for got in self._batch(b):
            built[got[0]] = got
            if len(got) > 2:
                size += got[2]
        note_parsed(size)

    def _helper_has_output(self) -> bool:
        if self.results < 0 or len(self._buf) >= _LEN:
            return True
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.results, select.POLLIN)
        return bool(self._poll.poll(0))

    def _read_theirs(self, uid: int) -> tuple[Any, ...] | None:
        """The helper's frames up to the one for `uid` (waiting for them);
        None if the helper ended first."""
        buf = self._buf
        while True:
            while len(buf) >= _LEN:
                n = int.from_bytes(buf[:_LEN], "little")
                if len(buf) < _LEN + n:
                    break
                try:
                    got = marshal.loads(bytes(buf[_LEN : _LEN + n]))
                except (ValueError, EOFError, TypeError):
                    got = None
                if type(got) is not tuple or not got or type(got[0]) is not int:
                    self._stop_reading()  # garbled: trust nothing more from it
                    return None
                del buf[: _LEN + n]
                if got[0] == uid:
                    return got  # type: ignore[no-any-return]
                if got[0] > uid:
                    self.theirs[got[0]] = got
            if self.results < 0:
                return None
            try:
                chunk = os.read(self.results, PIPE_SIZE)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:  # the helper ended (or died): the rest is built the usual way
                self._stop_reading()
                return None
            buf += chunk

    def _stop_reading(self) -> None:
        if self.results >= 0:
            os.close(self.results)
            self.results = -1
        self._buf.clear()

    def take(self, uid: int) -> Any:
        """What was built for `uid` (here or by the helper), or None: build it
        the usual way (not in `files`, unreadable, or the helper is gone)."""
        i = bisect_left(self.uids, uid)
        if i == len(self.uids) or self.uids[i] != uid:
            return None
        b = i // BATCH
        mine = self.mine
        if len(mine) > 1:
            for old in [k for k in mine if k < b]:  # passed: never asked for again
                del mine[old]
        theirs = self.theirs
        if len(theirs) > 4 * BATCH:
            for old in [k for k in theirs if k < uid]:
                del theirs[old]
        while self.taken < b:
            t = self._claim()
            if t < 0:
                break
            if t >= b:
                self._build_here(t)
            else:
                mine[t] = {}  # a batch nothing was asked from: build nothing
        got: tuple[Any, ...] | None
        if b in mine:
            got = mine[b].get(uid)
        else:
            got = theirs.pop(uid, None)
            if got is None:
                # the helper's batch: while it is not back, build the next one here
                while not self._helper_has_output():
                    t = self._claim()
                    if t < 0:
                        break
                    self._build_here(t)
                got = self._read_theirs(uid)
        if got is None or len(got) < 4:
            return None
        _, mtime, wire_size, value = got
        if not self.on_file(uid, mtime, wire_size):
            return None
        return value

    def close(self) -> None:
        """Stop the helper (if it still runs) and reap it."""
        if self.tokens >= 0:
            os.close(self.tokens)
            self.tokens = -1
        if self.results >= 0:
            os.close(self.results)
            self.results = -1
        if self.pid > 0:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = 0

    def __del__(self) -> None:
        self.close()


def start(
    uids: list[int],
    locate: Callable[[int], tuple[int, str] | None],
    build: Callable[[bytes], Any],
    open_flags: int,
    on_file: Callable[[int, float, int], bool],
) -> SharedBuild | None:
    """Share building `build(wire bytes)` for the message file of each of
    `uids` (ascending; `locate` gives its directory fd and name, and works in
    the helper too: it runs on the helper's copy of this process) with a
    forked helper; None if none can start."""
    if len(uids) < 2 * BATCH:
        return None
    shared = SharedBuild(uids, locate, build, open_flags, on_file)
    return shared if shared.start() else None
