"""Who is on the other end of standard input, for logs and the plaintext-login rule.

imapd is started by inetd/xinetd/systemd (a TCP socket on stdin), by ssh (pipes or
a socketpair, with SSH_CONNECTION in the environment), by tcpserver-like wrappers
(TCPREMOTEIP) or tcpd (REMOTE_HOST), from a terminal, or by a local program over
pipes.  `describe_peer()` tells these apart without consuming or closing anything.

`is_secure_local` says whether a password may be sent without TLS, as Dovecot
allows: on loopback and AF_UNIX sockets nobody can sniff the line; under ssh the
channel is already encrypted; a terminal or a pipe is a local user or program.
"""

from __future__ import annotations

import posix
import _stat  # (the C module behind `stat`: stat.py itself is one more file to find and run)

from .record import Record

TYPE_CHECKING = False  # _socket, ipaddress and typing are imported only when needed
if TYPE_CHECKING:
    import ipaddress
    from typing import Iterable, Literal, Mapping

    PeerKind = Literal["socket", "ssh", "tty", "pipe"]

__all__ = ["Peer", "address_in_networks", "describe_peer", "is_loopback"]


class Peer(Record):
    """The client as far as we can tell: for logs, PAM_RHOST and the TLS rule."""

    __slots__ = ('kind', 'address', 'port', 'is_secure_local')
    _defaults = {'address': None, 'port': None, 'is_secure_local': False}

    kind: PeerKind
    address: str | None
    port: int | None
    is_secure_local: bool

    def is_secure(self, secure_networks: Iterable[str] = ()) -> bool:
        """Whether plaintext login is fine without TLS: local, or in a trusted network."""
        if self.is_secure_local:
            return True
        return self.address is not None and address_in_networks(self.address, secure_networks)

    def __str__(self) -> str:
        if self.address is None:
            return self.kind
        if self.port is None:
            return self.address
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 scope id
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and ::ffff:127.x.y.z; host names are never trusted.

    With `_socket.inet_pton`, not `ipaddress`: a TCP connection asks this
    before its greeting, and `ipaddress` would cost it milliseconds of import."""
    import _socket

    host = address.split("%", 1)[0]  # an IPv6 scope id
    v6 = ":" in host
    try:
        packed = _socket.inet_pton(_socket.AF_INET6 if v6 else _socket.AF_INET, host)
    except (OSError, ValueError):
        return False
    if not v6:  # dotted quad, and only in its plain form (as ipaddress accepts it)
        return packed[0] == 127 and _socket.inet_ntop(_socket.AF_INET, packed) == host
    if packed[:12] == _V4_MAPPED:
        return packed[12] == 127
    return packed == _V6_LOOPBACK


_V4_MAPPED = bytes(10) + b"\xff\xff"
_V6_LOOPBACK = bytes(15) + b"\x01"


def address_in_networks(address: str, networks: Iterable[str]) -> bool:
    """Whether an IP address lies in one of the CIDR networks (`[auth] secure_networks`).

    A network that does not parse raises ValueError: the configuration loader
    should check them up front with `ipaddress.ip_network(n, strict=False)`.
    """
    ip = _ip(address)
    if ip is None:
        return False
    import ipaddress

    for network in networks:
        net = ipaddress.ip_network(network, strict=False)
        if ip.version == net.version and ip in net:
            return True
    return False


def _socket_peer(fd: int) -> tuple[int, object] | None:
    """(family, peer address) of the socket on `fd`, or None if it is no socket.

    Works on a duplicate of the descriptor, so closing it leaves `fd` open and the
    connection untouched (close on a dup never shuts the connection down).
    """
    try:
        if not _stat.S_ISSOCK(posix.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    import _socket  # (not `socket`: its enums and selectors cost every connection milliseconds)

    dup = posix.dup(fd)
    try:
        sock = _socket.socket(fileno=dup)
    except OSError:
        posix.close(dup)
        return None
    try:
        family = sock.family
        try:
            return family, sock.getpeername()
        except OSError:  # not connected (listening, datagram)
            return family, None
    finally:
        sock.close()


def _env_address(environ: Mapping[str, str]) -> tuple[str, int | None] | None:
    """Client address set by tcpserver (TCPREMOTEIP) or tcpd/xinetd (REMOTE_HOST)."""
    for addr_key, port_key in (("TCPREMOTEIP", "TCPREMOTEPORT"), ("REMOTE_HOST", "REMOTE_PORT")):
        address = environ.get(addr_key, "").strip()
        if address:
            port_text = environ.get(port_key, "").strip()
            return address, int(port_text) if port_text.isdigit() else None
    return None


def _environment() -> dict[str, str]:
    """The variables describe_peer reads, from `posix.environ` (bytes) as
    `os.environ` would give them: `os` itself is not loaded before a first
    command (see imapd._absolute)."""
    found = {}
    for name in ("SSH_CONNECTION", "TCPREMOTEIP", "TCPREMOTEPORT", "REMOTE_HOST", "REMOTE_PORT"):
        value = posix.environ.get(name.encode())
        if value is not None:
            found[name] = value.decode("utf-8", "surrogateescape")
    return found


def describe_peer(fd: int = 0, environ: Mapping[str, str] | None = None) -> Peer:
    """Describe the client on `fd` (standard input by default).

    Order: a TCP socket's own peer address beats everything; then SSH_CONNECTION;
    then addresses a wrapper put in the environment; then an AF_UNIX socket; then a
    terminal; anything else is a pipe (or a file: a local program in either case).
    """
    if environ is None:
        environ = _environment()
    found = _socket_peer(fd)
    if found is not None:
        import _socket

        family, peer = found
        if family in (_socket.AF_INET, _socket.AF_INET6) and isinstance(peer, tuple):
            address, port = str(peer[0]), int(peer[1])
            return Peer("socket", address, port, is_loopback(address))

    ssh = environ.get("SSH_CONNECTION", "").split()
    if len(ssh) >= 2:
        port = int(ssh[1]) if ssh[1].isdigit() else None
        return Peer("ssh", ssh[0], port, True)

    from_env = _env_address(environ)
    if from_env is not None:
        address, port = from_env
        return Peer("socket", address, port, is_loopback(address))

    if found is not None:
        family, peer = found
        if family == _socket.AF_UNIX:  # noqa: F821 - imported above when found
            if isinstance(peer, bytes):  # an abstract-namespace name
                peer = peer.decode("utf-8", "replace")
            return Peer("socket", peer or None, None, True)
        # Another family (vsock, ...): we cannot tell who it is, so trust nothing.
        return Peer("socket", None, None, False)

    try:
        if posix.isatty(fd):
            return Peer("tty", None, None, True)
    except OSError:
        pass
    return Peer("pipe", None, None, True)
