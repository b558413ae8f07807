"""Finding a Java runtime: Kafka 4.x needs 17+, Apicurio Registry 3.3 needs 21+."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path


@cache
def java_version(java: str) -> int:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return 0
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def candidates() -> list[str]:
    found: list[str] = []
    for env in ("MARKETPIPE_JAVA_HOME", "JAVA_HOME"):
        home = os.environ.get(env)
        if home and (Path(home) / "bin" / "java").exists():
            found.append(str(Path(home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        found.append(on_path)
    for root in (Path("/usr/lib/jvm"), Path("/opt/java"), Path("/usr/local/lib/jvm")):
        if root.is_dir():
            found.extend(str(p / "bin" / "java") for p in sorted(root.iterdir()) if (p / "bin" / "java").exists())
    return list(dict.fromkeys(found))


def find_java(min_version: int) -> str | None:
    """The lowest Java >= min_version (older runtimes are the tested path), or None."""
    usable = [(java_version(j), j) for j in candidates()]
    usable = [(v, j) for v, j in usable if v >= min_version]
    return min(usable)[1] if usable else None
