"""Fetches the broker and registry from Maven Central into a local cache (once)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
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


def _mvn(args: list[str], cwd: Path, log: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError("Maven (mvn) is not installed: it is needed once to fetch Kafka and Apicurio")
    with log.open("ab") as out:
        rc = subprocess.run([mvn, "-B", "-q", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
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
