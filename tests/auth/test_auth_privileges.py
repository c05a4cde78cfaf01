"""drop_privileges in a forked child running as root (the parent stays root)."""

from __future__ import annotations

import json
import os
import traceback
from typing import Any, Callable

import pytest

from imapd.auth.base import User
from imapd.auth.privileges import PrivilegeError, drop_privileges, expected_groups


def in_child(fn: Callable[[], Any]) -> Any:
    """Run fn in a forked child and return its JSON result, or raise what it raised."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 0
        try:
            os.close(read_end)
            try:
                result = {"ok": fn()}
            except BaseException as exc:  # report everything to the parent
                result = {"error": type(exc).__name__, "message": str(exc), "tb": traceback.format_exc()}
            os.write(write_end, json.dumps(result).encode())
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result = json.loads(b"".join(chunks))
    if "error" in result:
        if result["error"] == "PrivilegeError":
            raise PrivilegeError(result["message"])
        raise AssertionError(f"child raised {result['error']}: {result['message']}\n{result['tb']}")
    return result["ok"]


def state() -> dict[str, Any]:
    """What the process is now, and whether it can become root again."""
    regained = []
    for name in ("setuid", "seteuid", "setgid", "setegid", "setreuid", "setresuid"):
        fn = getattr(os, name)
        args = {"setreuid": (0, 0), "setresuid": (0, 0, 0)}.get(name, (0,))
        try:
            fn(*args)
            regained.append(name)
        except PermissionError:
            pass
    can_read_shadow = os.access("/etc/shadow", os.R_OK)
    return {
        "resuid": list(os.getresuid()),
        "resgid": list(os.getresgid()),
        "groups": sorted(os.getgroups()),
        "regained": regained,
        "can_read_shadow": can_read_shadow,
    }


def test_drop_to_a_system_account_uses_initgroups(system_user):
    user = User(system_user.name, system_user.uid, system_user.gid, system_user.home, "/x")

    def child():
        drop_privileges(user)
        return state()

    got = in_child(child)
    assert got["resuid"] == [system_user.uid] * 3
    assert got["resgid"] == [system_user.gid] * 3
    assert got["groups"] == sorted({system_user.gid, system_user.extra_gid})
    assert got["regained"] == []
    assert got["can_read_shadow"] is False
    assert os.geteuid() == 0  # the parent is untouched


def test_virtual_user_gets_only_its_gid(system_user):
    """A name that is not a system account with that uid must not get its groups."""
    user = User(system_user.name, system_user.uid + 1000, system_user.gid, "/h", "/x")
    assert expected_groups(user) == [system_user.gid]

    def child():
        drop_privileges(user)
        return state()

    got = in_child(child)
    assert got["resuid"] == [system_user.uid + 1000] * 3
    assert got["groups"] == [system_user.gid]
    assert got["regained"] == []


def test_explicit_groups(system_user):
    user = User("virtual", 40001, 40002, "/h", "/x", groups=(40003, 40004))

    def child():
        drop_privileges(user)
        return state()

    got = in_child(child)
    assert got["resgid"] == [40002] * 3
    assert got["groups"] == [40002, 40003, 40004]
    assert got["regained"] == []


@pytest.mark.parametrize(
    "user, message",
    [
        (User("root", 0, 0, "/root", "/x"), "uid 0"),
        (User("x", 1000, 0, "/h", "/x"), "gid 0"),
        (User("x", -1, -1, "", "", referral="imap://elsewhere/"), "uid -1"),
        (User("x", 1000, 1000, "/h", "/x", groups=(0,)), "group 0"),
    ],
)
def test_refuses_root_and_invalid_targets(user, message):
    with pytest.raises(PrivilegeError, match=message):
        drop_privileges(user)
    assert os.getresuid() == (os.getuid(),) * 3  # nothing was changed


def test_already_the_user_is_fine_but_another_user_is_refused(system_user):
    """Under ssh we run as the user already; switching to someone else must fail."""
    user = User(system_user.name, system_user.uid, system_user.gid, system_user.home, "/x")
    other = User("other", system_user.uid + 1, system_user.gid, "/h", "/x")

    def child():
        drop_privileges(user)
        drop_privileges(user)  # second time: nothing to do, still verified
        try:
            drop_privileges(other)
        except PrivilegeError as exc:
            return str(exc)
        return None

    message = in_child(child)
    assert message is not None and "not root" in message
