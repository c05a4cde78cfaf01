"""Maildir++ backend of the storage API (compatible with Dovecot and Courier).

The classes are loaded on first use, not with the package: a FETCH helper
process (prebuild) imports only the few modules it runs."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imapd.store.maildir.mailbox import MaildirMailbox
    from imapd.store.maildir.store import MaildirStore

__all__ = ["MaildirStore", "MaildirMailbox"]


def __getattr__(name: str) -> object:
    if name == "MaildirStore":
        from imapd.store.maildir.store import MaildirStore

        return MaildirStore
    if name == "MaildirMailbox":
        from imapd.store.maildir.mailbox import MaildirMailbox

        return MaildirMailbox
    raise AttributeError(name)
