"""Fetches the broker and registry from Maven Central into a local cache (once), saying every few
seconds how many bytes have arrived and at what rate."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

KAFKA_VERSION = os.environ.get("MARKETPIPE_KAFKA_VERSION", "4.1.1")
APICURIO_VERSION = os.environ.get("MARKETPIPE_APICURIO_VERSION", "3.3.3")  # needs Java 21+
APICURIO_LEGACY_VERSION = "2.6.13.Final"  # Java 11+; used when no Java 21 is installed

Progress = Callable[[str], None]

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>io.marketpipe</groupId><artifactId>kafka-fetch</artifactId><version>1</version>
<dependencies><dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
<version>{version}</version></dependency></dependencies></project>
"""


class FetchError(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("MARKETPIPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "marketpipe"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


_DOWNLOADING = re.compile(r"Downloading from [^:]+: (\S+)")
_DOWNLOADED = re.compile(r"Downloaded from [^:]+: (\S+) \(([\d.,]+) (B|kB|KB|MB|GB) at")
_UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}  # Maven's transfer sizes: powers of 1000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def maven_local_repo() -> Path:
    """Where mvn keeps downloads: MARKETPIPE_MAVEN_REPO (passed to mvn as maven.repo.local) or ~/.m2/repository."""
    return Path(os.environ.get("MARKETPIPE_MAVEN_REPO") or Path.home() / ".m2" / "repository")


class DownloadMeter:
    """Bytes a running mvn has fetched: finished files from its `Downloaded from ...: URL (3.9 kB at ...)`
    lines, files still in flight from their size in the local repository (Maven writes `<file>.part`
    beside the artifact while it downloads, so a single large archive shows progress too)."""

    def __init__(self, local_repo: Path) -> None:
        self.local_repo = local_repo
        self.done_bytes = 0
        self.files_done = 0
        self._in_flight: dict[str, Path | None] = {}  # URL -> local path (None: not found yet)
        self._lock = threading.Lock()

    def feed(self, line: str) -> None:
        line = _ANSI.sub("", line)
        m = _DOWNLOADED.search(line)
        if m:
            size = float(m.group(2).replace(",", "")) * _UNITS[m.group(3)]
            with self._lock:
                self._in_flight.pop(m.group(1), None)
                self.done_bytes += int(size)
                self.files_done += 1
            return
        m = _DOWNLOADING.search(line)
        if m:
            with self._lock:
                self._in_flight[m.group(1)] = None

    def _local_path(self, url: str) -> Path | None:
        """The URL's file in the local repository: the longest URL path suffix whose folder exists there."""
        parts = url.split("://", 1)[-1].split("/")[1:]
        for i in range(len(parts) - 1):
            candidate = self.local_repo.joinpath(*parts[i:])
            if candidate.parent.is_dir():
                return candidate
        return None

    def in_flight_bytes(self) -> int:
        total = 0
        with self._lock:
            urls = list(self._in_flight.items())
        for url, path in urls:
            if path is None:
                path = self._local_path(url)
                if path is None:
                    continue
                with self._lock:
                    if url in self._in_flight:
                        self._in_flight[url] = path
            try:
                total += sum(f.stat().st_size for f in path.parent.glob(path.name + "*") if f.is_file())
            except OSError:
                continue
        return total

    def bytes_so_far(self) -> int:
        return self.done_bytes + self.in_flight_bytes()


def describe_bytes(n: float) -> str:
    for unit, size in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def run_with_progress(argv: list[str], cwd: Path, log: Path, what: str, progress: Progress,
                      meter: DownloadMeter, every: float = 5.0) -> int:
    """Run a download command, its output appended to `log` and fed to `meter`; every `every` seconds
    say how many bytes have arrived and at what rate (so a first run never sits silent for a minute)."""
    t0 = time.monotonic()
    finished = threading.Event()

    def report() -> None:
        last_t, last_bytes = t0, 0
        while not finished.wait(every):
            now, got = time.monotonic(), meter.bytes_so_far()
            rate = (got - last_bytes) / max(now - last_t, 1e-6)
            last_t, last_bytes = now, got
            if got == 0 and meter.files_done == 0:
                progress(f"  {what}: nothing received yet (mvn starting up), {now - t0:.0f}s")
                continue
            progress(f"  {what}: {describe_bytes(got)} so far, {describe_bytes(max(rate, 0))}/s, "
                     f"{meter.files_done} files done, {now - t0:.0f}s")

    ticker = threading.Thread(target=report, name="download-progress", daemon=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ticker.start()
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                out.write(raw)
                meter.feed(raw.decode(errors="replace"))
            rc = proc.wait()
        finally:
            finished.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ticker.join()
    if meter.done_bytes:
        secs = time.monotonic() - t0
        progress(f"  {what}: {describe_bytes(meter.done_bytes)} in {meter.files_done} files, {secs:.1f}s "
                 f"({describe_bytes(meter.done_bytes / max(secs, 1e-6))}/s)")
    return rc


def _mvn(args: list[str], cwd: Path, log: Path, what: str, progress: Progress) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError("Maven (mvn) is not installed: it is needed once to fetch Kafka and Apicurio")
    repo_opt = [f"-Dmaven.repo.local={os.environ['MARKETPIPE_MAVEN_REPO']}"] if os.environ.get("MARKETPIPE_MAVEN_REPO") else []
    # -B without -q: Maven prints a line per finished transfer, which the meter reads
    rc = run_with_progress([mvn, "-B", *repo_opt, *args], cwd, log, what, progress, DownloadMeter(maven_local_repo()))
    if rc != 0:
        raise FetchError(f"mvn {' '.join(args[:1])} failed (exit {rc}); see {log}")


def kafka_libs(progress: Progress = print) -> Path:
    """Directory holding the broker's runtime classpath (kafka_2.13 and its dependencies)."""
    target = cache_dir() / f"kafka-{KAFKA_VERSION}" / "libs"
    if (target.parent / ".complete").exists():
        return target
    t0 = time.monotonic()
    progress(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (first run only)...")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pom.xml").write_text(_POM.format(version=KAFKA_VERSION))
        staging = Path(tmp) / "libs"
        _mvn(
            ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
            Path(tmp),
            cache_dir() / "fetch.log",
            f"Kafka {KAFKA_VERSION}",
            progress,
        )
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), target)
    (target.parent / ".complete").write_text(KAFKA_VERSION)
    progress(f"fetched Kafka {KAFKA_VERSION}: {len(list(target.glob('*.jar')))} jars in {time.monotonic() - t0:.1f}s")
    return target


def apicurio_home(version: str = APICURIO_VERSION, progress: Progress = print) -> Path:
    """Unpacked Apicurio Registry app (quarkus-run.jar for 3.x, *-runner.jar for 2.x)."""
    home = cache_dir() / f"apicurio-{version}"
    if (home / ".complete").exists():
        return home
    t0 = time.monotonic()
    progress(f"fetching Apicurio Registry {version} from Maven Central (first run only)...")
    with tempfile.TemporaryDirectory() as tmp:
        _mvn(
            ["dependency:copy", f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
             f"-DoutputDirectory={tmp}"],
            Path(tmp),
            cache_dir() / "fetch.log",
            f"Apicurio {version}",
            progress,
        )
        archive = next(Path(tmp).glob("*.tar.gz"))
        if home.exists():
            shutil.rmtree(home)
        home.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            tar.extractall(home, filter="data")
    (home / ".complete").write_text(version)
    progress(f"fetched Apicurio {version} in {time.monotonic() - t0:.1f}s")
    return home


def apicurio_command(home: Path) -> list[str]:
    run = home / "quarkus-run.jar"
    if run.exists():
        return ["-jar", str(run)]
    runners = sorted(home.rglob("*-runner.jar"))
    if runners:
        return ["-jar", str(runners[0])]
    raise FetchError(f"no runnable jar under {home}")
