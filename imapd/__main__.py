"""`python -m imapd` is the same program as the `imapd` command."""

from . import _launch

_launch()
