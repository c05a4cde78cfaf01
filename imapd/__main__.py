"""`python -m imapd` is the same program as the `imapd` command."""

from . import codecache

codecache.install()

from .cli import run_and_exit  # noqa: E402 - after the cache's finder is in place

run_and_exit()
