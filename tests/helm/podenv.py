"""ContainerEnvironment: the environment a container of a rendered manifest gets, resolved as kubelet does.

Sources, in kubelet's order: ``envFrom`` (ConfigMaps and Secrets, later sources win), then ``env``
(later entries win) with ``value`` (``$(VAR)`` expanded from what is defined so far, ``$$`` escapes),
``configMapKeyRef``, ``secretKeyRef`` and ``fieldRef``. ConfigMaps and Secrets come from the rendered
manifests; Secrets the chart only references come from ``existing_secrets`` (as a cluster would hold
them). A missing object or key raises, like the CreateContainerConfigError a pod would get.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from tests.helm.chart import Manifests

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, defined: Mapping[str, str]) -> str:
    """Kubernetes dependent-variable expansion: $(VAR) if defined, $$ -> $, anything else kept."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return defined.get(m.group(1), m.group(0))

    return _REF.sub(sub, value)


@dataclass
class ContainerEnvironment:
    manifests: Manifests
    existing_secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    field_values: Mapping[str, str] = field(default_factory=lambda: {
        "status.podIP": "127.0.0.1", "metadata.namespace": "markets", "metadata.name": "pod-0"})
    secret_reads: list[tuple[str, str]] = field(default_factory=list)  # (secret, key) pairs read

    # -- objects ---------------------------------------------------------------------------------
    def config_map(self, name: str) -> dict[str, str]:
        return dict(self.manifests.get("ConfigMap", name).get("data") or {})

    def secret(self, name: str) -> dict[str, str]:
        if ("Secret", name) in self.manifests.by_key:
            obj = self.manifests.by_key[("Secret", name)]
            data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
            data.update(obj.get("stringData") or {})
            return data
        if name in self.existing_secrets:
            return dict(self.existing_secrets[name])
        raise AssertionError(f"Secret {name!r} is neither rendered by the chart nor among the existing Secrets")

    def _key(self, source: dict[str, str], kind: str, name: str, key: str) -> str:
        if key not in source:
            raise AssertionError(f"{kind} {name!r} has no key {key!r} (keys: {sorted(source)})")
        return source[key]

    # -- resolution ------------------------------------------------------------------------------
    def resolve(self, container: dict[str, Any]) -> dict[str, str]:
        env: dict[str, str] = {}
        for src in container.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                data = self.config_map(src["configMapRef"]["name"])
            else:
                name = src["secretRef"]["name"]
                data = self.secret(name)
                self.secret_reads += [(name, k) for k in data]
            env.update({prefix + k: v for k, v in data.items()})
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = expand(str(item["value"]), env)
                continue
            ref = item["valueFrom"]
            if "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                env[name] = self._key(self.config_map(r["name"]), "ConfigMap", r["name"], r["key"])
            elif "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                env[name] = self._key(self.secret(r["name"]), "Secret", r["name"], r["key"])
                self.secret_reads.append((r["name"], r["key"]))
            elif "fieldRef" in ref:
                env[name] = self.field_values[ref["fieldRef"]["fieldPath"]]
            else:
                raise AssertionError(f"unsupported valueFrom for {name}: {ref}")
        return env


def secret_file(pod_spec: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(secret name, key) whose content a container sees at ``path``; raises if no Secret volume backs it."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    target = PurePosixPath(path)
    for mount in container.get("volumeMounts") or []:
        base = PurePosixPath(mount["mountPath"])
        if target.parent != base:
            continue
        vol = volumes.get(mount["name"])
        if vol is None or "secret" not in vol:
            continue
        items = vol["secret"].get("items")
        if items:
            for it in items:
                if it["path"] == target.name:
                    return vol["secret"]["secretName"], it["key"]
            continue
        return vol["secret"]["secretName"], target.name
    raise AssertionError(f"{path} is not a file of any Secret volume mounted in {container['name']}")


def pod_spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def container_of(obj: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = pod_spec_of(obj)["containers"]
    if name is None:
        assert len(containers) == 1, f"{obj['metadata']['name']}: {len(containers)} containers"
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def materialize_secret_volumes(env: ContainerEnvironment, pod_spec: dict[str, Any], container: dict[str, Any]) -> int:
    """Write the files of every Secret volume mounted in ``container`` at its mountPath, as kubelet does
    (the test renders the chart with mount paths inside a temporary directory). Returns the files written."""
    from pathlib import Path

    volumes = {v["name"]: v for v in pod_spec.get("volumes") or []}
    written = 0
    for mount in container.get("volumeMounts") or []:
        vol = volumes.get(mount["name"]) or {}
        if "secret" not in vol:
            continue
        data = env.secret(vol["secret"]["secretName"])
        items = vol["secret"].get("items") or [{"key": k, "path": k} for k in data]
        base = Path(mount["mountPath"])
        base.mkdir(parents=True, exist_ok=True)
        for it in items:
            (base / it["path"]).write_text(data[it["key"]])
            written += 1
    return written
