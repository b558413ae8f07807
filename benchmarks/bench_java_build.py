"""What the JVM consumer proof (examples/java) costs CI: a cold Maven build (empty local repository, every
artifact from Maven Central) and a warm one (offline, the repository CI keeps between runs on a machine).

    python benchmarks/bench_java_build.py [--repo /tmp/m2-bench] [--keep] [--warm-only]

Printed per build: wall seconds, CPU seconds of Maven and its children (user+sys), the load average beside
it, and the size of the local repository. The peer measured in the same run is `mvn -v` (Maven's own
start-up, the floor under any build on this machine at this load).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1] / "examples" / "java"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    rc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, rc


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=None, help="local repository to start empty (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the local repository afterwards")
    parser.add_argument("--warm-only", action="store_true", help="reuse --repo as it is (after a cold run with --keep)")
    args = parser.parse_args()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SystemExit("mvn not found")
    repo = args.repo or Path(tempfile.mkdtemp(prefix="m2-bench-"))
    if args.warm_only and args.repo is None:
        raise SystemExit("--warm-only needs --repo")
    if not args.warm_only:
        shutil.rmtree(repo, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "java"
        shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("target"))
        local = f"-Dmaven.repo.local={repo}"
        rows = []
        builds = [("peer: mvn -v (Maven start-up)", [mvn, "-v"])]
        if not args.warm_only:
            builds.append(("cold: empty local repository, online", [mvn, "-q", "-B", local, "package"]))
        builds += [("warm: same repository, offline (-o)", [mvn, "-q", "-B", "-o", local, "package"]),
                   ("warm again", [mvn, "-q", "-B", "-o", local, "package"])]
        for label, cmd in builds:
            shutil.rmtree(project / "target", ignore_errors=True)  # every build from a fresh checkout's state
            load = os.getloadavg()[0]
            wall, cpu, rc = timed(cmd, project)
            if rc != 0:
                raise SystemExit(f"{label}: exit {rc}")
            rows.append((label, wall, cpu, load))
            print(f"{label:40s} wall {wall:6.1f} s  cpu {cpu:6.1f} s  load1 {load:5.1f}", flush=True)
        print(f"local repository after the builds: {size_mb(repo):.0f} MB; "
              f"runtime classpath target/lib: {size_mb(project / 'target' / 'lib'):.0f} MB "
              f"({len(list((project / 'target' / 'lib').glob('*.jar')))} jars)")
    if not args.keep:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
