"""KafkaCluster: a local KRaft cluster of N nodes from the same Maven Central jars.

Each node is broker and controller (combined mode) with its own ports, properties and log dir; all share
one cluster id and one static controller quorum (``controller.quorum.voters``), so a three-node cluster
keeps a controller majority and a replica set of three while one node is down. Internal topics
(``__consumer_offsets``, the transaction and share-state logs) take replication factor min(3, N) and
``min.insync.replicas`` min(2, N); ``default.replication.factor`` and ``min.insync.replicas`` are set to the
same values for topics created without explicit settings.

A node whose picked port was taken before it could bind (``PortTaken``) makes the whole cluster start
again on other ports, in a fresh directory: the quorum list names every node's controller port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from marketpipe.infra.ports import free_port
from marketpipe.infra.processes import LocalKafka, PortTaken, StartError, new_cluster_id, pid_alive, stop_pids

Progress = Callable[[str], None]


def _node_ports(n: int, first: tuple[int, int] | None) -> list[tuple[int, int]]:
    ports = [first] if first else []
    while len(ports) < n:
        ports.append((free_port(), free_port()))
    return ports


@dataclass
class KafkaCluster:
    workdir: Path
    size: int = 3
    heap: str = "512m"
    nodes: list[LocalKafka] = field(default_factory=list)

    @property
    def replication(self) -> int:
        return min(3, self.size)

    @property
    def min_insync(self) -> int:
        return min(2, self.size)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def pid(self) -> int | None:  # the first node's, where one pid is asked for
        return self.nodes[0].pid if self.nodes else None

    def _configure(self, workdir: Path, first: tuple[int, int] | None) -> None:
        ports = _node_ports(self.size, first)
        cluster_id = new_cluster_id()
        voters = ",".join(f"{i + 1}@127.0.0.1:{ctl}" for i, (_, ctl) in enumerate(ports)) if self.size > 1 else None
        self.nodes = [
            LocalKafka(workdir / f"node-{i + 1}" if self.size > 1 else workdir, port, ctl, heap=self.heap,
                       node_id=i + 1, voters=voters, cluster_id=cluster_id, replication=self.replication,
                       min_insync=self.min_insync)
            for i, (port, ctl) in enumerate(ports)
        ]

    def start(self, progress: Progress = print, *, first_ports: tuple[int, int] | None = None,
              timeout: float = 120.0, attempts: int = 3) -> None:
        """Launch every node, then wait until each holds its own listener and sees all brokers; on a port
        lost to a race, stop them all and start again on other ports."""
        for attempt in range(attempts):
            workdir = self.workdir if attempt == 0 else self.workdir.with_name(f"{self.workdir.name}-{attempt}")
            self._configure(workdir, first_ports if attempt == 0 else None)
            try:
                for node in self.nodes:
                    node.launch()
                deadline = time.monotonic() + timeout
                for node in self.nodes:
                    node.wait_ready(max(5.0, deadline - time.monotonic()), brokers=self.size)
                return
            except PortTaken as exc:
                self.stop()
                if attempt == attempts - 1:
                    raise
                progress(f"{exc}; starting the cluster again on other ports")
            except StartError:
                self.stop()
                raise

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def node_by_port(self, port: int) -> LocalKafka:
        return next(n for n in self.nodes if n.port == port)

    def kill(self, node_id: int) -> None:
        """kill -9 one node (its JVM; the process group leader is the java process itself)."""
        import os
        import signal

        node = self.node(node_id)
        assert node.pid is not None
        os.kill(node.pid, signal.SIGKILL)
        if node._proc is not None:
            node._proc.wait(30)
        node.pid = None
        node._proc = None

    def restart(self, node_id: int, timeout: float = 120.0) -> None:
        """Start a stopped node again on its ports and data; ready when it sees every broker."""
        node = self.node(node_id)
        node.launch()
        node.wait_ready(timeout, brokers=self.size)

    def alive(self) -> list[bool]:
        return [node.pid is not None and pid_alive(node.pid) for node in self.nodes]

    def stop(self) -> None:
        stop_pids([node.pid for node in self.nodes if node.pid is not None])
        for node in self.nodes:
            node.stop()  # reaps the children, forgets the pids

    def describe(self) -> list[dict[str, object]]:
        return [{"node_id": n.node_id, "pid": n.pid, "port": n.port, "controller_port": n.controller_port,
                 "workdir": str(n.workdir)} for n in self.nodes]
