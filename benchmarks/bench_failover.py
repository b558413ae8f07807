"""Leader failover as marketpipe's publisher sees it, on a local three-broker KRaft cluster.

Starts its own cluster (`marketpipe.infra.kafka_cluster.KafkaCluster`, 3 combined nodes, RF 3,
min.insync.replicas 2), creates a 1-partition topic, and sends a steady stream (--rate messages/s) through
`producers.publisher.KafkaPublisher` (acks=all, idempotent, batches never expire). Each round: --window s of
normal flow (the peer: the longest pause between acknowledgements without a failure), then kill -9 the
partition leader and measure the longest pause between acknowledgements until they flow again (the failover
the producer sees), then restart the node and wait for the ISR to be full. At the end it reads the topic
back and counts lost and duplicated messages. Prints each round, min/median/max, and the load average.

    python benchmarks/bench_failover.py [--rounds 3] [--rate 500] [--window 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from marketpipe.infra.kafka_cluster import KafkaCluster
from marketpipe.settings import PublisherSettings
from producers.publisher import KafkaPublisher

TOPIC = "bench.failover"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def leader_and_isr(bootstrap: str) -> tuple[int, list[int]]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=15).topics[TOPIC].partitions[0]
    return md.leader, sorted(md.isrs)


class Flow:
    """Publishes ``rate`` messages/s numbered 0, 1, ...; records each acknowledgement's time."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.sent = 0
        self.ack_times: list[float] = []
        self.running = True

    def acked(self, items: list[object]) -> None:
        now = time.monotonic()
        self.ack_times.extend([now] * len(items))

    async def run(self, publisher: KafkaPublisher) -> None:
        interval = 1.0 / self.rate
        while self.running:
            await publisher.publish(TOPIC, b"k", str(self.sent).encode())
            self.sent += 1
            await asyncio.sleep(interval)

    def longest_pause(self, start: float, end: float) -> float:
        times = [start] + [t for t in self.ack_times if start <= t <= end] + [end]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    cluster = KafkaCluster(work / "kafka", size=3)
    t0 = time.monotonic()
    cluster.start(lambda m: print(m, flush=True))
    print(f"3-node cluster up in {time.monotonic() - t0:.1f}s (load {load()})")
    publisher: KafkaPublisher | None = None
    try:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 3, config={"min.insync.replicas": "2"})])[TOPIC].result(30)
        flow = Flow(args.rate)
        settings = PublisherSettings(kafka_bootstrap=cluster.bootstrap, publisher_request_timeout_ms=5000)
        publisher = KafkaPublisher(settings, client_id="bench-failover", on_ack=flow.acked)
        await publisher.start()
        sender = asyncio.create_task(flow.run(publisher))
        peers, failovers = [], []
        for r in range(args.rounds):
            start = time.monotonic()
            await asyncio.sleep(args.window)
            peers.append(flow.longest_pause(start, time.monotonic()))
            leader, _ = await asyncio.to_thread(leader_and_isr, cluster.bootstrap)
            killed = time.monotonic()
            cluster.kill(leader)
            while True:  # until acknowledgements flow again for 2 s
                await asyncio.sleep(0.1)
                now = time.monotonic()
                if now - killed > 5 and flow.ack_times and now - flow.ack_times[-1] < 1.0 and \
                        flow.longest_pause(now - 2, now) < 1.0:
                    break
                if now - killed > 300:
                    raise TimeoutError("no acknowledgement 300 s after the kill")
            failovers.append(flow.longest_pause(killed, time.monotonic()))
            print(f"round {r + 1}: killed node {leader}; longest pause in acks {failovers[-1]:.2f}s "
                  f"(normal flow: {peers[-1]:.3f}s), load {load()}", flush=True)
            await asyncio.to_thread(cluster.restart, leader)
            while (await asyncio.to_thread(leader_and_isr, cluster.bootstrap))[1] != [1, 2, 3]:
                await asyncio.sleep(0.5)
        flow.running = False
        await sender
        await publisher.flush()
        consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(TOPIC, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            consumer.seek(tp, 0)
            seen: list[int] = []
            while len(seen) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                seen += [int(rec.value) for rec in batch.get(tp, [])]
        finally:
            await consumer.stop()
        lost = set(range(flow.sent)) - set(seen)
        print(f"sent {flow.sent}, in Kafka {len(seen)}: lost {len(lost)}, duplicated {len(seen) - len(set(seen))}, "
              f"in order {seen == sorted(seen)}")
        print(f"failover pause: min {min(failovers):.2f}s, median {statistics.median(failovers):.2f}s, "
              f"max {max(failovers):.2f}s; normal-flow longest pause median {statistics.median(peers):.3f}s; "
              f"load {load()}")
    finally:
        if publisher is not None:
            await publisher.stop(timeout=60)
        cluster.stop()


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.ERROR)  # aiokafka's connection warnings during each failover
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--window", type=float, default=10.0)
    asyncio.run(main(ap.parse_args()))
