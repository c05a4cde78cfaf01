"""Which commands each session state allows, as one table.

Everything that decides a state transition or a command's admissibility is
data here, so the session's rules can be read in one place.
"""

from __future__ import annotations

NOT_AUTHENTICATED = "not authenticated"
AUTHENTICATED = "authenticated"
SELECTED = "selected"
LOGOUT = "logout"

ANY_STATE = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
NOT_AUTHENTICATED_ONLY = frozenset({"STARTTLS", "AUTHENTICATE", "LOGIN"})
AUTHENTICATED_ONLY = frozenset({"ENABLE"})  # RFC 5161 §3.1, RFC 9051 §6.3.1
AUTHENTICATED_OR_SELECTED = frozenset({
    "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
    "LIST", "LSUB", "STATUS", "APPEND", "IDLE", "NAMESPACE",
})
SELECTED_ONLY = frozenset({"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE"})

ALLOWED: dict[str, frozenset[str]] = {
    NOT_AUTHENTICATED: ANY_STATE | NOT_AUTHENTICATED_ONLY,
    AUTHENTICATED: ANY_STATE | AUTHENTICATED_ONLY | AUTHENTICATED_OR_SELECTED,
    SELECTED: ANY_STATE | AUTHENTICATED_OR_SELECTED | SELECTED_ONLY,
    LOGOUT: frozenset(),
}

# Commands during which an untagged EXPUNGE must not be sent (RFC 3501 §7.4.1):
# the client may be using message sequence numbers.
NO_EXPUNGE_DURING = frozenset({"FETCH", "STORE", "SEARCH"})


def refusal(state: str, name: str) -> str:
    """Why `name` is not allowed in `state`, for the tagged BAD."""
    if name in NOT_AUTHENTICATED_ONLY:
        return f"{name} is only allowed before authentication"
    if state == NOT_AUTHENTICATED:
        return f"{name} requires authentication: LOGIN or AUTHENTICATE first"
    if name in AUTHENTICATED_ONLY:
        return f"{name} is only allowed in the authenticated state, before SELECT"
    if name in SELECTED_ONLY:
        return f"{name} requires a selected mailbox: SELECT or EXAMINE first"
    return f"{name} is not allowed in the {state} state"
