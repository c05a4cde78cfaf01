"""LOGIN, AUTHENTICATE (PLAIN, LOGIN; SASL-IR) and STARTTLS.

Failures sleep a delay that doubles with each failure and end the session
after the configured number; plaintext logins are refused unless the
channel is secure (TLS, loopback, ssh, a terminal) or the config allows them.
"""

from __future__ import annotations

import binascii
import time
TYPE_CHECKING = False  # typing costs milliseconds at start-up; only the checker needs it
if TYPE_CHECKING:
    from typing import Any, Iterator

    from ..protocol.commands import Simple
    from ..protocol.session_syntax import Authenticate, Login

from .. import log
from ..protocol import responses as R
from . import CommandError, Continuation, Result, ok


def starttls(session: Any, cmd: Simple) -> Result:
    if session.tls_active:
        raise CommandError("TLS is already active", status="BAD")
    if not session.tls_available:
        raise CommandError("TLS is not configured on this server", status="BAD")
    session.start_tls_requested = True
    return ok("Begin TLS negotiation now")


def login(session: Any, cmd: Login) -> Iterator[bytes]:
    user = cmd.user.decode("utf-8", "replace")
    password = cmd.password.decode("utf-8", "replace")
    return (yield from _check(session, user, password))


def authenticate(session: Any, cmd: Authenticate) -> Iterator[Any]:
    mech = cmd.mechanism
    if mech not in ("PLAIN", "LOGIN"):
        raise CommandError(f"Unsupported authentication mechanism {mech}", status="NO")
    if not session.plaintext_login_allowed():
        raise CommandError("Authentication requires TLS (use STARTTLS)", "PRIVACYREQUIRED")
    if mech == "PLAIN":
        response = cmd.initial
        if response is None:
            response = yield Continuation("")
        payload = _decode_b64(response)
        parts = payload.split(b"\0")
        if len(parts) != 3:
            raise CommandError("Malformed PLAIN response", status="BAD")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        if authzid and authzid != authcid:
            raise CommandError("Proxy authorization is not supported", "AUTHORIZATIONFAILED")
        return (yield from _check(session, authcid, password))
    # LOGIN: username and password as two challenges
    if cmd.initial is not None:
        user_b = _decode_b64(cmd.initial)
    else:
        user_b = _decode_b64((yield Continuation("VXNlcm5hbWU6")))
    pass_b = _decode_b64((yield Continuation("UGFzc3dvcmQ6")))
    return (yield from _check(session, user_b.decode("utf-8", "replace"), pass_b.decode("utf-8", "replace")))


def _decode_b64(data: bytes) -> bytes:
    data = data.strip()
    if data == b"*":
        raise CommandError("Authentication cancelled", status="BAD")
    if data == b"=":
        return b""
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        raise CommandError("Invalid base64 in authentication response", status="BAD") from None


def _check(session: Any, user: str, password: str) -> Iterator[bytes]:
    cfg = session.config.auth
    if not session.plaintext_login_allowed():
        raise CommandError("Plaintext login is disabled without TLS (use STARTTLS)", "PRIVACYREQUIRED")
    referral = cfg.referrals.get(user)
    if referral:
        log.info(f"login referral for user={user!r} to {referral}")
        raise CommandError("Your mailbox has moved", f"REFERRAL {referral}")
    backend = session.login_backend
    if backend is None:
        raise CommandError("Login is not available on this server", "UNAVAILABLE")
    from ..auth.base import AuthUnavailable

    try:
        account = backend.authenticate(user, password)
    except AuthUnavailable as e:
        log.error(f"authentication backend failed: {e}")
        raise CommandError("Authentication is temporarily unavailable", "UNAVAILABLE") from None
    if account is None:
        session.failed_logins += 1
        why = getattr(backend, "last_failure", None) or "bad credentials"
        log.notice(f"login failed: user={user!r} ({why}), attempt {session.failed_logins}")
        time.sleep(cfg.failure_delay * (2 ** (session.failed_logins - 1)) if cfg.failure_delay else 0)
        if session.failed_logins >= session.config.limits.failed_logins:
            yield R.untagged("Too many failed logins", status="BYE")
            session.finish("too many failed logins")
        raise CommandError("Authentication failed", "AUTHENTICATIONFAILED")
    if getattr(account, "referral", None):
        log.info(f"login referral for user={user!r} to {account.referral}")
        raise CommandError("Your mailbox has moved", f"REFERRAL {account.referral}")
    alerts = _alerts(session)  # read while still root: the file may be root's alone
    try:
        session.login_succeeded(account)
    except Exception as e:  # noqa: BLE001 - never serve mail after a failed privilege drop
        log.exception(f"cannot start the session of user={user!r}: {e}")
        yield R.untagged("Cannot open your mailbox, logged", code="UNAVAILABLE", status="BYE")
        session.finish("login setup failed")
        return Result("NO", "Login failed", "UNAVAILABLE")
    for line in alerts:
        yield line
    return ok("Logged in", "CAPABILITY " + " ".join(session.capabilities()))


def _alerts(session: Any) -> list[bytes]:
    path = session.config.server.alert_file
    if not path:
        return []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(4096)
    except OSError:
        return []
    return [R.untagged(line, code="ALERT") for line in text.splitlines() if line.strip()]
