"""imapd: an IMAP server for Maildir, one process per connection, over stdin/stdout."""

__version__ = "0.1.0"


def _launch() -> None:
    """Run the `imapd` command: what `bin/imapd` and `python -m imapd` do once
    this package is found.  The cyclic garbage collector waits (start-up
    allocates objects that are never garbage), and imapd's modules come from
    the start-up code cache where there is one (codecache.py).  (Here, not in
    the launcher's `-c` text, which Python parses and compiles anew for every
    connection: 0.3 M instructions for those lines.)"""
    import gc
    import sys

    gc.disable()
    from . import codecache

    codecache.install()
    from .cli import run_and_exit

    sys.argv[0] = "imapd"
    run_and_exit()
