"""Shared test set-up: make `tests/harness.py` importable from every test folder."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# The end-to-end tests run imapd as an unprivileged user that cannot write
# __pycache__ here; compile once so every spawned server starts at full speed,
# and write the start-up code cache as `imapd --compile` does after an install
# (the sessions then import what an installed server imports).
import compileall  # noqa: E402

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "imapd")
compileall.compile_dir(_PACKAGE, quiet=1)
try:
    from imapd import codecache  # noqa: E402

    codecache.write(_PACKAGE)
except OSError:
    pass  # a checkout this user may not write: sessions import module by module
