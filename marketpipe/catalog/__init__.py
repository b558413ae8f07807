"""The topic catalog generated from the code: `docs/asyncapi.json` (AsyncAPI 3) and `docs/topics.md`.

`marketpipe schemas asyncapi` writes both; `--check` (and tests/catalog) fail when a committed copy is stale.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
ASYNCAPI_FILE = "asyncapi.json"
MARKDOWN_FILE = "topics.md"


def package_version() -> str:
    """The project's version from the source tree's pyproject.toml (else the installed metadata)."""
    pyproject = DOCS_DIR.parent / "pyproject.toml"
    if pyproject.exists():
        import tomllib

        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    try:
        return version("marketpipe")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def render_all() -> dict[str, str]:
    """File name -> content of every generated catalog file."""
    from marketpipe.catalog import asyncapi, markdown

    return {ASYNCAPI_FILE: asyncapi.render_json(asyncapi.document(package_version())),
            MARKDOWN_FILE: markdown.render()}


def write(out_dir: Path = DOCS_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = out_dir / name
        path.write_text(text)
        written.append(path)
    return written


def stale(out_dir: Path = DOCS_DIR) -> list[str]:
    """Generated files whose committed copy under out_dir differs from a fresh rendering (or is missing)."""
    out = []
    for name, text in render_all().items():
        path = out_dir / name
        if not path.exists() or path.read_text() != text:
            out.append(str(path))
    return out
