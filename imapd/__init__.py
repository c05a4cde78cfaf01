"""imapd: an IMAP server for Maildir, one process per connection, over stdin/stdout."""

__version__ = "0.1.0"
