"""ProcessorProcess: one `python -m processors` worker as a subprocess with its own web port (tests and
benchmarks start, kill -9 and stop workers with it)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from marketpipe.infra.ports import free_port

REPO = Path(__file__).resolve().parents[2]


class ProcessorProcess:
    """One `python -m processors` subprocess with its own web port; stops by itself at the end of a test."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "MARKETPIPE_PROCESSOR_WEB_PORT": str(self.port)}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "processors"], env=self.env, cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT)
        return self

    async def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Ready = assigned, recovered, and the stream fetcher has run (ticks consumed), so a consumer
        starting at 'latest' has fixed its positions before the test produces."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, f"worker died: see {self.log_path}"
                try:
                    async with http.get(f"{self.url}/processor/ready") as r:
                        ready = await r.json()
                    if r.status == 200:
                        async with http.get(f"{self.url}/processor/stats", headers=self.auth_headers()) as r:
                            stats = await r.json()
                        if stats["ticks_seen"] > 0:
                            return ready
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"worker on {self.url} not ready after {timeout}s; log {self.log_path}")

    def auth_headers(self) -> dict[str, str]:
        """The bearer token of the worker's query API, if it has one (its env)."""
        token = self.env.get("MARKETPIPE_PROCESSOR_QUERY_TOKEN")
        return {"Authorization": f"Bearer {token}"} if token else {}

    def alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"worker died: see {self.log_path}"

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
