"""MIME tests run strict: internal errors surface instead of the fallbacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import imapd.mime.structure as structure


@pytest.fixture(autouse=True, scope="module")
def strict_mime() -> Iterator[None]:
    # module scope: hypothesis refuses function-scoped fixtures with @given
    old = structure._STRICT
    structure._STRICT = True
    yield
    structure._STRICT = old
