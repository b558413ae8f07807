"""What every library fence shares: the exact-version guard and the upstream source fingerprints.

A fence is the one module per library that holds all code reaching into that library's private members
(`processors/faust_fence.py`, `marketpipe/prometheus_fence.py`). It names the exact versions it was written
against, refuses to start on any other (`require_versions`, called when the fence is imported, i.e. at
worker start-up), and lists the upstream functions it copies, overrides or depends on the inner workings
of, with the SHA-256 of their source (`fingerprints`): the fence's test compares them, so after an upgrade
it names exactly the functions whose code changed and must be read again.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path


class UnpinnedLibraryError(RuntimeError):
    """A fenced library is installed in a version its fence was not written for."""


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (None if it is not installed)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def require_versions(pinned: Mapping[str, str], *, fence: str, test: str) -> None:
    """Raise UnpinnedLibraryError unless every distribution in `pinned` is installed in exactly that version.

    The message names the fence, the pinned and the installed versions and what to do about it."""
    wrong = {dist: (want, installed_version(dist)) for dist, want in pinned.items()}
    wrong = {dist: versions for dist, versions in wrong.items() if versions[0] != versions[1]}
    if not wrong:
        return
    found = "; ".join(f"{dist}: pinned {want}, installed {have or 'none'}" for dist, (want, have) in wrong.items())
    raise UnpinnedLibraryError(
        f"{fence} reaches into private members of {', '.join(wrong)} and was written for the pinned "
        f"version only ({found}). Install the pinned version (`pip install "
        f"{' '.join(f'{dist}=={want}' for dist, (want, _) in wrong.items())}`, as pyproject.toml pins), or, "
        f"to move to the new one: run `pytest {test}` against it, which names every upstream function the "
        f"fence copies or overrides whose source changed; port those changes into {fence}, then update its "
        f"PINNED versions and UPSTREAM_SHA256 fingerprints and the pins in pyproject.toml.")


def resolve(name: str) -> object:
    """`package.module:Qualified.name` -> the object (a property resolves to its getter)."""
    module_name, _, qualname = name.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        owner = obj
        obj = inspect.getattr_static(owner, part) if inspect.isclass(owner) else getattr(owner, part)
        if isinstance(obj, staticmethod | classmethod):
            obj = obj.__func__
        elif isinstance(obj, property):
            obj = obj.fget
    return obj


def source_of(name: str) -> str:
    """Source text of `module:qualname`, or of a file shipped in a package: `package/path/file.pyx`
    (compiled code, e.g. Cython, has no Python source to inspect)."""
    if ":" not in name:
        package, _, relative = name.partition("/")
        origin = getattr(importlib.import_module(package), "__file__", None)
        if origin is None:
            raise ModuleNotFoundError(f"{package} has no __file__")
        return (Path(origin).parent / relative).read_text()
    return inspect.getsource(resolve(name))  # type: ignore[arg-type]


def fingerprint(name: str) -> str:
    return hashlib.sha256(source_of(name).encode()).hexdigest()


def fingerprints(names: list[str] | tuple[str, ...] | Mapping[str, str]) -> dict[str, str]:
    """name -> SHA-256 of its current source ("missing: <error>" if it no longer exists)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = fingerprint(name)
        except (ImportError, AttributeError, OSError, TypeError, ValueError) as exc:
            out[name] = f"missing: {type(exc).__name__}: {exc}"
    return out


def changed_upstream(expected: Mapping[str, str]) -> dict[str, str]:
    """The fingerprinted upstream functions whose source is no longer the one the fence was written for:
    name -> "changed" or "missing: ..."."""
    return {name: (now if now.startswith("missing") else "changed")
            for name, now in fingerprints(expected).items() if now != expected[name]}
