"""ServiceProcess: run a container's command from a rendered manifest as a local process with exactly the
environment the chart gives it, and probe it over HTTP the way kubelet would.

The container's ``marketpipe`` command runs as ``python -m marketpipe.cli`` from the repository root (the
image installs the package; here the sources are imported from the checkout, which does not depend on
how fresh the venv's editable-install mapping is). The environment holds the resolved container env plus
PATH, HOME and LANG (what the image provides), nothing else from the test process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.helm.chart import REPO


def command_line(container: dict[str, Any]) -> list[str]:
    command, args = list(container.get("command") or []), list(container.get("args") or [])
    assert command[:1] == ["marketpipe"], f"unexpected container command {command}"
    return [sys.executable, "-m", "marketpipe.cli", *command[1:], *args]


def process_env(container_env: dict[str, str], home: Path) -> dict[str, str]:
    env = {"PATH": f"{Path(sys.prefix) / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    env.update(container_env)
    return env


class ServiceProcess:
    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(*self.argv, env=self.env, stdout=log, stderr=log, cwd=REPO,
                                                         stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    async def wait_http(self, url: str, *, timeout: float, status: int = 200) -> str:
        """Poll ``url`` until it answers ``status`` (as a probe would); fail if the process exits first."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"{self.argv} exited {self.proc.returncode} before {url} answered:\n"
                                         f"{self.log()}")
                try:
                    async with http.get(url) as resp:
                        body = await resp.text()
                        if resp.status == status:
                            return body
                        last = f"{resp.status} {body[:200]}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = repr(exc)
                await asyncio.sleep(0.3)
        raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last}):\n{self.log()}")

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM (what kubelet sends), then SIGKILL after ``timeout``; returns the exit code."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                raise AssertionError(f"{self.argv} ignored SIGTERM for {timeout}s:\n{self.log()}") from None
        return int(self.proc.returncode or 0)

    async def run_to_end(self, timeout: float) -> int:
        await self.start()
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"{self.argv} still running after {timeout}s:\n{self.log()}") from None
