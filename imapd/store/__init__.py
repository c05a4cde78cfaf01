"""Storage: the abstract API (`imapd.store.base`) and the factory for the
built-in Maildir backend."""

from __future__ import annotations

from imapd.store.base import Store

__all__ = ["open_store", "Store"]


def open_store(
    root: str,
    kind: str = "maildir",
    create: bool = True,
    *,
    use_inotify: bool = True,
    use_index: bool = True,
    lock_timeout: float = 30.0,
    special_use: dict[str, str] | None = None,
) -> Store:
    """Open a user's mail store.

    kind: "maildir" (Maildir++ tree), "readonly" (read-only file system: no
    writes, no locks, every mailbox read-only), "flat" (no hierarchy), or
    "inbox-only" (only INBOX).  create: make the root and its tmp/new/cur if
    missing.  use_inotify=False: watch_fds() returns [] and the caller polls.
    use_index=False: never read or write imapd's own cache files.
    lock_timeout: seconds to wait for dovecot-uidlist.lock before [INUSE].
    special_use: mailbox name -> its RFC 6154 attributes ("\\Sent"), space-separated.
    """
    from imapd.store.maildir.store import MaildirStore

    return MaildirStore(
        root, kind, create, use_inotify=use_inotify, use_index=use_index, lock_timeout=lock_timeout,
        special_use=special_use,
    )
