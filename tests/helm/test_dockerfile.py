"""The image recipe, checked without a Docker engine: what it copies exists and survives .dockerignore, the
package it installs from that context carries everything the chart's commands need, and it runs as the
non-root user the chart's securityContext names."""

from __future__ import annotations

import fnmatch
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from processors.settings import ProcessorSettings
from tests.helm.chart import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def ignored(rel: Path, patterns: list[str]) -> bool:
    """Docker's rule: a path is excluded when it, or a parent directory, matches a pattern."""
    parts = rel.parts
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        for pat in patterns:
            if fnmatch.fnmatch(prefix, pat) or (pat.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pat[3:])):
                return True
    return False


def context_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from=<stage>)."""
    out = []
    for word, args in instructions():
        if word != "COPY" or "--from=" in args:
            continue
        tokens = [t for t in shlex.split(args) if not t.startswith("--")]
        out.append((tokens[:-1], tokens[-1]))
    return out


def test_base_image_is_python_311_slim_for_every_stage() -> None:
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in instructions() if w == "ARG" and "=" in a}
    froms = [a.split()[0] for w, a in instructions() if w == "FROM"]
    assert len(froms) == 2  # build stage + runtime stage (no compilers in the final image)
    for image in froms:
        resolved = args.get(image.strip("${}"), image)
        assert resolved == "python:3.11-slim", image


def test_runs_as_the_non_root_user_the_chart_expects() -> None:
    final = stages()[-1]
    users = [a for w, a in final if w == "USER"]
    assert users, "the final stage sets no USER: the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0  # numeric: runAsNonRoot can verify
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    assert values["podSecurityContext"]["fsGroup"] == int(gid)  # RocksDB volumes writable by that group
    run = " ".join(a for w, a in final if w == "RUN")
    assert f"--uid {uid}" in run and f"--gid {gid}" in run


def test_entrypoint_is_the_marketpipe_console_script() -> None:
    final = stages()[-1]
    (entry,) = [a for w, a in final if w == "ENTRYPOINT"]
    assert yaml.safe_load(entry) == ["marketpipe"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["marketpipe"] == "marketpipe.cli:main"
    build = " ".join(a for w, a in stages()[0] if w == "RUN")
    assert 'pip install "."' in build
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("rocksdict") for d in deps)  # the processors' rocksdb:// store is in the image


def test_data_dir_matches_chart_and_processor_settings() -> None:
    run = " ".join(a for w, a in stages()[-1] if w == "RUN")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    data_dir = values["processors"]["dataDir"]
    assert data_dir == ProcessorSettings.model_fields["processor_data_dir"].default
    assert f"mkdir -p {data_dir}" in run


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    patterns = ignore_patterns()
    copies = context_copies()
    assert copies
    for sources, _dest in copies:
        for src in sources:
            path = REPO / src
            assert path.exists(), f"COPY {src}: not in the repository"
            assert not ignored(Path(src), patterns), f"COPY {src}: excluded by .dockerignore"
    for secret_like in (".git", ".venv", "tests", ".env"):
        assert ignored(Path(secret_like), patterns), f"{secret_like} would be sent to the Docker daemon"


def build_context(dest: Path) -> None:
    """What the Dockerfile's COPY instructions put into /src (sources filtered by .dockerignore)."""
    patterns = ignore_patterns()
    for sources, target in context_copies():
        for src in sources:
            path = REPO / src
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for f in files:
                rel = f.relative_to(REPO)
                if ignored(rel, patterns):
                    continue
                out = dest / (rel if target in ("./", ".") or target.endswith("/") else Path(target.lstrip("./")) /
                              f.relative_to(path))
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, out)


@pytest.mark.timeout(180)
def test_package_built_from_the_image_context_has_what_the_chart_runs(tmp_path: Path) -> None:
    import importlib.util

    for tool in ("setuptools", "wheel"):  # the build backend, used offline (--no-build-isolation)
        assert importlib.util.find_spec(tool), f"building the wheel offline needs `{tool}` (test extras)"
    ctx, wheels = tmp_path / "src", tmp_path / "wheels"
    build_context(ctx)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(wheels), str(ctx)], capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = wheels.glob("marketpipe-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("marketpipe/cli.py", "marketpipe/settings.py", "processors/__init__.py", "processors/worker.py",
                   "producers/publisher.py", "producers/core/settings.py", "schemas/registry.py"):
        assert needed in names, needed
    for avsc in (REPO / "schemas" / "avro").glob("*.avsc"):  # `schemas register` reads them from the package
        assert f"schemas/avro/{avsc.name}" in names
    # every venue package present in the repository ships (what `marketpipe produce <venue>` imports)
    from marketpipe.venues import VENUES

    for package in {v.producer for v in VENUES}:
        assert f"producers/{package}/__init__.py" in names, package
    # the web view's page and its vendored chart library are package data: nothing to fetch at run time
    for static in (REPO / "processors" / "webui_static").iterdir():
        assert f"processors/webui_static/{static.name}" in names, static.name
    assert not any(n.startswith(("tests/", "simulators/")) for n in names)  # no test doubles in the image
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "marketpipe = marketpipe.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_dockerignore_matcher_is_not_vacuous() -> None:
    patterns = ignore_patterns()
    assert ignored(Path("producers/core/__pycache__/x.pyc"), patterns)
    assert not ignored(Path("producers/core/settings.py"), patterns)
