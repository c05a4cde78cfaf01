"""describe_peer on real sockets, pipes and terminals."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapd.peer import Peer, address_in_networks, describe_peer, is_loopback


def assert_still_open(sock_a: socket.socket, sock_b: socket.socket) -> None:
    """describe_peer must leave the descriptor and the connection working."""
    sock_b.sendall(b"ping")
    assert sock_a.recv(4) == b"ping"
    sock_a.sendall(b"pong")
    assert sock_b.recv(4) == b"pong"


def test_unix_socketpair_is_secure():
    a, b = socket.socketpair()
    with a, b:
        peer = describe_peer(a.fileno(), environ={})
        assert peer == Peer("socket", None, None, True)
        assert_still_open(a, b)


def test_named_unix_socket(tmp_path):
    path = str(tmp_path / "sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.bind(str(tmp_path / "client"))
            client.connect(path)
            conn, _ = server.accept()
            with conn:
                peer = describe_peer(conn.fileno(), environ={})
                assert peer.kind == "socket" and peer.is_secure_local
                assert peer.address == str(tmp_path / "client")


def tcp_pair(family: int, host: str) -> tuple[socket.socket, socket.socket]:
    with socket.socket(family) as listener:
        listener.bind((host, 0))
        listener.listen()
        client = socket.socket(family)
        client.connect(listener.getsockname()[:2])
        conn, _ = listener.accept()
        return conn, client


def test_tcp_loopback_v4():
    conn, client = tcp_pair(socket.AF_INET, "127.0.0.1")
    with conn, client:
        peer = describe_peer(conn.fileno(), environ={"SSH_CONNECTION": "192.0.2.1 5 192.0.2.2 22"})
        assert peer == Peer("socket", "127.0.0.1", client.getsockname()[1], True)
        assert str(peer) == f"127.0.0.1:{client.getsockname()[1]}"
        assert_still_open(conn, client)


def test_tcp_loopback_v6():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        conn, client = tcp_pair(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no ::1 on this machine")
    with conn, client:
        peer = describe_peer(conn.fileno(), environ={})
        assert peer.kind == "socket" and peer.address == "::1" and peer.is_secure_local
        assert str(peer).startswith("[::1]:")


def test_ssh_connection_on_pipes():
    r, w = os.pipe()
    try:
        peer = describe_peer(r, environ={"SSH_CONNECTION": "203.0.113.9 50123 198.51.100.1 22"})
        assert peer == Peer("ssh", "203.0.113.9", 50123, True)
    finally:
        os.close(r)
        os.close(w)


def test_ssh_over_a_unix_socketpair():
    """sshd may hand the command a socketpair: SSH_CONNECTION still wins over AF_UNIX."""
    a, b = socket.socketpair()
    with a, b:
        peer = describe_peer(a.fileno(), environ={"SSH_CONNECTION": "2001:db8::1 4711 2001:db8::2 22"})
        assert peer == Peer("ssh", "2001:db8::1", 4711, True)


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"REMOTE_HOST": "198.51.100.4"}, Peer("socket", "198.51.100.4", None, False)),
        ({"REMOTE_HOST": "127.0.0.1", "REMOTE_PORT": "999"}, Peer("socket", "127.0.0.1", 999, True)),
        ({"REMOTE_HOST": "localhost"}, Peer("socket", "localhost", None, False)),
        ({"TCPREMOTEIP": "::ffff:127.0.0.2", "TCPREMOTEPORT": "4"}, Peer("socket", "::ffff:127.0.0.2", 4, True)),
    ],
)
def test_wrapper_environment(environ, expected):
    r, w = os.pipe()
    try:
        assert describe_peer(r, environ=environ) == expected
    finally:
        os.close(r)
        os.close(w)


def test_pipe_and_tty():
    r, w = os.pipe()
    try:
        assert describe_peer(r, environ={}) == Peer("pipe", None, None, True)
    finally:
        os.close(r)
        os.close(w)
    master, slave = os.openpty()
    try:
        assert describe_peer(slave, environ={}) == Peer("tty", None, None, True)
    finally:
        os.close(master)
        os.close(slave)


def test_closed_descriptor_is_a_pipe():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    assert describe_peer(r, environ={}).kind == "pipe"


@pytest.mark.parametrize(
    "address, loopback",
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:192.0.2.1", False),
        ("192.0.2.1", False),
        ("fe80::1%eth0", False),
        ("localhost", False),
        ("", False),
    ],
)
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def _loopback_by_ipaddress(address: str) -> bool:
    """The reference: what `ipaddress` says (as imapd did before it avoided the import)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1", "127.0.0.01", "0127.0.0.1", "127.0.0.1 ", " 127.0.0.1", "127.0.0.1.", "127.0.0.256",
    "128.0.0.1", "126.255.255.255", "0.0.0.0", "::1", "::01", "0:0:0:0:0:0:0:1", "::0:1", "::", "::2",
    "::ffff:127.0.0.1", "::FFFF:127.9.9.9", "::ffff:7f00:1", "::ffff:127.0.0.01", "::127.0.0.1",
    "0:0:0:0:0:ffff:127.0.0.1", "::1%lo", "fe80::1%eth0", "::1/128", "127.0.0.1/8", "[::1]", "::1:",
    "localhost", "1", "", "%", "\u0661\u0662\u0667.0.0.1", "127.0.0.1\x00",
])
def test_is_loopback_agrees_with_ipaddress(address):
    assert is_loopback(address) is _loopback_by_ipaddress(address)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.ip_addresses().map(str),
    st.text(alphabet="0123456789abcdef:.%f", max_size=45),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.sampled_from(["0", "1", "127", "255", "01", "256", "00"])] * 4),
))
def test_is_loopback_agrees_with_ipaddress_on_generated_addresses(address):
    assert is_loopback(address) is _loopback_by_ipaddress(address)


def test_secure_networks():
    assert address_in_networks("10.1.2.3", ["192.168.0.0/16", "10.0.0.0/8"])
    assert address_in_networks("::ffff:10.1.2.3", ["10.0.0.0/8"])
    assert not address_in_networks("10.1.2.3", ["2001:db8::/32"])
    assert address_in_networks("2001:db8::5", ["2001:db8::/32"])
    assert not address_in_networks("not-an-ip", ["0.0.0.0/0"])
    remote = Peer("socket", "10.1.2.3", 143, False)
    assert not remote.is_secure()
    assert remote.is_secure(["10.0.0.0/8"])
    assert Peer("socket", None, None, False).is_secure(["0.0.0.0/0"]) is False
    with pytest.raises(ValueError):
        address_in_networks("10.1.2.3", ["not a network"])
