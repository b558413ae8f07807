"""Local JVM processes: a single-node KRaft Kafka broker and an Apicurio schema registry."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from marketpipe.infra import artifacts
from marketpipe.infra.java import find_java
from marketpipe.infra.ports import free_port, owns_listener, port_open

_KAFKA_PROPS = """process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{ctl}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.flush.interval.ms=1000
"""

_LOG4J = """status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
"""


class StartError(RuntimeError):
    pass


class PortTaken(StartError):
    """Another process answers on the port picked for ours (taken between the pick and our bind)."""


def _spawn(cmd: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def stop_pid(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL. Reaps our own children."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10)
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG) != (0, 0):
                    return
            except ChildProcessError:
                pass
            if not pid_alive(pid):
                return
            time.sleep(0.1)


@dataclass
class LocalKafka:
    workdir: Path
    port: int
    controller_port: int
    heap: str = "512m"
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "kafka.log"

    def _java(self) -> str:
        java = find_java(17)
        if java is None:
            raise StartError("Kafka 4.x needs Java 17 or newer; none found (set JAVA_HOME)")
        return java

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        props = self.workdir / "server.properties"
        props.write_text(_KAFKA_PROPS.format(port=self.port, ctl=self.controller_port, data=data))
        (self.workdir / "log4j2.properties").write_text(_LOG4J.format(log=self.workdir / "kafka-server.log"))
        if (data / "meta.properties").exists():
            return
        libs = artifacts.kafka_libs()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read "-..." as an option (1 start in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = [self._java(), "-cp", f"{libs}/*", f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
               "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), "--standalone"]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise StartError(f"kafka storage format failed: {res.stdout}{res.stderr}")

    def start(self, timeout: float = 90.0) -> None:
        self.prepare()
        libs = artifacts.kafka_libs()
        cmd = [self._java(), "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
               "-cp", f"{libs}/*", "kafka.Kafka", str(self.workdir / "server.properties")]
        self._proc = _spawn(cmd, self.log_path)
        self.pid = self._proc.pid
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is not None and not pid_alive(self.pid):
                raise StartError(f"kafka exited during start-up; see {self.log_path} and {self.workdir}/kafka-server.log")
            if port_open(self.port):
                try:
                    md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=5)
                    if md.brokers:
                        self._check_owner()
                        return
                except Exception:  # not ready yet
                    pass
            time.sleep(0.25)
        raise StartError(f"kafka did not answer on {self.bootstrap} within {timeout:.0f}s; see {self.log_path}")

    def _check_owner(self) -> None:
        if self.pid is not None and not owns_listener(self.pid, self.port):
            raise PortTaken(f"another process answers on port {self.port}, not the kafka started here (pid "
                             f"{self.pid}): the port was taken between picking and binding; see {self.log_path}")

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid)
        self.pid = None
        self._proc = None


@dataclass
class LocalRegistry:
    workdir: Path
    port: int
    management_port: int = field(default_factory=free_port)
    pid: int | None = None
    version: str = ""
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/apis/ccompat/v7"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    def start(self, timeout: float = 120.0, progress: artifacts.Progress = print) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        java = find_java(21)
        version = artifacts.APICURIO_VERSION
        if java is None:
            java = find_java(11)
            version = artifacts.APICURIO_LEGACY_VERSION
        if java is None:
            raise StartError("Apicurio Registry needs Java 11+ (21+ for 3.x); none found")
        self.version = version
        home = artifacts.apicurio_home(version, progress)
        cmd = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dquarkus.http.port={self.port}", "-Dquarkus.http.host=127.0.0.1",
               f"-Dquarkus.management.port={self.management_port}", "-Dquarkus.management.host=127.0.0.1",
               "-Dquarkus.log.level=WARN", "-Dquarkus.banner.enabled=false",
               *artifacts.apicurio_command(home)]
        self._proc = _spawn(cmd, self.log_path, cwd=self.workdir)
        self.pid = self._proc.pid
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is not None and not pid_alive(self.pid):
                raise StartError(f"schema registry exited during start-up; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as resp:
                    if resp.status == 200:
                        self._check_owner()
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise StartError(f"schema registry did not answer on {self.url} within {timeout:.0f}s; see {self.log_path}")

    def _check_owner(self) -> None:
        if self.pid is not None and not owns_listener(self.pid, self.port):
            raise PortTaken(f"another process answers on port {self.port}, not the registry started here (pid "
                             f"{self.pid}): the port was taken between picking and binding; see {self.log_path}")

    def stop(self) -> None:
        if self.pid is not None:
            stop_pid(self.pid)
        self.pid = None
        self._proc = None
