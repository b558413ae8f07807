"""Runs the parts of the local pipeline as child processes: start them (from several threads at once when
they are independent), wait until each answers, name the failing part with its log path, and stop
everything (process groups) on exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from marketpipe.infra.ports import port_open
from marketpipe.infra.processes import pid_alive, stop_pid

Progress = Callable[[str], None]


class ComponentFailed(RuntimeError):
    def __init__(self, name: str, log: Path, why: str) -> None:
        tail = ""
        if log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        super().__init__(f"{name} {why}; log: {log}\n--- last lines of {log.name} ---\n{tail}")
        self.name = name
        self.log = log


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None  # answers HTTP 200 when ready
    ready_port: int | None = None  # or: accepts TCP connections when ready
    ready_timeout: float = 60.0
    announces: bool = False  # prints one JSON line (URLs, tokens) once listening: read into .info
    pid: int | None = None
    log: Path | None = None
    info: dict[str, object] = field(default_factory=dict)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when `marketpipe dev` dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: Ctrl-C / SIGTERM still stop everything through stop_all()
        pass


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _first_json_line(log: Path) -> dict[str, object]:
    import json

    try:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    return dict(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        pass
    return {}


class Supervisor:
    def __init__(self, logdir: Path, progress: Progress = print) -> None:
        self.logdir = logdir
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.components: list[Component] = []
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()  # start() runs in several threads at once (one per venue)
        self._stopping = False

    def start(self, comp: Component) -> Component:
        comp.log = self.logdir / f"{comp.name}.log"
        env = {**os.environ, **comp.env, "PYTHONUNBUFFERED": "1"}
        t0 = time.monotonic()
        out = comp.log.open("ab")
        with self._lock:  # stop_all() either sees this process or this start is refused: nothing escapes it
            if self._stopping:
                raise ComponentFailed(comp.name, comp.log, "not started: stopping")
            proc = subprocess.Popen(comp.argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
            comp.pid = proc.pid
            self._procs[comp.name] = proc
            self.components.append(comp)
        self._wait_ready(comp, proc)
        self.progress(f"{comp.name} ready in {time.monotonic() - t0:.1f}s (pid {proc.pid}, log {comp.log})")
        return comp

    def _wait_ready(self, comp: Component, proc: subprocess.Popen[bytes]) -> None:
        assert comp.log is not None
        deadline = time.monotonic() + comp.ready_timeout
        while time.monotonic() < deadline:
            if self._stopping:
                raise ComponentFailed(comp.name, comp.log, "start-up abandoned: stopping")
            if proc.poll() is not None:
                raise ComponentFailed(comp.name, comp.log, f"exited with code {proc.returncode} during start-up")
            if comp.announces and not comp.info:
                comp.info = _first_json_line(comp.log)
                if not comp.info:
                    time.sleep(0.1)
                    continue
            if comp.ready_url is None and comp.ready_port is None:
                return
            if comp.ready_port is not None and port_open(comp.ready_port):
                if comp.ready_url is None:
                    return
            if comp.ready_url is not None:
                try:
                    with urllib.request.urlopen(comp.ready_url, timeout=1) as resp:
                        if resp.status == 200:
                            return
                except OSError:
                    pass
            time.sleep(0.2)
        raise ComponentFailed(comp.name, comp.log, f"not ready within {comp.ready_timeout:.0f}s")

    def failed(self) -> list[ComponentFailed]:
        out = []
        with self._lock:
            running = [(c, self._procs[c.name]) for c in self.components]
        for comp, proc in running:
            if proc.poll() is not None:
                assert comp.log is not None
                out.append(ComponentFailed(comp.name, comp.log, f"exited with code {proc.returncode}"))
        return out

    def stop_all(self) -> None:
        with self._lock:
            self._stopping = True
            started = list(self.components)
        for comp in started:  # everything gets SIGTERM at once: the parts shut down in parallel
            proc = self._procs.get(comp.name)
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
        for comp in reversed(started):
            proc = self._procs.get(comp.name)
            if proc is not None and proc.poll() is None:
                stop_pid(proc.pid, timeout=15)
            if proc is not None:
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        alive = [c.name for c in self.components if c.pid and pid_alive(c.pid)]
        if alive:
            self.progress(f"WARNING: still alive after stop: {alive}")
        with self._lock:
            self.components.clear()
            self._procs.clear()
