"""Logging to syslog (facility mail by default) with a per-session id.

Under inetd, stdout and stderr are the client's socket, so nothing may be
written there: the only sinks are syslog and, when the config asks for it
(journald captures a service's stderr), stderr.
"""

from __future__ import annotations

import posix
import sys
import time

_session_id = f"{posix.getpid():x}{int(time.time() * 1000) & 0xFFFFF:05x}"
_to_stderr = False
_opened = False
_facility_name = "mail"
_defer = False
_pending: list[tuple[str, str]] = []  # (priority, line): held back by defer_routine()


def configure(facility: str = "mail", to_stderr: bool = False) -> None:
    global _to_stderr, _facility_name, _opened
    _to_stderr = to_stderr
    if facility != _facility_name:
        _facility_name = facility
        _opened = False


def defer_routine() -> None:
    """Hold back INFO and NOTICE lines for syslog until `flush()`, which the
    session loop calls before it first waits for its client, and the process
    at its end.  Loading the syslog library and connecting to it cost a
    connection about 0.3 ms, better spent while the client reads an answer
    than before the first one.  A warning or an error is written at once,
    after what was held back."""
    global _defer
    _defer = True


def flush() -> None:
    """Write the lines `defer_routine` held back (a no-op when there are none)."""
    global _pending
    if _pending:
        pending, _pending = _pending, []
        for priority_name, line in pending:
            _write(priority_name, line)


def session_id() -> str:
    return _session_id


def _emit(priority_name: str, message: str) -> None:
    line = f"[{_session_id}] {message}"
    if _defer and not _to_stderr and priority_name in ("INFO", "NOTICE"):
        _pending.append((priority_name, line))
        return
    flush()
    _write(priority_name, line)


def _write(priority_name: str, line: str) -> None:
    global _opened
    if _to_stderr:
        try:
            posix.write(2, f"<{_PRIORITY_NUMBERS[priority_name]}>imapd {line}\n".encode("utf-8", "replace"))
        except OSError:
            pass
        return
    import syslog

    if not _opened:
        facility = getattr(syslog, "LOG_" + _facility_name.upper(), syslog.LOG_MAIL)
        syslog.openlog("imapd", syslog.LOG_PID, facility)
        _opened = True
    syslog.syslog(getattr(syslog, "LOG_" + priority_name), line.replace("\0", "\\0"))


_PRIORITY_NUMBERS = {"ERR": 3, "WARNING": 4, "NOTICE": 5, "INFO": 6, "DEBUG": 7}


def info(message: str) -> None:
    _emit("INFO", message)


def notice(message: str) -> None:
    _emit("NOTICE", message)


def warning(message: str) -> None:
    _emit("WARNING", message)


def error(message: str) -> None:
    _emit("ERR", message)


def exception(message: str, failure: BaseException | None = None) -> None:
    """Log the traceback of `failure`, or of the exception being handled
    (never shown to the client)."""
    import traceback

    text = "".join(traceback.format_exception(failure)) if failure is not None else traceback.format_exc()
    _emit("ERR", message)
    for line in text.rstrip().splitlines():
        _emit("ERR", line)


del sys
