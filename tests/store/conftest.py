"""Fixtures for the Maildir store tests: real temporary Maildirs, no mocks."""

from __future__ import annotations

import pytest

from imapd.store import open_store


@pytest.fixture
def maildir(tmp_path):
    return str(tmp_path / "Maildir")


@pytest.fixture
def store(maildir):
    s = open_store(maildir, use_inotify=False)
    yield s
    s.close()
