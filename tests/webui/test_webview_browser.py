"""The web view in a real browser (Debian's headless Chromium driven by selenium) on the real pipeline:
RabbitX simulator -> producer -> Kafka -> processor worker (with a query token) -> /ui/.

The page must ask for the token, then show the best bid/ask and the last candle the query API returns for the same
market (compared while the producer is paused, so both sides stand still), and follow new events when the producer
runs again. The screenshot lands in $MARKETPIPE_WEBVIEW_SCREENSHOT (default build/webview.png in the repo) for a
human to look at; docs/webview.png is one of these.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from marketpipe.dev.plan import PLANS, processor_component
from marketpipe.dev.supervisor import Component, Supervisor, python_module
from marketpipe.infra.ports import free_port
from tests.processors.harness import delete_topics

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = Path(os.environ.get("MARKETPIPE_WEBVIEW_SCREENSHOT", REPO / "build" / "webview.png"))
TOKEN = "webview-test-token"
MARKET = "BTC-USD-PERP"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
T = TypeVar("T")


@dataclass
class Pipeline:
    url: str
    producer: Component


def get(url: str, token: str | None = TOKEN) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if resp.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - keep looking until the deadline; reported below
            value, last = None, exc
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


@pytest.fixture(scope="module")
def pipeline(cluster, registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("webview")
    sup = Supervisor(tmp / "logs", progress=lambda m: print(f"[webview] {m}", flush=True))
    app_id = f"test-webui-{uuid.uuid4().hex[:6]}"
    base = {"MARKETPIPE_KAFKA_BOOTSTRAP": cluster.bootstrap, "MARKETPIPE_REGISTRY_URL": cluster.registry_url,
            "MARKETPIPE_REGISTER_SCHEMAS": "false", "MARKETPIPE_CREATE_TOPICS": "false"}
    port = free_port()
    proc = processor_component(base, port, app_id, tmp / "data", offset_reset="latest")
    proc.env["MARKETPIPE_PROCESSOR_QUERY_TOKEN"] = TOKEN
    # the worker answers /processor/ready without the token; start the producer after it (offsets at latest)
    try:
        sup.start(proc)
        plan = PLANS["rabbitx"]
        # `marketpipe dev`'s RabbitX simulator, faster: its clock advances 50-5000 us per message, so at 300
        # messages/s the 1s candles close about once a second of wall time (more bars in the screenshot)
        sim_port = free_port()
        sim = sup.start(Component("simulator-rabbitx", python_module(
            "simulators.rabbitx", "--port", str(sim_port), "--markets", "BTC-USD", "ETH-USD", "--rate", "300",
            "--max-seconds", "900"), ready_port=sim_port, announces=True))
        plan._sim = sim  # what plan.simulators() sets: the producer is wired to this simulator
        producer = sup.start(plan.producer(base, free_port()))
        yield Pipeline(f"http://127.0.0.1:{port}", producer)
    finally:
        sup.stop_all()
        delete_topics(cluster.bootstrap, (app_id,))


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), \
        "browser tests need Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)"
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(flag)
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"webview-chromium-{uuid.uuid4().hex[:8]}"
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def text(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text).strip()


def attr(driver: webdriver.Chrome, element_id: str, name: str) -> str:
    return str(driver.find_element(By.ID, element_id).get_attribute(name) or "")


def test_ui_paths_honour_the_token(pipeline: Pipeline) -> None:
    """The page itself holds no data and opens without the token; every data path wants it; faust's pages stay off."""
    url = pipeline.url
    status, page = get(f"{url}/ui/", token=None)
    assert status == 200 and b"app.js" in page
    assert get(f"{url}/ui/app.js", token=None)[0] == 200
    assert get(f"{url}/ui/no-such-file.js", token=None)[0] == 404
    for path in ("/ui/api/overview", f"/ui/stream/rabbitx/{MARKET}?interval=1s",
                 f"/books/rabbitx/{MARKET}/top"):
        assert get(url + path, token=None)[0] == 401, path
        assert get(url + path, token="wrong")[0] == 401, path
    for path in ("/router/", "/table/", "/", "/stats/"):
        assert get(url + path)[0] == 404, path
    status, overview = wait_for("the overview to list the market", lambda: (
        lambda r: r if r[0] == 200 and any(m["market"] == MARKET for w in r[1]["workers"] for m in w["markets"])
        else None)(get(f"{url}/ui/api/overview")))
    assert overview["workers"][0]["ready"] is True
    assert get(f"{url}/ui/stream/rabbitx/{MARKET}?interval=7m")[0] == 400


def api_view(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status, top = get(f"{url}/books/rabbitx/{MARKET}/top")
    assert status == 200, status
    status, candles = get(f"{url}/candles/rabbitx/{MARKET}/1s?include_open=true&limit=5")
    assert status == 200, status
    traded = [c for c in candles["candles"] if c.get("open") is not None]
    return top, traded[-1]


def page_view(driver: webdriver.Chrome) -> tuple[dict[str, str], dict[str, str]]:
    top = {"best_bid": text(driver, "best-bid"), "best_ask": text(driver, "best-ask"),
           "sequence": text(driver, "book-seq")}
    candle = {"start_ts": attr(driver, "last-candle", "data-start-ts"), "close": attr(driver, "last-candle", "data-close"),
              "volume": attr(driver, "last-candle", "data-volume")}
    return top, candle


def test_page_shows_what_the_query_api_returns_and_follows_new_events(pipeline: Pipeline,
                                                                    browser: webdriver.Chrome) -> None:
    url, driver = pipeline.url, browser
    driver.get(f"{url}/ui/?venue=rabbitx&market={MARKET}&interval=1s")
    # no token yet: the page asks for it
    wait_for("the login field", lambda: driver.find_element(By.ID, "login").is_displayed())
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()
    wait_for("a best bid on the page", lambda: text(driver, "best-bid") not in ("", "—"))
    wait_for("a candle on the page", lambda: attr(driver, "last-candle", "data-start-ts"))
    assert text(driver, "status") == "live"

    # live: the page follows new events pushed by the worker
    seq0, trades0 = int(text(driver, "book-seq")), int(attr(driver, "trade-count", "data-count"))
    wait_for("new book updates and trades on the page", lambda: int(text(driver, "book-seq")) > seq0
             and int(attr(driver, "trade-count", "data-count")) > trades0)

    # pause the producer: the materialized state stands still, and the page must show exactly what the API says
    pid = pipeline.producer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        def settled() -> tuple[dict[str, Any], dict[str, Any]] | None:
            first = api_view(url)
            time.sleep(1.0)
            return first if api_view(url) == first else None
        wait_for("the API's view to settle with the producer paused", settled, timeout=60)

        def agree() -> bool:
            top, candle = api_view(url)
            shown_top, shown_candle = page_view(driver)
            return (shown_top == {"best_bid": top["best_bid"], "best_ask": top["best_ask"],
                                  "sequence": str(top["sequence"])}
                    and shown_candle == {"start_ts": str(candle["start_ts"]), "close": candle["close"],
                                         "volume": candle["volume"]})
        wait_for("the page to show the API's best bid/ask and last candle", agree, timeout=30)
        top, candle = api_view(url)
        print(f"page and API agree: bid {top['best_bid']} ask {top['best_ask']} seq {top['sequence']}, "
              f"last 1s candle {candle['start_ts']} close {candle['close']} volume {candle['volume']}")
        trades_paused = int(attr(driver, "trade-count", "data-count"))
    finally:
        os.kill(pid, signal.SIGCONT)

    # the producer runs again: the page moves on without a reload
    wait_for("new trades after the pause", lambda: int(attr(driver, "trade-count", "data-count")) > trades_paused)
    wait_for("a newer candle after the pause", lambda: int(attr(driver, "last-candle", "data-start-ts"))
             > int(candle["start_ts"]))
    # the other panels: the simulator's account, the health of producer and worker
    wait_for("the account's balances", lambda: "USDT" in text(driver, "account-view"))
    health = text(driver, "health")
    assert "producer rabbitx" in health and "ready" in health and "0 crossed" in health, health
    time.sleep(2)  # a couple more pushes on the charts for the human looking at the picture
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 20_000
    print(f"screenshot: {SCREENSHOT}")


def test_token_from_the_address_fragment_and_market_choice(pipeline: Pipeline, browser: webdriver.Chrome) -> None:
    """#token=... opens the page without the login field, leaves no token in the address bar, and another market
    of the venue is shown as the API returns it."""
    url, driver = pipeline.url, browser
    driver.get(f"{url}/ui/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{url}/ui/?market=ETH-USD-PERP#token={TOKEN}")
    wait_for("ETH's best bid on the page", lambda: text(driver, "best-bid") not in ("", "—"))
    assert "token" not in driver.current_url
    assert not driver.find_element(By.ID, "login").is_displayed()
    assert driver.find_element(By.ID, "market").get_attribute("value") == "ETH-USD-PERP"
    pid = pipeline.producer.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the book stands still: the page must show exactly the API's top
    try:
        def agree() -> bool:
            status, top = get(f"{url}/books/rabbitx/ETH-USD-PERP/top")
            return status == 200 and (text(driver, "best-bid"), text(driver, "best-ask")) == (top["best_bid"],
                                                                                               top["best_ask"])
        wait_for("the page to show ETH's top as the API returns it", agree, timeout=60)
        # another configured interval: the chart switches to the API's 1m candles
        Select(driver.find_element(By.ID, "interval")).select_by_visible_text("1m")

        def minute_candle_agrees() -> bool:
            status, body = get(f"{url}/candles/rabbitx/ETH-USD-PERP/1m?include_open=true&limit=3")
            last = [c for c in body["candles"] if c.get("open") is not None][-1]
            return (text(driver, "candle-title").endswith(" 1m")
                    and attr(driver, "last-candle", "data-start-ts") == str(last["start_ts"])
                    and attr(driver, "last-candle", "data-close") == last["close"]
                    and int(last["start_ts"]) % 60_000_000 == 0)
        wait_for("the page's last 1m candle to be the API's", minute_candle_agrees, timeout=60)
    finally:
        os.kill(pid, signal.SIGCONT)
