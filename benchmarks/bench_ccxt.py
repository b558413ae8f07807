"""The ccxt path at full speed beside a peer: cryptofeed 2.4.1 (no-op callbacks) and ``marketpipe produce ccxt``
(publishing to real Kafka) on the same seeded Binance burst, frames per CPU-second of each and their ratio.

    MARKETPIPE_STATE_DIR=... MARKETPIPE_KAFKA_BOOTSTRAP=... MARKETPIPE_REGISTRY_URL=... \\
        .venv/bin/python benchmarks/bench_ccxt.py [--frames 200000] [--rounds 1]

1. The burst is rendered once, here: 4 seeded markets (``BinanceSimulator.burst``, as in
   ``bench_ccxt_trades.py``), depth@100ms + aggTrade frames; the frames, the truth (books, aggTrades, last
   update ids) go to a file.
2. For each side a fresh simulator process loads that file, answers REST (exchangeInfo, depth snapshot) from
   the initial state and, once the client subscribed to all 8 streams (and, for marketpipe, fetched its 4
   snapshots first, as ccxt does; cryptofeed fetches its snapshot on the first delta), sends every frame as
   fast as the socket takes it. Identical payload bytes for both; only the envelope differs: cryptofeed
   subscribes through Binance combined streams (``/stream?streams=...``, each event wrapped as
   ``{"stream":..,"data":..}``), ccxt through ``SUBSCRIBE`` on ``/ws`` (raw payloads).
3. Peer: ``benchmarks/cryptofeed_peer.py`` run by the peer venv's python (created under
   ``$MARKETPIPE_STATE_DIR/peer-venv-cache/cryptofeed-2.4.1`` on first use; its install time printed, cold or
   warm). Done when its callbacks saw every trade and every book's last update id.
4. marketpipe: the real CLI ``marketpipe produce ccxt`` (book + trades, 4 markets). Done when every trade is
   in Kafka; then read back: every trade once, ids equal to the simulator's in order, the book replayed from
   the BookUpdates equal to the simulator's (book deltas are coalesced as the book contract allows).

CPU is counted per measured process (utime + stime from /proc, threads included) from the moment the
simulator starts the burst until the process is done and then quiet (CPU grew < 20 ms in 0.5 s; the quiet
window is not counted). Simulator and this harness are not counted. Printed with the load average: the
machine may be busy, which moves wall time far more than CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
STREAMS = tuple(f"{s.lower()}@{k}" for s in SYMBOLS for k in ("aggTrade", "depth@100ms"))
PEER = "cryptofeed==2.4.1"
TARGET = 0.8
HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def models() -> list[Any]:
    from simulators.binance import MarketModel

    return [MarketModel(s, s[:-4], "USDT", seed=100 + i) for i, s in enumerate(SYMBOLS)]


# ---------------------------------------------------------------------------------------------------------
# the burst, rendered once
# ---------------------------------------------------------------------------------------------------------
async def render(frames: int, path: Path) -> dict[str, Any]:
    from simulators.binance import BinanceSimulator

    sim = BinanceSimulator(models())
    initial_ids = dict(sim.update_ids)
    recorded: list[tuple[str, str]] = []

    async def record(stream: str, payload: bytes) -> None:
        if stream.endswith(("@aggTrade", "@depth@100ms")):
            recorded.append((stream, payload.decode()))

    sim._broadcast = record  # type: ignore[method-assign]
    await sim.burst(frames)
    truth = {"frames": recorded, "initial_ids": initial_ids, "update_ids": dict(sim.update_ids),
             "agg_trades": sim.agg_trades, "markets": sim.markets}
    path.write_bytes(pickle.dumps(truth))
    digest = hashlib.sha256("".join(t for _, t in recorded).encode()).hexdigest()[:16]
    return {**truth, "sha": digest}


# ---------------------------------------------------------------------------------------------------------
# the simulator process
# ---------------------------------------------------------------------------------------------------------
def serve(path: Path, snapshots: int) -> None:
    from simulators.binance import BinanceSimulator

    truth = pickle.loads(path.read_bytes())

    async def main() -> None:
        sim = BinanceSimulator(models())  # the initial state: REST snapshots before the burst
        await sim.start()
        print(f"READY {sim.port}", flush=True)
        while not (all(sim.subscribers(s) for s in STREAMS) and sim.requests["/api/v3/depth"] >= snapshots):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # let the client apply its snapshots (both sides alike)
        conns = list(sim._conns)
        print("BURST", flush=True)
        t0 = time.perf_counter()
        for i, (stream, text) in enumerate(truth["frames"]):
            for conn in conns:
                if stream in conn.streams:
                    await conn.ws.send_str(conn.frame(stream, text))
            if i % 64 == 0:
                await asyncio.sleep(0)
        # from now on REST answers the venue as it is after the burst (a client that resyncs gets it)
        sim.markets, sim.agg_trades, sim.update_ids = truth["markets"], truth["agg_trades"], truth["update_ids"]
        print(f"SENT {time.perf_counter() - t0:.2f}", flush=True)
        await asyncio.sleep(3600)  # the benchmark stops us

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


async def until_quiet(pid: int) -> float:
    """CPU seconds of ``pid`` at the start of the first 0.5 s in which it used < 20 ms."""
    before = cpu_seconds(pid)
    while True:
        await asyncio.sleep(0.5)
        now = cpu_seconds(pid)
        if now - before < 0.02:
            return before
        before = now


class Simulator:
    def __init__(self, path: Path, snapshots: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(path), "--snapshots", str(snapshots)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])

    async def line(self, word: str, client: subprocess.Popen[Any]) -> str:
        """The next stdout line starting with ``word``; fails if ``client`` exits first or 300 s pass."""
        assert self.proc.stdout is not None
        while True:
            reading = asyncio.ensure_future(asyncio.to_thread(self.proc.stdout.readline))
            while not reading.done():
                await asyncio.wait((reading,), timeout=1)
                if client.poll() is not None:
                    raise RuntimeError(f"the measured process exited ({client.returncode}) before {word}")
            text = reading.result()
            if not text:
                raise RuntimeError(f"simulator exited before {word}")
            if text.startswith(word):
                return text

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def peer_python(state: Path) -> tuple[Path, str]:
    venv = state / "peer-venv-cache" / "cryptofeed-2.4.1"
    python = venv / "bin" / "python"
    t0 = time.perf_counter()
    if python.exists() and subprocess.run([str(python), "-c", "import cryptofeed, order_book"],
                                          capture_output=True).returncode == 0:
        return python, f"warm (cached venv {venv}, checked in {time.perf_counter() - t0:.1f} s)"
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", PEER], check=True)
    return python, f"cold (pip install {PEER} into {venv}: {time.perf_counter() - t0:.1f} s)"


async def run_peer(path: Path, truth: dict[str, Any], python: Path, log: Path) -> dict[str, Any]:
    sim = Simulator(path, snapshots=0)
    trades = sum(len(v) for v in truth["agg_trades"].values())
    final = ",".join(f"{s[:-4]}-USDT={truth['update_ids'][s]}" for s in SYMBOLS)
    proc = subprocess.Popen([str(python), str(HERE / "cryptofeed_peer.py"), "--base", f"127.0.0.1:{sim.port}",
                             "--symbols", ",".join(f"{s[:-4]}-USDT" for s in SYMBOLS), "--trades", str(trades),
                             "--final", final, "--log", str(log)], stdout=subprocess.PIPE, text=True)
    try:
        await asyncio.wait_for(sim.line("BURST", proc), 300)
        cpu0, wall0 = cpu_seconds(proc.pid), time.perf_counter()
        assert proc.stdout is not None
        while True:
            text = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 900)
            if not text:
                raise RuntimeError("cryptofeed runner exited before DONE (see its log)")
            if text.startswith("DONE"):
                break
        wall = time.perf_counter() - wall0
        cpu = await until_quiet(proc.pid) - cpu0
        _, got_trades, books = text.split()
        return {"cpu": cpu, "wall": wall, "trades": int(got_trades), "books": int(books)}
    finally:
        stop(proc)
        sim.stop()


async def run_marketpipe(path: Path, truth: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from schemas.registry import ContractRegistry
    from schemas.topics import BOOK, TRADES, market_key
    from tests.feedcore.book_replay import replay_book
    from tests.feedcore.kafka_reader import end_offsets, read_events

    bootstrap = os.environ["MARKETPIPE_KAFKA_BOOTSTRAP"]
    registry = ContractRegistry(os.environ["MARKETPIPE_REGISTRY_URL"])
    await asyncio.to_thread(registry.register_all)
    trades_total = sum(len(v) for v in truth["agg_trades"].values())
    venue = f"cfpeer-{uuid.uuid4().hex[:8]}"
    start = await end_offsets(bootstrap, (BOOK, TRADES))
    sim = Simulator(path, snapshots=len(SYMBOLS))
    env = {**os.environ, "MARKETPIPE_EXCHANGE": "binance", "MARKETPIPE_VENUE": venue,
           "MARKETPIPE_MARKETS": ",".join(f"{s[:-4]}/USDT" for s in SYMBOLS), "MARKETPIPE_CHANNELS": "book,trades",
           "MARKETPIPE_BOOK_DEPTH": "100", "MARKETPIPE_REST_BASE_OVERRIDE": f"http://127.0.0.1:{sim.port}",
           "MARKETPIPE_URL_OVERRIDES": json.dumps({"api.ws.spot": f"ws://127.0.0.1:{sim.port}/ws"}),
           "MARKETPIPE_CCXT_OPTIONS": json.dumps({"fetchMarkets": {"types": ["spot"]}}),
           "MARKETPIPE_HEALTH_PORT": "0", "MARKETPIPE_LOG_LEVEL": "WARNING"}
    cli = Path(sys.executable).with_name("marketpipe")
    proc = subprocess.Popen([str(cli), "produce", "ccxt"], env=env)
    pid = proc.pid
    spy: subprocess.Popen[Any] | None = None
    try:
        await asyncio.wait_for(sim.line("BURST", proc), 300)
        if args.profile:  # sampled from outside, without pausing the producer (py-spy's CPU is its own)
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                                    "--nonblocking", "-r", "97", "--format", "raw", "-o", args.profile])
        cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
        deadline = time.monotonic() + 900
        while True:
            ends = await end_offsets(bootstrap, (TRADES,))
            written = sum(ends[TRADES.name].values()) - sum(start[TRADES.name].values())
            if written >= trades_total or time.monotonic() > deadline or proc.poll() is not None:
                break
            await asyncio.sleep(0.5)
        wall = time.perf_counter() - wall0
        cpu = await until_quiet(pid) - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            spy.wait(60)
        ok, lines = True, []
        for symbol in SYMBOLS:
            market = f"{symbol[:-4]}-USDT"
            key = market_key(venue, market)
            want = [str(a.agg_id) for a in truth["agg_trades"][symbol]]
            got = await read_events(bootstrap, registry, TRADES, start[TRADES.name], keys={key}, timeout=120)
            ids = [t["trade_id"] for t in got]
            gaps = sum(1 for t in got if t.get("gap"))
            events = await read_events(bootstrap, registry, BOOK, start[BOOK.name], keys={key}, timeout=120)
            book = replay_book(events)
            m = truth["markets"][symbol]
            book_ok = book.in_sync and book.bids == dict(m.bids) and book.asks == dict(m.asks)
            ok = ok and ids == want and not gaps and book_ok
            lines.append(f"  {market}: aggTrades {len(want)}, in Kafka {len(ids)} ({len(set(ids))} distinct, {gaps} "
                         f"gap markers), ids equal in order: {ids == want}; {len(events)} BookUpdates, book equals "
                         f"truth: {book_ok} (resets {book.resets})")
        return {"cpu": cpu, "wall": wall, "trades": written, "ok": ok, "lines": lines}
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stop(proc)
        sim.stop()


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


async def compare(args: argparse.Namespace) -> int:
    state = Path(os.environ.get("MARKETPIPE_STATE_DIR", Path.home() / ".marketpipe"))
    python, install = peer_python(state)
    print(f"peer: {PEER}, {install}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ccxt-"))
    path = work / "burst.pickle"
    t0 = time.perf_counter()
    truth = await render(args.frames, path)
    frames = len(truth["frames"])
    trades = sum(len(v) for v in truth["agg_trades"].values())
    print(f"burst: {frames} frames ({trades} aggTrades, {frames - trades} depth@100ms), 4 markets, seeded; "
          f"payload sha256 {truth['sha']} (rendered in {time.perf_counter() - t0:.0f} s). Same payload bytes to "
          f"both; cryptofeed gets them in the combined-stream envelope {{\"stream\":..,\"data\":..}}, ccxt raw",
          flush=True)
    ok = True
    peer_fps: list[float] = []
    mp_fps: list[float] = []
    for r in range(args.rounds):
        print(f"round {r + 1}: {load()} (before cryptofeed)", flush=True)
        p = await run_peer(path, truth, python, work / "cryptofeed.log")
        peer_fps.append(frames / p["cpu"])
        print(f"  cryptofeed no-op      {frames / p['cpu']:10,.0f} frames/CPU-s  CPU {p['cpu']:6.1f} s  wall "
              f"{p['wall']:6.1f} s  trades {p['trades']}  book callbacks {p['books']}", flush=True)
        print(f"round {r + 1}: {load()} (before marketpipe)", flush=True)
        m = await run_marketpipe(path, truth, args)
        mp_fps.append(frames / m["cpu"])
        print(f"  marketpipe ccxt->Kafka{frames / m['cpu']:10,.0f} frames/CPU-s  CPU {m['cpu']:6.1f} s  wall "
              f"{m['wall']:6.1f} s  trades in Kafka {m['trades']}  every trade once, books exact: {m['ok']}",
              flush=True)
        for line in m["lines"]:
            print(line)
        print(f"  ratio marketpipe / cryptofeed: {mp_fps[-1] / peer_fps[-1]:.2f}x (target {TARGET}x); {load()}",
              flush=True)
        ok = ok and m["ok"]
    if args.rounds > 1:
        print(f"median: cryptofeed {sorted(peer_fps)[len(peer_fps) // 2]:,.0f}, marketpipe "
              f"{sorted(mp_fps)[len(mp_fps) // 2]:,.0f} frames/CPU-s")
    print("RESULT", "OK" if ok else "FAIL (a trade or the book did not reach Kafka exactly)", flush=True)
    return 0 if ok else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--profile", help="py-spy raw (collapsed) profile of the marketpipe producer to this file")
    p.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--snapshots", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.snapshots)
        return
    sys.exit(asyncio.run(compare(args)))


if __name__ == "__main__":
    main()
