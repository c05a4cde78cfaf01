"""Fixtures that create real system accounts and PAM services (root only).

CI runs as root and must exercise these tests for real; elsewhere they are
skipped.  Everything created here is removed again, even when a test fails.
"""

from __future__ import annotations

import os
import pwd
import grp
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest


def require_root() -> None:
    """Skip without root; but in CI (CI=true) a skip would hide a broken setup: fail."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("these tests must run as root in CI")
        pytest.skip("needs root to create users and PAM services")


@dataclass
class SystemUser:
    name: str
    password: str
    uid: int
    gid: int
    home: str
    extra_group: str
    extra_gid: int


def _run(*argv: str, stdin: str | None = None) -> None:
    subprocess.run(argv, input=stdin, text=True, check=True, capture_output=True)


@pytest.fixture(scope="session")
def system_user(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemUser]:
    """A real account with a password and one supplementary group."""
    require_root()
    suffix = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    name = f"imapdt{suffix}"
    group = f"imapdg{suffix}"
    password = "S3cret pass:" + secrets.token_hex(4)
    home = tmp_path_factory.mktemp("home") / name
    _run("groupadd", group)
    try:
        _run(
            "useradd", "--home-dir", str(home), "--create-home", "--user-group",
            "--shell", "/usr/sbin/nologin", "--groups", group, name,
        )
        try:
            _run("chpasswd", stdin=f"{name}:{password}\n")
            entry = pwd.getpwnam(name)
            yield SystemUser(
                name, password, entry.pw_uid, entry.pw_gid, entry.pw_dir,
                group, grp.getgrnam(group).gr_gid,
            )
        finally:
            subprocess.run(["userdel", "--remove", name], capture_output=True)
            subprocess.run(["groupdel", name], capture_output=True)  # if left behind
    finally:
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture
def pam_service() -> Iterator[Callable[[str], str]]:
    """Write /etc/pam.d/<name> files for one test; returns a function(text) -> name."""
    require_root()
    created: list[Path] = []

    def make(text: str) -> str:
        name = f"imapd-test-{os.getpid()}-{secrets.token_hex(3)}"
        path = Path("/etc/pam.d") / name
        path.write_text(text)
        created.append(path)
        return name

    yield make
    for path in created:
        path.unlink(missing_ok=True)
