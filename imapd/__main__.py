"""`python -m imapd` is the same program as the `imapd` command."""

import sys

from .cli import main

sys.exit(main())
