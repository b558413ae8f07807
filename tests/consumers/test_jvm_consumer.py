"""A JVM consumer (examples/java: kafka-clients + Apicurio's Avro deserializer, both from Maven Central) reads
every marketpipe topic from the real broker and registry and decodes exactly what marketpipe's serde wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import IO

import pytest

from schemas import contracts
from schemas.topics import ALL_TOPICS
from tests.consumers.published import Batch, compare_json_lines

JAVA_PROJECT = Path(__file__).resolve().parents[2] / "examples" / "java"
JAR = "marketpipe-java-consumer.jar"


def _mvn(mvn: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([mvn, "-q", "-B", *args, "package"], cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def java_consumer_jar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the example with Maven: offline when the local repository (~/.m2, kept between CI runs on a
    machine) already holds every artifact, else online against Maven Central the first time."""
    mvn, java = shutil.which("mvn"), shutil.which("java")
    if mvn is None or java is None:
        pytest.fail("the JVM consumer proof needs Maven and Java 17+ (.ci/run installs both)")
    project = tmp_path_factory.mktemp("java-consumer") / "java"
    shutil.copytree(JAVA_PROJECT, project, ignore=shutil.ignore_patterns("target"))
    t0 = time.monotonic()
    build = _mvn(mvn, ["-o"], project)
    how = "offline (warm local repository)"
    if build.returncode != 0:
        build = _mvn(mvn, [], project)
        how = "online (artifacts fetched from Maven Central)"
    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    print(f"[java consumer] mvn package {how}: {time.monotonic() - t0:.1f}s", flush=True)
    return project / "target" / JAR


def apicurio_v3_version(registry_url: str) -> str | None:
    """The registry's version when it serves Apicurio's v3 API (what the example's 3.x serde talks), else None."""
    base = registry_url.rstrip("/").removesuffix("/apis/ccompat/v7")
    try:
        with urllib.request.urlopen(f"{base}/apis/registry/v3/system/info", timeout=30) as resp:
            return str(json.load(resp).get("version"))
    except (urllib.error.URLError, ValueError):
        return None


@pytest.mark.timeout(1200)
def test_java_consumer_reads_every_topic(registry_url: str, java_consumer_jar: Path, every_contract: Batch,
                                         consumer_env: dict[str, str]) -> None:
    if apicurio_v3_version(registry_url) is None:
        pytest.skip(f"{registry_url} is not an Apicurio 3.x registry (no /apis/registry/v3; Apicurio 2.6 runs when "
                    "no Java 21+ is installed): Apicurio's 3.x serde needs the v3 API (examples/java/README.md)")
    # C1 only + serial GC: a short-lived client spends most of its CPU in the JIT otherwise (same flags as
    # examples/java/.mvn/jvm.config gives Maven)
    res = subprocess.run(["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar", str(java_consumer_jar), "--from-timestamp", str(every_contract.since_ms),
                          "--timeout", "180"], env=consumer_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    summary = json.loads(res.stderr.strip().splitlines()[-1])["summary"]
    assert summary["reached_end"] and summary["undecodable"] == 0, summary
    assert set(summary["topics"]) >= {t.name for t in ALL_TOPICS}
    seen, diffs = compare_json_lines(every_contract, res.stdout)
    assert not diffs, "\n".join(diffs)
    assert {rows[0]["topic"] for rows in seen.values()} == {t.name for t in ALL_TOPICS}
    # the writer schema Apicurio's deserializer fetched by the record's id is the topic's contract
    for event_id, rows in seen.items():
        spec = next(t for t in ALL_TOPICS if t.name == rows[0]["topic"])
        contract = json.loads(contracts.schema_text(spec.schema))
        assert rows[0]["schema"] == f"{contract['namespace']}.{contract['name']}", event_id


@pytest.mark.timeout(1200)
def test_java_consumer_follow_mode_reads_every_topic_with_a_group(registry_url: str, java_consumer_jar: Path,
                                                                 every_contract: Batch,
                                                                 consumer_env: dict[str, str]) -> None:
    if apicurio_v3_version(registry_url) is None:
        pytest.skip(f"{registry_url} is not an Apicurio 3.x registry (see test_java_consumer_reads_every_topic)")
    lines: list[str] = []
    wanted = set(every_contract.by_event_id)
    proc = subprocess.Popen(["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar", str(java_consumer_jar),
                             "--follow", "--group", f"proof-{uuid.uuid4().hex[:8]}"],
                            env=consumer_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr: list[str] = []

    def pump(stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)

    readers = [threading.Thread(target=pump, args=(proc.stdout, lines), daemon=True),
               threading.Thread(target=pump, args=(proc.stderr, stderr), daemon=True)]
    for r in readers:
        r.start()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            got = {json.loads(line)["value"]["event_id"] for line in list(lines) if line.strip()}
            if wanted <= got:
                break
            time.sleep(0.5)
    finally:
        proc.terminate()  # SIGTERM: the shutdown hook wakes the poll loop, the consumer leaves its group
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("the Java consumer did not stop within 60 s of SIGTERM")
    for r in readers:
        r.join(timeout=10)
    # the group reads every marketpipe topic from the start, where other tests of the session left records that
    # are not Avro on purpose (tests/consumer: malformed input is counted and skipped): those are reported and
    # skipped, which is what a consumer should do; every record of this batch must decode (compared below).
    # The batch-only read (test_java_consumer_reads_every_topic, --from-timestamp) requires 0 undecodable.
    skipped = [line for line in stderr if line.startswith("undecodable")]
    print(f"[java consumer --follow] {len(skipped)} records of other tests reported undecodable and skipped")
    seen, diffs = compare_json_lines(every_contract, "".join(lines))
    assert not diffs, "\n".join(diffs[:50]) + "\n" + "".join(stderr)[-2000:]
    assert {rows[0]["topic"] for rows in seen.values()} == {t.name for t in ALL_TOPICS}
