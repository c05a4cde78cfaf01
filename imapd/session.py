"""The session: IMAP state machine, command dispatch and the one event loop.

`Session` is free of I/O: bytes go in with `receive()`, response bytes
accumulate in `out`, and `pump()` advances the parser and the running
command only while the output buffer is below its high-water mark, so a
client that stops reading cannot make the process grow without bound.
`run()` at the bottom is the event loop that ties a `Session` to a
transport, the mailbox's change notifications and the timers.
"""

from __future__ import annotations

import posix
import time
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator

from . import log
from .capabilities import capabilities, greeting
from .commands import CommandError, Continuation, Flush, Result, handler_for
from .config import Config
from .protocol import responses as R
from .protocol import states
from .protocol.commands import Command
from .protocol.parser import Limits, NeedLiteral, Parser, ProtocolError, RawLine

PRE_AUTH_LITERAL = 64 * 1024  # largest literal accepted before authentication
QUEUE_MIN = 16 * 1024  # items this large are queued for output, not copied
WRITE_BUFFERS = 256  # at most this many buffers to one writev(2)


class Session:
    """One client's IMAP conversation."""

    def __init__(
        self,
        config: Config,
        *,
        user: Any = None,
        store_opener: Callable[[Any], Any] | None = None,
        login_backend: Any = None,
        tls_available: bool = False,
        tls_active: bool = False,
        secure_channel: bool = False,
        on_login: Callable[[Any], Any] | None = None,
    ) -> None:
        self.config = config
        lim = config.limits
        self._limits = Limits(lim.line_length, lim.literal_size, lim.append_size, lim.nesting_depth)
        # Before login only LOGIN and ID take literals: a client nobody knows
        # yet may not make the process buffer an APPEND-sized literal.
        pre_auth = min(lim.literal_size, PRE_AUTH_LITERAL)
        self.parser = Parser(Limits(lim.line_length, pre_auth, pre_auth, lim.nesting_depth))
        self.out = bytearray()
        # Output goes out in order: `queued`, then `out`.  A large item (a
        # whole message body) is queued as the object it was read into, never
        # copied into `out`: FETCH of every body then copies each byte only
        # to read it, convert it and hand it to the kernel.
        self.queued: list[Any] = []
        self.queued_size = 0
        self.high_water = max(64 * 1024, min(lim.output_buffer, 64 << 20))
        self.state = states.NOT_AUTHENTICATED
        self.user = user  # auth.base.User or a name, once authenticated
        self._store: Any = None
        self.selected: Any = None  # selected.SelectedView
        self.enabled: set[str] = set()
        self.client_id: dict[str, str | None] | None = None
        self.store_opener = store_opener
        self.login_backend = login_backend
        self.on_login = on_login
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.secure_channel = secure_channel  # loopback, unix socket, ssh, tty
        self.failed_logins = 0
        self.bad_commands = 0
        self.commands_started = 0
        self.finished = False
        self.start_tls_requested = False
        self.idling = False
        self.idle_tag = ""
        self._running: Iterator[Any] | None = None
        self._running_cmd: Command | None = None
        self._awaiting_line = False
        self._flush_requested = False
        self.last_activity = time.monotonic()
        self.started = self.last_activity
        self.search_result: list[int] = []  # SEARCHRES `$` (UIDs)
        if user is not None:
            self._become_authenticated(user)

    # ------------------------------------------------------------ greeting
    def capabilities(self) -> list[str]:
        """Capabilities that are really enabled in this state and configuration."""
        return capabilities(self.state != states.NOT_AUTHENTICATED, self.tls_available, self.tls_active,
                            self.plaintext_login_allowed(), self.config.limits.append_size)

    def plaintext_login_allowed(self) -> bool:
        return self.tls_active or self.secure_channel or bool(self.config.auth.allow_plaintext)

    def greeting(self) -> bytes:
        return greeting(self.state != states.NOT_AUTHENTICATED, self.user_name, self.capabilities())

    @property
    def user_name(self) -> str:
        return getattr(self.user, "name", None) or str(self.user)

    # --------------------------------------------------------------- input
    def receive(self, data: bytes) -> None:
        self.parser.feed(data)

    def wants_input(self) -> bool:
        """Read more from the client only while its unprocessed input is small."""
        return not self.finished and self.parser.buffered < max(1 << 20, self.config.limits.line_length * 2)

    def idle_timeout(self) -> float:
        lim = self.config.limits
        return lim.login_timeout if self.state == states.NOT_AUTHENTICATED else lim.autologout

    # ---------------------------------------------------------------- pump
    def pump(self) -> None:
        """Run commands until input runs out, output is full, or the session ends."""
        while not self.finished and len(self.out) + self.queued_size < self.high_water:
            if self.start_tls_requested:
                return  # bytes pipelined after STARTTLS are discarded, never run
            if self._running is not None:
                if self._awaiting_line:
                    ev = self.parser.next_event()
                    if ev is None:
                        return
                    self._resume_with(ev)
                    continue
                self._step(None)
                if self._flush_requested:
                    self._flush_requested = False
                    return  # let the loop write a keepalive out now
                continue
            if self.idling:
                ev = self.parser.next_event()
                if ev is None:
                    return
                self._idle_input(ev)
                continue
            ev = self.parser.next_event()
            if ev is None:
                return
            self._handle_event(ev)

    def _handle_event(self, ev: object) -> None:
        if isinstance(ev, NeedLiteral):
            self.out += R.continuation("Ready for literal data")
            return
        self.last_activity = time.monotonic()
        if isinstance(ev, ProtocolError):
            self._protocol_error(ev)
            return
        if isinstance(ev, RawLine):  # a raw line nobody asked for: treat as garbage
            self._protocol_error(ProtocolError("*", "Unexpected continuation data"))
            return
        assert isinstance(ev, Command)
        self._start(ev)

    def _protocol_error(self, ev: ProtocolError) -> None:
        if ev.failure is not None:
            log.exception("internal error parsing a command", ev.failure)
        if ev.fatal:
            self.out += R.untagged(ev.text, code=ev.code, status="BYE")
            self.finish(f"protocol error: {ev.text}")
            return
        if ev.status == "NO":
            self.out += R.tagged(ev.tag, "NO", ev.text, ev.code)
            return
        self.bad_commands += 1
        if ev.tag == "*":
            self.out += R.untagged(ev.text, code=ev.code, status="BAD")
        else:
            self.out += R.tagged(ev.tag, "BAD", ev.text, ev.code)
        if self.bad_commands >= self.config.limits.bad_commands:
            self.out += R.untagged("Too many invalid commands", status="BYE")
            self.finish("too many invalid commands")

    # ----------------------------------------------------------- dispatch
    def _start(self, cmd: Command) -> None:
        allowed = states.ALLOWED[self.state]
        if cmd.name not in allowed:
            self.bad_commands += 1
            self.out += R.tagged(cmd.tag, "BAD", states.refusal(self.state, cmd.name))
            if self.bad_commands >= self.config.limits.bad_commands:
                self.out += R.untagged("Too many invalid commands", status="BYE")
                self.finish("too many invalid commands")
            return
        handler = handler_for(cmd.name)
        if handler is None:
            self.out += R.tagged(cmd.tag, "BAD", f"{cmd.name} is not implemented")
            return
        self.bad_commands = 0
        self.commands_started += 1
        self._running_cmd = cmd
        try:
            result = handler(self, cmd)
        except Exception as e:  # noqa: BLE001 - every failure becomes a tagged answer
            self._finish_command(cmd, self._error_result(e))
            return
        if hasattr(result, "__next__"):
            self._running = result
            self._step(None)
        else:
            self._finish_command(cmd, result)

    def _step(self, value: Any) -> None:
        """Advance the running handler by one item."""
        gen = self._running
        cmd = self._running_cmd
        assert gen is not None and cmd is not None
        try:
            item = gen.send(value) if value is not None else next(gen)
        except StopIteration as stop:
            self._running = None
            self._finish_command(cmd, stop.value)
            return
        except Exception as e:  # noqa: BLE001
            self._running = None
            self._finish_command(cmd, self._error_result(e))
            return
        if isinstance(item, Flush):
            self._flush_requested = True
        elif isinstance(item, Continuation):
            self.out += R.continuation(item.text) if item.text else b"+ \r\n"
            self._awaiting_line = True
            self.parser.raw_mode = True
        elif type(item) is list:  # pieces of one response, in order
            for piece in item:
                if len(piece) >= QUEUE_MIN:
                    self.queue(piece)
                else:
                    self.out += piece
        elif len(item) >= QUEUE_MIN and type(item) is bytes:
            self.queue(item)
        elif item:
            self.out += item

    def queue(self, data: bytes) -> None:
        """Send `data` after everything before it, without copying it."""
        if self.out:
            self.queued.append(self.out)
            self.queued_size += len(self.out)
            self.out = bytearray()
        self.queued.append(data)
        self.queued_size += len(data)

    def has_output(self) -> bool:
        return bool(self.out) or bool(self.queued)

    def pending_output(self) -> int:
        """Bytes not yet taken by the client."""
        return len(self.out) + self.queued_size

    def take_output(self) -> bytes:
        """All pending output, as if the client had read it (for embedding and tests)."""
        data = b"".join([*self.queued, self.out])
        self.queued.clear()
        self.queued_size = 0
        self.out.clear()
        return data

    def write_output(self, transport: Any) -> int:
        """Hand pending output to `transport`; returns the bytes it took."""
        queued = self.queued
        if not queued:
            # a view, not a copy
            with memoryview(self.out) as view, view[: 1 << 20] as chunk:
                n: int = transport.write(chunk)
            del self.out[:n]
            return n
        bufs = queued[:WRITE_BUFFERS]
        if len(bufs) < WRITE_BUFFERS and self.out:
            bufs.append(self.out)
        n = transport.write_many(bufs)
        taken = 0
        i = 0
        while i < len(queued) and n - taken >= len(queued[i]):
            taken += len(queued[i])
            i += 1
        del queued[:i]
        rest = n - taken
        if queued:
            if rest:
                queued[0] = memoryview(queued[0])[rest:]
            self.queued_size -= n
        else:
            self.queued_size = 0
            if rest:
                del self.out[:rest]
        return n

    def _resume_with(self, ev: object) -> None:
        self._awaiting_line = False
        if isinstance(ev, RawLine):
            self._step(ev.data)
        else:  # cannot happen in raw mode, but never leave a handler hanging
            self._running = None
            self._finish_command(self._running_cmd, Result("BAD", "Unexpected input"))  # type: ignore[arg-type]

    def _error_result(self, e: Exception) -> Result:
        from .store.base import StoreError

        if isinstance(e, CommandError):
            return Result(e.status, e.text, e.code)
        if isinstance(e, StoreError):
            return Result("NO", e.text, e.code)
        log.exception(f"internal error in {self._running_cmd.name if self._running_cmd else '?'}")
        return Result("NO", "Internal server error, logged", "SERVERBUG")

    def _finish_command(self, cmd: Command, result: Result | None) -> None:
        if result is None:
            result = Result()
        self._running_cmd = None
        self.last_activity = time.monotonic()  # idle from the end of the answer, however long it took
        if self.selected is not None and not self.finished and not self.idling:
            allow_expunge = not (cmd.name in states.NO_EXPUNGE_DURING and not cmd.uid)
            try:
                self.out += self.selected.report_changes(allow_expunge)
            except Exception:  # noqa: BLE001
                log.exception("failed to report mailbox changes")
        if self.idling:
            return  # IDLE answers later, on DONE
        self.out += R.tagged(cmd.tag, result.status, result.text, result.code)
        if self.state == states.LOGOUT:
            self.finish("logout")

    # ------------------------------------------------------------- states
    def _become_authenticated(self, user: Any) -> None:
        self.user = user
        self.state = states.AUTHENTICATED
        self.parser.limits = self._limits

    @property
    def store(self) -> Any:
        """The user's mail store, opened on first use (after the greeting went out)."""
        if self._store is None and self.store_opener is not None and self.state != states.NOT_AUTHENTICATED:
            self._store = self.store_opener(self.user)
        return self._store

    def login_succeeded(self, user: Any) -> None:
        """Called by LOGIN/AUTHENTICATE: drop privileges (on_login) then open the store."""
        if self.on_login is not None:
            self.on_login(user)
        self._become_authenticated(user)
        log.info(f"login: user={self.user_name}")

    def select(self, view: Any) -> None:
        self.close_selected()
        self.selected = view
        self.state = states.SELECTED

    def close_selected(self) -> None:
        if self.selected is not None:
            try:
                self.selected.close()
            finally:
                self.selected = None
                self.state = states.AUTHENTICATED

    def finish(self, why: str) -> None:
        if not self.finished:
            self.finished = True
            log.info(f"session ends: {why}")
            self.shutdown()

    def shutdown(self) -> None:
        gen = self._running
        if gen is not None and not getattr(gen, "gi_running", False):  # (not the one ending the session)
            # a command cut short (client gone, signal): its clean-up runs now,
            # with the mailbox still open (a FETCH stops its helper process)
            self._running = None
            try:
                gen.close()
            except Exception:  # noqa: BLE001
                log.exception("error ending an unfinished command")
        try:
            self.close_selected()
        except Exception:  # noqa: BLE001
            log.exception("error closing mailbox")
        if self._store is not None:
            try:
                self._store.close()
            except Exception:  # noqa: BLE001
                log.exception("error closing store")

    # --------------------------------------------------------------- IDLE
    def start_idle(self, tag: str) -> None:
        self.idling = True
        self.idle_tag = tag
        self.parser.raw_mode = True
        self.out += R.continuation("idling")

    def _idle_input(self, ev: object) -> None:
        self.last_activity = time.monotonic()
        self.idling = False
        if isinstance(ev, RawLine) and ev.data.strip().upper() == b"DONE":
            if self.selected is not None:
                self.out += self.selected.report_changes(True)
            self.out += R.tagged(self.idle_tag, "OK", "IDLE terminated")
        else:
            self.parser.raw_mode = False
            self.out += R.tagged(self.idle_tag, "BAD", "Expected DONE to end IDLE")

    def mailbox_changed(self) -> None:
        """Notification (inotify or poll) that the selected mailbox may have changed."""
        if self.selected is not None and self.idling:
            self.out += self.selected.report_changes(True)

    # ------------------------------------------------------------- timers
    def check_timers(self, now: float) -> None:
        if self.finished:
            return
        if self._running is not None and not self._awaiting_line:
            return  # a command is working; a handler waiting for the client is idle
        if now > self.next_deadline():
            if self.state == states.NOT_AUTHENTICATED:
                self.out += R.untagged("Login timeout; log in sooner", status="BYE")
                self.finish("login timeout")
            else:
                self.out += R.untagged("Autologout; idle for too long", status="BYE")
                self.finish("autologout")

    def busy(self) -> bool:
        """A command is working (not waiting for the client): no idle timer runs."""
        return self._running is not None and not self._awaiting_line

    def write_timeout(self) -> float:
        """Seconds the client may leave our output unread before it is dropped."""
        return float(self.idle_timeout())

    def next_deadline(self) -> float:
        """Before login: `login_timeout` from the connection's start, however busy the
        client is; after it: `autologout` from the last command."""
        if self.state == states.NOT_AUTHENTICATED:
            return self.started + self.config.limits.login_timeout
        return self.last_activity + self.idle_timeout()


# ------------------------------------------------------------------ the loop

EVENT_READ = 1
EVENT_WRITE = 2


class Poller:
    """The part of `selectors` the loop uses, on epoll (poll where there is
    none): `selectors` would add collections.abc and math to every start-up.
    Events are EVENT_READ | EVENT_WRITE; as with `selectors`, an error or
    hang-up makes a descriptor ready for both, so the next read or write
    sees it.

    The first `select` waits for nothing: it reports every descriptor ready
    for what it is wanted for (all are non-blocking: a read or write that
    finds nothing costs one call).  Only a second one loads `select` and
    polls -- for a session whose first command was already there, in the
    pause after its answer, while the client reads it; a pipelined session
    (`imapd < commands`) never does.  A descriptor that cannot be polled (a
    regular file, /dev/null: EPERM) is ready for its events every time, as
    for select(2)."""

    def __init__(self) -> None:
        self._p: Any = None  # the epoll (or poll) object, made at the second select
        self._guessed = False  # the first select was answered without polling
        self._wanted: dict[int, int] = {}  # fd -> events
        self._unpollable: set[int] = set()

    def guessing(self) -> bool:
        """Whether the next select answers without waiting (the first one)."""
        return not self._guessed

    def _start(self) -> None:
        import select

        self._epoll = hasattr(select, "epoll")
        self._p = select.epoll() if self._epoll else select.poll()
        if self._epoll:
            self._in, self._out = select.EPOLLIN, select.EPOLLOUT
        else:
            self._in, self._out = select.POLLIN, select.POLLOUT
        for fd, events in self._wanted.items():
            try:
                self._p.register(fd, self._mask(events))
            except PermissionError:
                self._unpollable.add(fd)

    def _mask(self, events: int) -> int:
        return (self._in if events & EVENT_READ else 0) | (self._out if events & EVENT_WRITE else 0)

    def register(self, fd: int, events: int) -> None:
        self._wanted[fd] = events
        if self._p is not None:
            try:
                self._p.register(fd, self._mask(events))
            except PermissionError:
                self._unpollable.add(fd)

    def modify(self, fd: int, events: int) -> None:
        self._wanted[fd] = events
        if self._p is not None and fd not in self._unpollable:
            self._p.modify(fd, self._mask(events))

    def unregister(self, fd: int) -> None:
        del self._wanted[fd]
        if fd in self._unpollable:
            self._unpollable.discard(fd)
        elif self._p is not None:
            self._p.unregister(fd)

    def select(self, timeout: float) -> list[tuple[int, int]]:
        """(fd, events) of the ready descriptors, waiting at most `timeout` seconds."""
        if self._p is None:
            if not self._guessed:
                self._guessed = True
                return list(self._wanted.items())
            self._start()
        if self._unpollable:
            timeout = 0.0
        if self._epoll:
            got = self._p.poll(timeout)  # rounds up to whole milliseconds
        else:
            got = self._p.poll(-(-timeout * 1000 // 1))
        out = [(fd, self._wanted[fd]) for fd in self._unpollable]
        for fd, ev in got:
            mask = 0
            if ev & ~self._out:
                mask |= EVENT_READ
            if ev & ~self._in:
                mask |= EVENT_WRITE
            out.append((fd, mask))
        return out

    def close(self) -> None:
        if self._p is not None and self._epoll:
            self._p.close()


STOP_GRACE = 5.0  # seconds a stop signal leaves a running command and the last output


class StopSignals:
    """SIGTERM (systemd, inetd stopping), SIGHUP (the terminal or ssh went
    away) and SIGINT (Ctrl-C by hand) ask the session to end as a server
    should: `* BYE` once no command is half way through its response, the
    mailbox closed, the output flushed -- instead of dying mid-write with a
    traceback.  The handler only takes note; a wakeup pipe makes the poll
    return, so the loop acts on it at a safe point."""

    SIGNALS = (15, 1, 2)  # SIGTERM, SIGHUP, SIGINT (the same numbers on every Unix)

    def __init__(self) -> None:
        import _signal  # (the `signal` module would import enum: milliseconds at start-up)

        self.signum = 0
        self.fd = -1
        self._w = -1
        self._old: list[tuple[int, Any]] = []
        self._old_wakeup = -1
        try:
            r, w = posix.pipe()  # (close-on-exec, as every new descriptor)
            posix.set_blocking(r, False)
            posix.set_blocking(w, False)
        except OSError:
            return  # (out of descriptors: the default actions stay)
        try:
            self._old_wakeup = _signal.set_wakeup_fd(w)
        except ValueError:  # not the main thread (an embedding program): leave signals alone
            posix.close(r)
            posix.close(w)
            return
        self.fd, self._w = r, w
        for sig in self.SIGNALS:
            self._old.append((sig, _signal.signal(sig, self._note)))

    def _note(self, signum: int, _frame: Any) -> None:
        if not self.signum:
            self.signum = signum

    def drain(self) -> None:
        try:
            while posix.read(self.fd, 64):
                pass
        except OSError:
            pass

    def close(self) -> None:
        import _signal

        if self.fd < 0:
            return
        for sig, handler in self._old:
            _signal.signal(sig, handler)
        _signal.set_wakeup_fd(self._old_wakeup)
        posix.close(self.fd)
        posix.close(self._w)
        self.fd = self._w = -1


def run(session: Session, transport: Any) -> None:
    """Serve `session` over `transport` until logout, EOF, a timeout or a
    stop signal (see StopSignals).

    One poll loop waits on the client's input, the client's output
    (only while there is output pending), the selected mailbox's inotify
    descriptor while idling, the stop signals' wakeup pipe, and the timers.
    Nothing busy-waits.
    """
    sel = Poller()
    stop = StopSignals()
    stop_by = 0.0  # when a stop signal's grace ends
    registered: dict[int, int] = {}
    idle_cfg = session.config.idle
    next_keepalive = 0.0
    next_poll = 0.0

    # (regular files and /dev/null cannot be polled: the Poller reports them
    # always ready, as select(2) does -- `imapd < commands.txt > /dev/null`)
    def want(fd: int, events: int) -> None:
        old = registered.get(fd, 0)
        if events == old:
            return
        if events == 0:
            sel.unregister(fd)
            del registered[fd]
        elif old == 0:
            sel.register(fd, events)
            registered[fd] = events
        else:
            sel.modify(fd, events)
            registered[fd] = events

    def written() -> int:
        """Bytes the client's descriptor has taken so far (a transport without
        the counter is credited with what its write() accepted)."""
        counted = getattr(transport, "raw_written", None)
        return int(counted) if counted is not None else accepted

    accepted = 0
    eof = False
    import gc

    # `imapd` starts with the cyclic GC paused (cli.run_and_exit): it is
    # resumed, with what start-up allocated frozen out of its scans, the
    # first time the loop comes round after a command began -- a short
    # pipelined session (SELECT, LOGOUT: one pump) never pays for it; a
    # longer one, or a command that outgrows one pump, has it as usual.
    gc_paused = not gc.isenabled()
    # A client that stops reading must not hold the process for ever: the time
    # since our output last moved is bounded by the idle timeout (a command
    # blocked on output runs no other timer).
    write_progress = time.monotonic()
    last_written = written()
    try:
        while True:
            session.pump()
            if session.has_output():
                try:
                    accepted += session.write_output(transport)
                except OSError as e:
                    log.info(f"client connection lost on write: {e}")
                    session.finish("write failed")
                    break
            pending = session.has_output() or transport.has_pending_output()
            now = time.monotonic()
            if written() != last_written or not pending:
                last_written = written()
                write_progress = now
            elif now - write_progress > session.write_timeout():
                log.notice(f"client stopped reading: no output accepted for {now - write_progress:.0f}s"
                           f" with {session.pending_output()} bytes pending; disconnecting")
                session.finish("client stopped reading")
                break
            if session.start_tls_requested and not session.has_output() and not transport.has_pending_output():
                session.start_tls_requested = False
                session.parser.discard_input()
                if not transport.start_tls(max(1.0, session.next_deadline() - time.monotonic())):
                    session.finish("TLS handshake failed")
                    break
                session.tls_active = True
                continue
            if session.finished and not session.has_output() and not transport.has_pending_output():
                break
            if stop.signum:
                if not stop_by:
                    stop_by = now + STOP_GRACE
                    log.notice(f"signal {stop.signum}: ending the session")
                if not session.finished and (not session.busy() or now > stop_by):
                    # a command half way through its response is dropped only
                    # when the grace is over: a BYE must not land inside it
                    if not session.busy():
                        session.out += R.untagged("Server shutting down", status="BYE")
                    session.finish(f"signal {stop.signum}")
                    continue
                if now > stop_by:
                    break  # the client does not take the rest of our output
            if eof and not session.busy() and not pending:
                # the client sent all it will (`imapd < commands.txt`, or a
                # half-closed socket): what it sent before is answered in
                # full; a command that waits for more input (IDLE, a
                # literal) or a partial line is not
                session.pump()  # commands left behind a full output buffer, if any
                if not session.has_output() and not session.busy():
                    session.finish("client closed the connection")
                continue
            now = time.monotonic()
            watch_fds: list[int] = []
            if session.idling and session.selected is not None:
                watch_fds = session.selected.watch_fds()
                if next_keepalive == 0.0:
                    next_keepalive = now + idle_cfg.keepalive
                    next_poll = now + idle_cfg.poll_interval
            else:
                next_keepalive = 0.0
            fd_events: dict[int, int] = {}
            if session.wants_input() and not session.finished and not eof:
                fd_events[transport.rfd] = fd_events.get(transport.rfd, 0) | EVENT_READ
            if session.has_output() or transport.has_pending_output():
                fd_events[transport.wfd] = fd_events.get(transport.wfd, 0) | EVENT_WRITE
            for fd in watch_fds:
                fd_events[fd] = fd_events.get(fd, 0) | EVENT_READ
            if stop.fd >= 0:
                fd_events[stop.fd] = EVENT_READ
            for fd in list(registered):
                if fd not in fd_events:
                    want(fd, 0)
            for fd, ev in fd_events.items():
                want(fd, ev)
            deadline = session.next_deadline() if not (session.busy() or session.finished) else now + 3600.0
            if pending:
                deadline = min(deadline, write_progress + session.write_timeout() + 0.01)
            if session.idling:
                deadline = min(deadline, next_keepalive)
                if not watch_fds:
                    deadline = min(deadline, next_poll)
            if not eof and transport.has_buffered_input() or (session.busy() and not pending and not session.finished):
                timeout = 0.0  # more input to parse, or a command paused only to flush a keepalive
            else:
                timeout = max(0.0, deadline - now)
            if stop_by:
                timeout = min(timeout, max(0.0, stop_by - now) + 0.01)
            if gc_paused and session.commands_started:
                gc_paused = False
                gc.freeze()
                gc.enable()
            if timeout > 0 and not sel.guessing():
                log.flush()  # (what the log held back until the session first waits)
            events = sel.select(timeout) if registered else (time.sleep(timeout) or [])
            now = time.monotonic()
            ready = dict(events)
            if stop.fd in ready:
                stop.drain()
            if not eof and (transport.rfd in ready and ready[transport.rfd] & EVENT_READ or transport.has_buffered_input()):
                try:
                    data = transport.read()
                except OSError as e:
                    log.info(f"client connection lost on read: {e}")
                    data = None
                if data is None:
                    eof = True
                elif data:
                    session.receive(data)
            if session.idling and session.selected is not None:
                changed = any(fd in ready for fd in watch_fds)
                if changed:
                    session.selected.drain_watch()
                if changed or (not watch_fds and now >= next_poll):
                    next_poll = now + idle_cfg.poll_interval
                    session.mailbox_changed()
                if now >= next_keepalive:
                    next_keepalive = now + idle_cfg.keepalive
                    session.out += R.untagged("Still here")
            session.check_timers(now)
    finally:
        try:
            session.finish("connection closed")
        finally:
            stop.close()
            sel.close()
            transport.close()
