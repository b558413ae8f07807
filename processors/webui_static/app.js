// marketpipe web view: reads the processors' query API and the market's event stream (server-sent events read
// with fetch(), so the bearer token travels in the Authorization header like every query).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "marketpipe.token";
  const state = { overview: null, venue: null, market: null, interval: null, stream: null, trades: 0,
                  candles: new Map(), lastCandle: null, book: null, account: null };

  // -- token: #token=... (never sent to the server) or the login field, kept for this tab only ----------
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem(TOKEN_KEY, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = () => sessionStorage.getItem(TOKEN_KEY);
  const headers = () => (token() ? { Authorization: "Bearer " + token() } : {});
  const needLogin = (why) => {
    $("login").hidden = false;
    $("login-reason").textContent = why;
    setStatus("token needed", "error");
  };
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("login").hidden = true;
    if (state.started) refreshOverview().then(() => openStream());  // else start() is still looking
  });

  class Unauthorized extends Error {}
  async function getJSON(path) {
    const r = await fetch(path, { headers: headers(), cache: "no-store" });
    if (r.status === 401) throw new Unauthorized(path);
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }
  function setStatus(text, cls) {
    $("status").textContent = text;
    $("status").className = "status " + (cls || "");
  }
  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const ts = (us) => (us ? new Date(us / 1000).toISOString().slice(11, 23) : "");
  const ago = (us, nowUs) => (us ? ((nowUs - us) / 1e6).toFixed(1) + " s ago" : "never");

  // -- charts -------------------------------------------------------------------------------------------
  const LWC = window.LightweightCharts;
  const chart = LWC.createChart($("candles"), {
    autoSize: true, layout: { background: { color: "#161c23" }, textColor: "#d8dee6" },
    grid: { vertLines: { color: "#222a33" }, horzLines: { color: "#222a33" } },
    timeScale: { timeVisible: true, secondsVisible: true },
  });
  const candleSeries = chart.addSeries(LWC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  const volumeSeries = chart.addSeries(LWC.HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" } });
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });

  const bar = (c) => ({ time: Math.floor(c.start_ts / 1e6), open: +c.open, high: +c.high, low: +c.low, close: +c.close });
  const volBar = (c) => ({ time: Math.floor(c.start_ts / 1e6), value: +(c.volume || 0),
                           color: +c.close >= +c.open ? "rgba(38,166,154,.5)" : "rgba(239,83,80,.5)" });

  function showCandles(msg) {
    if (msg.full) state.candles.clear();
    let older = msg.full;
    const lastTime = state.candles.size ? Math.max(...state.candles.keys()) : -1;
    for (const c of msg.candles) {
      if (c.open === null || c.open === undefined) continue; // a gap interval without trades: no bar
      if (c.start_ts < lastTime) older = true;
      state.candles.set(c.start_ts, c);
    }
    const rows = [...state.candles.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
    if (older || rows.length < 2) {
      candleSeries.setData(rows.map(bar));
      volumeSeries.setData(rows.map(volBar));
      if (msg.full) chart.timeScale().fitContent();
    } else {
      for (const c of msg.candles) {
        if (c.open === null || c.open === undefined) continue;
        candleSeries.update(bar(c));
        volumeSeries.update(volBar(c));
      }
    }
    const last = rows[rows.length - 1];
    if (last) {
      state.lastCandle = last;
      const el = $("last-candle");
      el.dataset.startTs = last.start_ts;
      el.dataset.close = last.close;
      el.dataset.volume = last.volume;
      el.textContent = `${new Date(last.start_ts / 1000).toISOString().slice(0, 19)}Z  O ${last.open}  H ${last.high}` +
        `  L ${last.low}  C ${last.close}  V ${last.volume}  (${last.trade_count} trades${last.final ? ", final" : ", open"}` +
        `${last.gap ? ", GAP" : ""})`;
    }
  }

  function drawDepth(book) {
    const canvas = $("depth");
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = w * dpr; canvas.height = h * dpr;
    const g = canvas.getContext("2d");
    g.scale(dpr, dpr);
    g.clearRect(0, 0, w, h);
    const cum = (levels) => { let t = 0; return levels.map((l) => [+l.price, (t += +l.size)]); };
    const bids = cum(book.bids || []), asks = cum(book.asks || []);
    if (!bids.length && !asks.length) { g.fillStyle = "#7c8794"; g.fillText("empty book", 10, 20); return; }
    const prices = [...bids, ...asks].map((p) => p[0]);
    const lo = Math.min(...prices), hi = Math.max(...prices);
    const top = Math.max(...bids.map((p) => p[1]), ...asks.map((p) => p[1]), 1e-12);
    const pad = { l: 8, r: 60, t: 8, b: 20 };
    const x = (p) => pad.l + (hi === lo ? 0.5 : (p - lo) / (hi - lo)) * (w - pad.l - pad.r);
    const y = (q) => h - pad.b - (q / top) * (h - pad.t - pad.b);
    const area = (pts, stroke, fill, dir) => {
      if (!pts.length) return;
      g.beginPath();
      g.moveTo(x(pts[0][0]), y(0));
      let prev = 0;
      for (const [p, q] of pts) { g.lineTo(x(p), y(prev)); g.lineTo(x(p), y(q)); prev = q; }
      g.lineTo(dir < 0 ? pad.l : w - pad.r, y(prev));
      g.lineTo(dir < 0 ? pad.l : w - pad.r, y(0));
      g.closePath();
      g.fillStyle = fill; g.fill(); g.strokeStyle = stroke; g.lineWidth = 1.5; g.stroke();
    };
    area(bids, "#26a69a", "rgba(38,166,154,.25)", -1);
    area(asks, "#ef5350", "rgba(239,83,80,.25)", 1);
    g.fillStyle = "#7c8794"; g.font = "11px system-ui";
    g.fillText(String(lo), pad.l, h - 5);
    const hiText = String(hi); g.fillText(hiText, w - pad.r - g.measureText(hiText).width, h - 5);
    g.fillText(top.toPrecision(4), w - pad.r + 4, y(top) + 8);
  }

  function showBook(b) {
    state.book = b;
    $("best-bid").textContent = b.best_bid ?? "—";
    $("best-ask").textContent = b.best_ask ?? "—";
    $("best-bid-size").textContent = b.best_bid_size ?? "";
    $("best-ask-size").textContent = b.best_ask_size ?? "";
    $("spread").textContent = b.spread ?? "";
    $("book-seq").textContent = b.sequence ?? "";
    $("book-flags").innerHTML = (b.in_sync ? '<span class="ok">in sync</span>' : '<span class="bad">out of sync</span>') +
      (b.crossed ? ' <span class="bad">CROSSED</span>' : "");
    drawDepth(b);
  }

  function showTrades(list) {
    const body = $("trades").tBodies[0];
    for (const t of list) {
      const tr = document.createElement("tr");
      tr.innerHTML = `<td>${ts(t.exchange_ts)}</td><td class="${t.side === "BUY" ? "bid" : t.side === "SELL" ? "ask" : ""}">` +
        `${esc(t.side)}</td><td>${esc(t.price)}</td><td>${esc(t.size)}</td>`;
      body.insertBefore(tr, body.firstChild);
    }
    while (body.rows.length > 40) body.deleteRow(body.rows.length - 1);
    state.trades += list.length;
    $("trade-count").dataset.count = state.trades;
    $("trade-count").textContent = `${state.trades} since the page opened`;
  }

  // -- the market's event stream --------------------------------------------------------------------
  async function openStream() {
    if (state.stream) state.stream.abort();
    if (!state.venue || !state.market) return;
    const ctrl = new AbortController();
    state.stream = ctrl;
    state.candles.clear();
    const path = `/ui/stream/${encodeURIComponent(state.venue)}/${encodeURIComponent(state.market)}` +
      `?interval=${encodeURIComponent(state.interval)}`;
    $("candle-title").textContent = `${state.venue}:${state.market} ${state.interval}`;
    let delay = 500;
    while (!ctrl.signal.aborted) {
      try {
        setStatus("connecting…");
        const r = await fetch(path, { headers: headers(), signal: ctrl.signal, cache: "no-store" });
        if (r.status === 401) { needLogin("wrong or missing query token"); return; }
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        setStatus("live", "live");
        delay = 500;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const frame = buf.slice(0, cut); buf = buf.slice(cut + 2);
            let event = "message", data = "";
            for (const line of frame.split("\n")) {
              if (line.startsWith("event: ")) event = line.slice(7);
              else if (line.startsWith("data: ")) data += line.slice(6);
            }
            if (!data) continue;
            const msg = JSON.parse(data);
            if (event === "book") showBook(msg);
            else if (event === "candles") showCandles(msg);
            else if (event === "trades") showTrades(msg.trades);
            else if (event === "hello") $("status").title = "served by " + msg.worker;
          }
        }
      } catch (err) {
        if (ctrl.signal.aborted) return;
        setStatus("reconnecting: " + err.message, "error");
      }
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }

  // -- overview: market list, accounts, health -------------------------------------------------------
  function fillSelect(sel, values, keep) {
    const cur = keep ?? sel.value;
    const opts = values.map((v) => `<option${v === cur ? " selected" : ""}>${esc(v)}</option>`).join("");
    if (sel.innerHTML !== opts) sel.innerHTML = opts;
  }

  function showHealth(ov) {
    const rows = [];
    const venues = new Map();
    for (const w of ov.workers) {
      for (const m of w.markets) {
        const seen = Math.max(m.book_receive_ts || 0, m.last_trade_wall_ts || 0);
        venues.set(m.venue, Math.max(venues.get(m.venue) || 0, seen));
      }
    }
    const now = ov.workers[0].now_us;
    for (const [venue, seen] of [...venues.entries()].sort()) {
      const up = now - seen < 15e6;
      rows.push(`<tr><td>producer ${esc(venue)}</td><td class="${up ? "ok" : "bad"}">${up ? "up" : "quiet"}` +
        ` <span class="dim">(last event ${ago(seen, now)})</span></td></tr>`);
    }
    for (const w of ov.workers) {
      const h = w.health;
      const lag = Object.values(h.consumer_lag).reduce((a, b) => a + b, 0);
      const gapCount = Object.values(h.gap_markers).reduce((a, b) => a + b, 0);
      const gaps = Object.entries(h.gap_markers).map(([k, v]) => `${k} ${v}`).join(", ") || "0";
      const resets = (h.book_updates.reset || 0), outOfOrder = (h.book_updates.gap || 0);
      rows.push(`<tr><td>worker</td><td>${esc(w.worker)} <span class="${w.ready ? "ok" : "bad"}">` +
        `${w.ready ? "ready" : "not ready"}</span> <span class="dim">partitions ${w.partitions.join(",")}</span></td></tr>`,
        `<tr><td>consumer lag</td><td class="${lag > 1000 ? "warn" : ""}" data-lag="${lag}">${lag}</td></tr>`,
        `<tr><td>books</td><td><span class="${h.books_out_of_sync ? "bad" : "ok"}">${h.books_out_of_sync} out of sync</span>, ` +
        `<span class="${h.books_crossed ? "bad" : "ok"}">${h.books_crossed} crossed</span></td></tr>`,
        `<tr><td>resyncs</td><td>${resets} resets, ${outOfOrder} sequence gaps, ${h.book_updates.snapshot || 0} snapshots</td></tr>`,
        `<tr><td>gap markers</td><td class="${gapCount ? "warn" : ""}">${esc(gaps)}</td></tr>`);
      const bad = Object.entries(h.malformed).filter(([, v]) => v > 0);
      if (bad.length) rows.push(`<tr><td>malformed</td><td class="bad">${esc(bad.map(([k, v]) => `${k} ${v}`).join(", "))}</td></tr>`);
    }
    for (const u of ov.unreachable) rows.push(`<tr><td>worker</td><td class="bad">${esc(u)} does not answer</td></tr>`);
    $("health").innerHTML = `<table>${rows.join("")}</table>`;
  }

  async function showAccount() {
    const key = $("account").value;
    if (!key) { $("account-view").innerHTML = '<span class="dim">no account held by the processors</span>'; return; }
    const [venue, account] = key.split(/:(.*)/s);
    const base = `/accounts/${encodeURIComponent(venue)}/${encodeURIComponent(account)}`;
    const [bal, pos, ord, fil] = await Promise.all(["balances", "positions", "orders?status=open", "fills?limit=8"]
      .map((s) => getJSON(`${base}/${s}`)));
    const table = (title, rows, cols) => `<h2 class="dim">${title}</h2>` + (rows.length
      ? `<table><tr>${cols.map((c) => `<th>${c}</th>`).join("")}</tr>` +
        rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(r[c])}</td>`).join("")}</tr>`).join("") + "</table>"
      : '<div class="dim">none</div>');
    $("account-view").innerHTML =
      table("balances", Object.values(bal.balances), ["asset", "total", "available"]) +
      table("positions", Object.values(pos.positions), ["market", "side", "size", "entry_price"]) +
      table("open orders", ord.orders, ["market", "side", "price", "size", "status"]) +
      table("fills", fil.fills.slice().reverse(), ["market", "side", "price", "size"]) +
      (Object.keys(bal.gaps || {}).length ? `<div class="warn">gaps: ${esc(Object.keys(bal.gaps).join(", "))}</div>` : "");
  }

  async function refreshOverview() {
    let ov;
    try {
      ov = await getJSON("/ui/api/overview");
    } catch (err) {
      if (err instanceof Unauthorized) needLogin(token() ? "wrong query token" : "this port needs its query token");
      else setStatus("overview: " + err.message, "error");
      return;
    }
    state.overview = ov;
    const markets = ov.workers.flatMap((w) => w.markets);
    const venues = [...new Set(markets.map((m) => m.venue))].sort();
    const params = new URLSearchParams(location.search);
    if (!state.venue) state.venue = params.get("venue") || venues[0] || null;
    fillSelect($("venue"), venues, state.venue);
    const names = markets.filter((m) => m.venue === state.venue).map((m) => m.market).sort();
    if (!state.market || !names.includes(state.market)) {
      const wanted = params.get("market");
      state.market = names.includes(wanted) ? wanted : names[0] || null;
    }
    fillSelect($("market"), names, state.market);
    if (!state.interval) state.interval = params.get("interval") || ov.intervals[0];
    fillSelect($("interval"), ov.intervals, state.interval);
    const accounts = ov.workers.flatMap((w) => w.accounts).map((a) => `${a.venue}:${a.account}`).sort();
    fillSelect($("account"), accounts, $("account").value || accounts[0]);
    showHealth(ov);
    showAccount().catch((err) => { $("account-view").textContent = "account: " + err.message; });
  }

  const reopen = () => { state.trades = 0; $("trades").tBodies[0].innerHTML = ""; openStream(); };
  $("venue").addEventListener("change", (e) => { state.venue = e.target.value; state.market = null; refreshOverview().then(reopen); });
  $("market").addEventListener("change", (e) => { state.market = e.target.value; reopen(); });
  $("interval").addEventListener("change", (e) => { state.interval = e.target.value; openStream(); });
  $("account").addEventListener("change", () => showAccount());
  window.addEventListener("resize", () => state.book && drawDepth(state.book));

  async function start() {
    await refreshOverview();
    if (!state.market) {  // nothing materialized yet: look again until a market shows up
      setTimeout(start, 2000);
      return;
    }
    state.started = true;
    openStream();
    setInterval(refreshOverview, 3000);
  }
  start();
})();
