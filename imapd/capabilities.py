"""The CAPABILITY list, computed from what is really enabled.

Kept apart from the session so the greeting can be written before the
parser and the rest of the server are imported (start-up time is paid by
every connection).
"""

from __future__ import annotations

BASE = (
    "IMAP4rev1", "LITERAL+", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "NAMESPACE",
    "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "ESEARCH", "SEARCHRES", "BINARY", "STATUS=SIZE",
    "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "WITHIN",
)


def capabilities(authenticated: bool, tls_available: bool, tls_active: bool, plaintext_allowed: bool,
                 append_limit: int) -> list[str]:
    """`append_limit`: the largest message APPEND takes, in every mailbox
    alike (RFC 7889 APPENDLIMIT=n: a client can refuse a larger one itself
    instead of sending it first)."""
    caps = list(BASE)
    caps.append(f"APPENDLIMIT={append_limit}")
    if not authenticated:
        if tls_available and not tls_active:
            caps.append("STARTTLS")
        if plaintext_allowed:
            caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
        else:
            caps.append("LOGINDISABLED")
    return caps


def greeting(authenticated: bool, user_name: str, caps: list[str]) -> bytes:
    code = "CAPABILITY " + " ".join(caps)
    if authenticated:
        return f"* PREAUTH [{code}] imapd ready, logged in as {user_name}\r\n".encode("utf-8", "replace")
    return f"* OK [{code}] imapd ready.\r\n".encode()
