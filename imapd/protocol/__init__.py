"""The IMAP protocol without I/O: parsing commands, encoding responses."""

MAX_NUMBER = 0xFFFFFFFF  # nz-number / uniqueid are 32-bit (RFC 3501 §9)
