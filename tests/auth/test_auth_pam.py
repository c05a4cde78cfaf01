"""PamBackend against the real libpam, pam_unix and a real account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imapd.auth.base import AuthUnavailable, User
from imapd.auth.pam import PamBackend

UNIX_SERVICE = "auth required pam_unix.so\naccount required pam_unix.so\n"


def test_good_password(system_user, pam_service):
    backend = PamBackend(service=pam_service(UNIX_SERVICE))
    user = backend.authenticate(system_user.name, system_user.password)
    assert user == User(
        name=system_user.name,
        uid=system_user.uid,
        gid=system_user.gid,
        home=system_user.home,
        mail_location=os.path.join(system_user.home, "Maildir"),
    )
    assert backend.last_failure is None


def test_mail_location_template(system_user, pam_service):
    backend = PamBackend(service=pam_service(UNIX_SERVICE), mail_location="/var/mail/%n")
    user = backend.authenticate(system_user.name, system_user.password)
    assert user is not None and user.mail_location == f"/var/mail/{system_user.name}"


def test_bad_password(system_user, pam_service):
    backend = PamBackend(service=pam_service(UNIX_SERVICE))
    assert backend.authenticate(system_user.name, system_user.password + "x") is None
    assert backend.last_failure and backend.last_failure.startswith("PAM:")


def test_unknown_user(system_user, pam_service):
    backend = PamBackend(service=pam_service(UNIX_SERVICE))
    assert backend.authenticate(system_user.name + "nope", system_user.password) is None
    assert backend.last_failure


@pytest.mark.parametrize("password", ["", "a\0b"])
def test_empty_or_nul_password_never_reaches_pam(system_user, pam_service, password):
    backend = PamBackend(service=pam_service("auth required pam_permit.so\naccount required pam_permit.so\n"))
    assert backend.authenticate(system_user.name, password) is None


@pytest.mark.parametrize("name", ["", "a\0b", "../etc", "x" * 300, "bad\nname"])
def test_invalid_user_names_refused(pam_service, name):
    backend = PamBackend(service=pam_service("auth required pam_permit.so\naccount required pam_permit.so\n"))
    assert backend.authenticate(name, "whatever") is None
    assert backend.last_failure == "invalid user name"


def test_min_uid_refuses_low_accounts(system_user, pam_service):
    backend = PamBackend(service=pam_service(UNIX_SERVICE), min_uid=system_user.uid + 1)
    assert backend.authenticate(system_user.name, system_user.password) is None
    assert "below the minimum" in backend.last_failure


def test_root_is_refused_even_when_pam_says_yes(pam_service):
    backend = PamBackend(service=pam_service("auth required pam_permit.so\naccount required pam_permit.so\n"))
    assert backend.authenticate("root", "anything") is None
    assert "uid 0" in backend.last_failure


def test_account_management_is_checked(system_user, pam_service):
    """A good password is not enough when the account stack says no."""
    backend = PamBackend(service=pam_service("auth required pam_unix.so\naccount required pam_deny.so\n"))
    assert backend.authenticate(system_user.name, system_user.password) is None


def test_broken_service_is_unavailable_not_bad_password(system_user, pam_service):
    backend = PamBackend(service=pam_service("auth required pam_no_such_module_imapd.so\naccount required pam_unix.so\n"))
    with pytest.raises(AuthUnavailable) as info:
        backend.authenticate(system_user.name, system_user.password)
    assert "PAM service" in str(info.value)


def test_pam_user_without_passwd_entry_is_unavailable(pam_service):
    backend = PamBackend(service=pam_service("auth required pam_permit.so\naccount required pam_permit.so\n"))
    with pytest.raises(AuthUnavailable, match="no such account"):
        backend.authenticate("imapd-no-such-account", "pw")


def test_rhost_is_given_to_pam(system_user, pam_service, tmp_path):
    """pam_exec exports PAM_RHOST: the address reaches the modules (and their logs)."""
    out = tmp_path / "rhost"
    script = tmp_path / "record.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$PAM_RHOST" > {out}\n')
    script.chmod(0o755)
    service = pam_service(
        f"auth optional pam_exec.so quiet {script}\n" + UNIX_SERVICE
    )
    backend = PamBackend(service=service, rhost="192.0.2.7")
    assert backend.authenticate(system_user.name, system_user.password) is not None
    assert Path(out).read_text() == "192.0.2.7"
