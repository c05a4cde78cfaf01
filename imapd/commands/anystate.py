"""Commands valid in every state: CAPABILITY, NOOP, LOGOUT, ID, and ENABLE."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

    from ..protocol.commands import Simple
    from ..protocol.session_syntax import Enable, Id

from .. import __version__, log
from ..protocol import responses as R
from ..protocol import states
from . import Result, ok

# What ENABLE can switch on (RFC 5161); CONDSTORE and UTF8=ACCEPT join when implemented.
ENABLEABLE: frozenset[str] = frozenset()


def capability(session: Any, cmd: Simple) -> Iterator[bytes]:
    yield b"* CAPABILITY " + " ".join(session.capabilities()).encode() + b"\r\n"
    return ok("Capability completed")


def noop(session: Any, cmd: Simple) -> Result:
    # pending mailbox changes are reported by the session after every command
    return ok("NOOP completed")


def logout(session: Any, cmd: Simple) -> Iterator[bytes]:
    yield R.untagged("imapd logging out", status="BYE")
    session.state = states.LOGOUT
    return ok("Logout completed")


def id_command(session: Any, cmd: Id) -> Iterator[bytes]:
    """RFC 2971: remember what the client says about itself, say who we are."""
    session.client_id = cmd.params
    if cmd.params:
        summary = " ".join(f"{k}={v!r}" for k, v in list(cmd.params.items())[:8])
        log.info(f"client id: {summary}")
    yield b"* ID " + R.encode(["name", "imapd", "version", __version__]) + b"\r\n"
    return ok("ID completed")


def enable(session: Any, cmd: Enable) -> Iterator[bytes]:
    """RFC 5161: enable only what we implement; report what changed."""
    newly = []
    for cap in cmd.capabilities:
        if cap in ENABLEABLE and cap not in session.enabled:
            session.enabled.add(cap)
            newly.append(cap)
    yield b"* ENABLED" + b"".join(b" " + c.encode() for c in newly) + b"\r\n"
    return ok("ENABLE completed")
