"""Shared test set-up: make `tests/harness.py` importable from every test folder."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The end-to-end tests run imapd as an unprivileged user that cannot write
# __pycache__ here; compile once so every spawned server starts at full speed.
import compileall  # noqa: E402

compileall.compile_dir(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "imapd"), quiet=1)
