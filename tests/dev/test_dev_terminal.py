"""`marketpipe dev` on a terminal (a real pseudo-terminal): the view is redrawn in place with cursor
moves, never with clear-screen escapes, and the start-up log stays above it."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import sys
import time
from pathlib import Path

CLEAR_SCREEN = {"ED2 (erase display)": b"\x1b[2J", "ED3 (erase scroll-back)": b"\x1b[3J",
                "RIS (full reset)": b"\x1bc", "alternate screen": b"\x1b[?1049h"}
VIEW_SECONDS = 20


def run_in_pty(argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:  # child: the terminal is its stdin/stdout/stderr
        os.execve(argv[0], argv, env)
    import fcntl
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            out += data
        else:
            os.kill(pid, signal.SIGINT)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), bytes(out)


def test_dev_view_redraws_in_place_without_clearing_the_screen(cluster, registry_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": registry_url,
           "MARKETPIPE_STATE_DIR": str(tmp_path / "state"), "TERM": "xterm-256color", "COLUMNS": "160",
           "LINES": "50"}
    env.pop("NO_COLOR", None)
    rc, out = run_in_pty([sys.executable, "-m", "marketpipe.cli", "dev", "--venues", "drift",
                          "--duration", str(VIEW_SECONDS)], env, timeout=VIEW_SECONDS + 200)
    text = out.decode(errors="replace")
    assert rc == 0, text[-3000:]
    found = {name: out.count(seq) for name, seq in CLEAR_SCREEN.items() if seq in out}
    assert not found, f"clear-screen escapes in the dev view's output: {found}"
    # the start-up log is printed once, before the first frame, and stays (nothing erases it)
    up = out.index(b"pipeline up in")
    first_frame = out.index(b"marketpipe dev\x1b")  # the header, bold
    assert up < first_frame
    assert out.count(b"starting producer-drift") == 1
    # redrawn in place: several frames, each after cursor-up + erase-line moves over the previous one
    frames = out.count(b"marketpipe dev\x1b")
    assert frames >= 5, f"only {frames} frames in {VIEW_SECONDS}s:\n{text[-3000:]}"
    assert out.count(b"\x1b[1A\x1b[2K") >= frames
    # colours reach the terminal: the producer's state and the book's sync state are drawn green
    assert b"\x1b[32mup" in out and b"\x1b[32min sync" in out, text[-3000:]
    assert "stopped everything" in text
