"""`python -m imapd` is the same program as the `imapd` command."""

from .cli import run_and_exit

run_and_exit()
