"""Maildir++ backend of the storage API (compatible with Dovecot and Courier)."""

from imapd.store.maildir.mailbox import MaildirMailbox
from imapd.store.maildir.store import MaildirStore

__all__ = ["MaildirStore", "MaildirMailbox"]
