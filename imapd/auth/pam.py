"""Login through PAM, for system accounts.

PAM decides whether the password is good (and whether the account may log in:
`pam_acct_mgmt`); the passwd database (`pwd`, so NSS: files, LDAP, ...) then says
which uid, gid and home the account has.  The PAM service name is a setting
(`[auth] pam_service`, default "imap"), so an administrator can give IMAP its own
rules in /etc/pam.d/imap.

python-pam (and with it libpam through ctypes) is imported only when a login is
actually checked: PREAUTH sessions and passwd-file setups never load it.

We do not call pam_setcred or open a PAM session: IMAP needs no Kerberos ticket
or login record, and Dovecot does not by default either.
"""

from __future__ import annotations

import pwd

from imapd.auth.base import (
    AuthUnavailable,
    LoginBackend,
    User,
    expand_mail_location,
    MailLocationError,
    valid_username,
)

TYPE_CHECKING = False  # typing costs every connection milliseconds; only the checker needs it
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PamBackend"]

# PAM result codes that mean "these credentials do not open this account".
# Every other code is a broken or unreachable backend: AuthUnavailable.
_REFUSED_CODE_NAMES = (
    "PAM_AUTH_ERR",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_PERM_DENIED",
    "PAM_ACCT_EXPIRED",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_CRED_INSUFFICIENT",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
)


class PamBackend(LoginBackend):
    """Authenticate system users with PAM, then look them up with `pwd`.

    `rhost` is the client's address: handed to PAM as PAM_RHOST so that
    pam_unix's "authentication failure ... rhost=" lines (which fail2ban reads)
    name the attacker.  One process serves one connection, so it is known when
    the backend is made.  Accounts with a uid below `min_uid` (root by default)
    are refused even with the right password.
    """

    def __init__(
        self,
        service: str = "imap",
        mail_location: str = "~/Maildir",
        rhost: str | None = None,
        min_uid: int = 1,
    ) -> None:
        self.service = service
        self.mail_location = mail_location
        self.rhost = rhost
        self.min_uid = min_uid
        self.last_failure = None

    def authenticate(self, username: str, password: str) -> User | None:
        self.last_failure = None
        if not valid_username(username):
            return self._refuse("invalid user name")
        if not password or "\0" in password:
            # An empty password never opens an IMAP account, even where
            # pam_unix's nullok would let it.
            return self._refuse("empty or invalid password")

        try:
            import pam  # lazily: loads libpam through ctypes
        except ImportError as exc:  # pragma: no cover - packaging problem
            raise AuthUnavailable(f"python-pam is not installed: {exc}") from exc
        try:
            authenticator = pam.PamAuthenticator()
        except Exception as exc:  # libpam missing or unloadable
            raise AuthUnavailable(f"cannot load libpam: {exc}") from exc
        if self.rhost:
            _set_rhost_after_start(authenticator, pam, self.rhost)

        try:
            ok = authenticator.authenticate(
                username, password, service=self.service, resetcreds=False
            )
        except (ValueError, UnicodeError) as exc:
            return self._refuse(f"invalid credentials: {exc}")
        except Exception as exc:
            raise AuthUnavailable(f"PAM service {self.service!r} failed: {exc}") from exc
        if not ok:
            code = authenticator.code
            reason = _text(authenticator.reason)
            refused = {getattr(pam, name, None) for name in _REFUSED_CODE_NAMES}
            if code in refused:
                return self._refuse(f"PAM: {reason}")
            raise AuthUnavailable(f"PAM service {self.service!r}: {reason} (code {code})")

        try:
            entry = pwd.getpwnam(username)
        except KeyError:
            raise AuthUnavailable(
                f"PAM accepted {username!r} but the passwd database has no such account"
            ) from None
        if entry.pw_uid < self.min_uid:
            return self._refuse(f"uid {entry.pw_uid} is below the minimum {self.min_uid}")
        try:
            location = expand_mail_location(self.mail_location, username, None, entry.pw_dir)
        except MailLocationError as exc:
            raise AuthUnavailable(str(exc)) from exc
        return User(
            name=entry.pw_name,
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            home=entry.pw_dir,
            mail_location=location,
        )

    def _refuse(self, reason: str) -> None:
        self.last_failure = reason
        return None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _set_rhost_after_start(authenticator: Any, pam: Any, rhost: str) -> None:
    """Make the authenticator set PAM_RHOST right after pam_start.

    python-pam has no parameter for it, but it calls `self.pam_start(...)` through
    an instance attribute, so wrapping that attribute is enough.  Best effort: if a
    future python-pam changes this, logins still work, only without rhost.
    """
    import ctypes

    original = getattr(authenticator, "pam_start", None)
    set_item = getattr(authenticator, "pam_set_item", None)
    item = getattr(pam, "PAM_RHOST", None)
    if original is None or set_item is None or item is None or "\0" in rhost:
        return
    value = ctypes.c_char_p(rhost.encode("utf-8", "replace"))

    def pam_start_then_set_rhost(*args: Any) -> Any:
        result = original(*args)
        if result == 0 and getattr(authenticator, "handle", None) is not None:
            try:
                set_item(authenticator.handle, item, value)
            except Exception:
                pass
        return result

    authenticator.pam_start = pam_start_then_set_rhost
