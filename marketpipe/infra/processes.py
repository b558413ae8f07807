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
from marketpipe.infra.ports import free_port, owns_listener, port_free, port_open

_KAFKA_PROPS = """process.roles=broker,controller
node.id={node_id}
{quorum}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=1
default.replication.factor={rf}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={min_isr}
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


def new_cluster_id() -> str:
    """A KRaft cluster id (22-char URL-safe base64 of 16 random bytes)."""
    cluster_id = "-"
    while cluster_id.startswith("-"):  # the storage tool would read "-..." as an option (1 start in 64)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


class StartError(RuntimeError):
    pass


class PortTaken(StartError):
    """A port picked for our process was taken by another one between the pick and our bind: either ours
    exited during start-up while another process holds one of its ports (or its log says "Address already
    in use"; Kafka's own log says nothing, its slf4j has no binding), or someone else answers on it."""


_BIND_FAILED = ("Address already in use", "seems to be in use", "Port already bound")


def log_sizes(*logs: Path) -> dict[Path, int]:
    """Where each (appended) log ends now: what a start-up writes comes after."""
    return {log: log.stat().st_size if log.exists() else 0 for log in logs}


def _failed_to_bind(since: dict[Path, int]) -> bool:
    """A log written since ``since`` (log -> size before the start) says the process could not bind its port."""
    for log, offset in since.items():
        try:
            with log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            continue
        if any(marker in text for marker in _BIND_FAILED):
            return True
    return False


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


def stop_pids(pids: list[int], timeout: float = 30.0) -> None:
    """stop_pid for several processes at once: SIGTERM to all first, so the nodes of a cluster shut down
    together (one by one, the last node waits for a controller quorum that has already left)."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        except PermissionError:
            os.kill(pid, signal.SIGTERM)
    for pid in pids:
        stop_pid(pid, timeout)


@dataclass
class LocalKafka:
    workdir: Path
    port: int
    controller_port: int
    heap: str = "512m"
    pid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # cluster membership: node id, the static controller quorum of a multi-node cluster
    # ("1@127.0.0.1:p1,2@..."; None = a single-node cluster) and the internal topics' replication
    node_id: int = 1
    voters: str | None = None
    cluster_id: str | None = None
    replication: int = 1
    min_insync: int = 1
    _log_marks: dict[Path, int] = field(default_factory=dict, repr=False)

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
        quorum = (f"controller.quorum.voters={self.voters}" if self.voters
                  else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}")
        props.write_text(_KAFKA_PROPS.format(node_id=self.node_id, quorum=quorum, port=self.port,
                                             ctl=self.controller_port, data=data, rf=self.replication,
                                             min_isr=self.min_insync))
        (self.workdir / "log4j2.properties").write_text(_LOG4J.format(log=self.workdir / "kafka-server.log"))
        if (data / "meta.properties").exists():
            return
        libs = artifacts.kafka_libs()
        cluster_id = self.cluster_id or new_cluster_id()
        cmd = [self._java(), "-cp", f"{libs}/*", f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
               "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)]
        if not self.voters:  # a static quorum (controller.quorum.voters) is formatted without a voter flag
            cmd.append("--standalone")
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise StartError(f"kafka storage format failed: {res.stdout}{res.stderr}")

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Format (once) and spawn the node without waiting: a multi-node cluster answers only once a
        majority of its controllers runs, so every node is launched before any is waited for."""
        self.prepare()
        libs = artifacts.kafka_libs()
        cmd = [self._java(), "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
               "-cp", f"{libs}/*", "kafka.Kafka", str(self.workdir / "server.properties")]
        self._log_marks = log_sizes(self.log_path, self.workdir / "kafka-server.log")
        self._proc = _spawn(cmd, self.log_path)
        self.pid = self._proc.pid

    def wait_ready(self, timeout: float, brokers: int = 1) -> None:
        """Ready when this node's process holds its listener and the cluster's metadata, asked of this node,
        lists ``brokers`` brokers."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is not None and not pid_alive(self.pid):
                server_log = self.workdir / "kafka-server.log"
                if _failed_to_bind(self._log_marks) or not port_free(self.port) or not port_free(self.controller_port):
                    raise PortTaken(f"kafka node {self.node_id} could not bind port {self.port} or "
                                    f"{self.controller_port} (taken after it was picked); see {server_log}")
                raise StartError(f"kafka exited during start-up; see {self.log_path} and {server_log}")
            if port_open(self.port):
                try:
                    md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=5)
                    if len(md.brokers) >= brokers:
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
    # schemas kept in a file-backed H2 database under workdir/db (Apicurio 3.x `sql` storage), so ids
    # survive a restart; False = Apicurio's default in-memory H2 (every restart forgets every id)
    persistent: bool = True
    _log_marks: dict[Path, int] = field(default_factory=dict, repr=False)
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
        storage = self.storage_options()
        if self.persistent and not storage:
            progress(f"Apicurio {version} runs in memory here (file storage needs 3.x and Java 21): "
                     "a restart forgets the schema ids")
        cmd = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dquarkus.http.port={self.port}", "-Dquarkus.http.host=127.0.0.1",
               f"-Dquarkus.management.port={self.management_port}", "-Dquarkus.management.host=127.0.0.1",
               "-Dquarkus.log.level=WARN", "-Dquarkus.banner.enabled=false", *storage,
               *artifacts.apicurio_command(home)]
        self._log_marks = log_sizes(self.log_path)
        self._proc = _spawn(cmd, self.log_path, cwd=self.workdir)
        self.pid = self._proc.pid
        self.wait_ready(timeout)

    @property
    def db_path(self) -> Path:
        return self.workdir / "db" / "registry"

    def storage_options(self) -> list[str]:
        """System properties of Apicurio 3.x's `sql` storage on a file-backed H2 database (names from the
        app's own application.properties: apicurio.storage.kind, apicurio.storage.sql.kind,
        apicurio.datasource.url, ...). WRITE_DELAY=0: each commit reaches the file before the registry
        answers (H2 otherwise flushes up to 500 ms later, and a crash then would forget an id already handed
        out). Empty for in-memory storage and for Apicurio 2.x."""
        if not self.persistent or not self.version.startswith("3."):
            return []
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        return ["-Dapicurio.storage.kind=sql", "-Dapicurio.storage.sql.kind=h2",
                f"-Dapicurio.datasource.url=jdbc:h2:file:{self.db_path};WRITE_DELAY=0", "-Dapicurio.datasource.username=sa",
                "-Dapicurio.datasource.password=sa", "-Dapicurio.datasource.jdbc.initial-size=2",
                "-Dapicurio.datasource.jdbc.min-size=2", "-Dapicurio.datasource.jdbc.max-size=20"]

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is not None and not pid_alive(self.pid):
                if _failed_to_bind(self._log_marks) or not port_free(self.port):
                    raise PortTaken(f"schema registry could not bind port {self.port} (taken after it was picked); "
                                    f"see {self.log_path}")
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
