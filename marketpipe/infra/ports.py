"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (IPv4 and IPv6), from /proc/net/tcp*; empty where /proc is absent."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        except OSError:
            continue
    return inodes


def owns_listener(pid: int, port: int) -> bool:
    """True when process ``pid`` holds the socket listening on ``port``: a free port picked for a child can be
    taken by another process between the pick and the child's bind, and then *that* process answers.
    True as well where /proc cannot tell (not Linux)."""
    import os

    inodes = listening_inodes(port)
    if not inodes:
        return not os.path.exists("/proc/net/tcp")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return not os.path.exists("/proc/net/tcp")
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False
