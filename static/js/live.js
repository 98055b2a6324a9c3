/* Live pages: one WebSocket to the feed (feed/, OpenAlgo's protocol), authenticated with a short-lived
   session token from /feed/token, on every signed-in page.

   - Prices: every element with data-key="EXCHANGE:SYMBOL" is subscribed (mode 1, or its data-mode). A tick
     rewrites the data-tick cells of that element (or inside it): "ltp", "oi", and "pnl" = data-base +
     qty x (ltp - base ltp), qty and base ltp read from the nearest data-qty / data-base-ltp ancestor. The
     page's data-tick="total" cells are data-base + the sum of those moves over every position row.
   - Order updates: the page's regions ([data-live-region], by id) are re-read from the JSON route named by
     <body data-live-refresh>, which answers {regions: {id: html}}; a rejected order raises a notice at once.
   - Notices (rejected orders) stay until acknowledged (POST /feed/notices/<id>/ack).
   - Without the socket (refused, dropped, no feed), the regions and notices are re-read every few seconds
     while it reconnects with backoff; with it, every data-live-resync seconds, in case a message was lost.
   The indicator (#live-status) says which. */
(function () {
  "use strict";

  var script = document.currentScript;
  var indicator = document.getElementById("live-status");
  var noticeArea = document.getElementById("live-notices");
  if (!script || !indicator || !noticeArea) { return; }
  var tokenUrl = script.getAttribute("data-token-url");
  var noticesUrl = script.getAttribute("data-notices-url");
  var refreshUrl = document.body.getAttribute("data-live-refresh") || "";
  var resyncMs = (parseFloat(document.body.getAttribute("data-live-resync")) || 60) * 1000;
  var csrfMeta = document.querySelector("meta[name=csrf-token]");
  var POLL_MS = 5000;
  var MAX_BACKOFF_MS = 30000;

  // Rupees as the pages write them (static/js/format.js: "₹1,23,456.70"); data-format="plain" drops the ₹.
  var inr = window.Algobridge && window.Algobridge.inr ? window.Algobridge.inr : function (v) { return String(v); };
  function money(el, value) { return inr(value, { sign: el.getAttribute("data-format") !== "plain" }); }
  var count = new Intl.NumberFormat("en-IN", { maximumFractionDigits: 0 });

  var ws = null;
  var authed = false;
  var stopped = false;
  var backoff = 1000;
  var subscribed = {};  // key -> mode asked of the feed
  var ltps = {};  // key -> the last traded price the feed sent
  var lastRefresh = Date.now();
  var refreshTimer = null;

  function setState(state, text) {
    indicator.setAttribute("data-state", state);
    indicator.querySelector(".live-label").textContent = text;
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(answer);
  }

  // A lapsed session answers 401 (our routes) or a redirect to the sign-in page (the pages' routes).
  function answer(resp) {
    if (resp.status === 401 || (resp.redirected && resp.url.indexOf("/auth/login") !== -1)) {
      signedOut();
      throw new Error("signed out");
    }
    if (!resp.ok) { throw new Error("HTTP " + resp.status); }
    return resp.json();
  }

  function signedOut() {
    stopped = true;
    setState("off", "signed out");
    if (ws) { ws.close(); }
  }

  // -- what the page shows ------------------------------------------------------------------------
  function wanted() {
    var out = {};
    document.querySelectorAll("[data-key]").forEach(function (el) {
      var key = el.getAttribute("data-key");
      var mode = parseInt(el.getAttribute("data-mode"), 10) || 1;
      if (key.indexOf(":") > 0 && !(out[key] >= mode)) { out[key] = mode; }
    });
    return out;
  }

  function instrument(key, mode) {
    var at = key.indexOf(":");
    var item = { exchange: key.slice(0, at), symbol: key.slice(at + 1) };
    if (mode) { item.mode = mode; }
    return item;
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(message)); }
  }

  // Subscribe what appeared, unsubscribe what went (after a region was re-rendered).
  function sync() {
    if (!authed) { return; }
    var want = wanted();
    var gone = [];
    var byMode = {};
    Object.keys(subscribed).forEach(function (key) {
      if (want[key] !== subscribed[key]) {
        gone.push(instrument(key, subscribed[key]));
        delete subscribed[key];
        delete ltps[key];
      }
    });
    Object.keys(want).forEach(function (key) {
      if (subscribed[key] === undefined) {
        (byMode[want[key]] = byMode[want[key]] || []).push(instrument(key));
        subscribed[key] = want[key];
      }
    });
    if (gone.length) { send({ action: "unsubscribe", symbols: gone }); }
    Object.keys(byMode).forEach(function (mode) {
      send({ action: "subscribe", symbols: byMode[mode], mode: parseInt(mode, 10) });
    });
  }

  // -- ticks --------------------------------------------------------------------------------------
  function number(value) {
    var n = parseFloat(value);
    return isFinite(n) ? n : null;
  }

  function showPnl(el, value) {
    var span = document.createElement("span");
    span.className = "pnl" + (value > 0 ? " pnl-up" : value < 0 ? " pnl-down" : "");
    span.textContent = inr(value);
    el.replaceChildren(span);
  }

  function showPrice(el, value) {
    var before = number(el.getAttribute("data-shown"));
    el.textContent = money(el, value);
    el.setAttribute("data-shown", String(value));
    el.classList.toggle("tick-up", before !== null && value > before);
    el.classList.toggle("tick-down", before !== null && value < before);
  }

  // The move of a position row's P&L since the server rendered it; null when it cannot be told.
  function move(row) {
    var ltp = ltps[row.getAttribute("data-key")];
    var base = number(row.getAttribute("data-base-ltp"));
    var qty = number(row.getAttribute("data-qty"));
    return ltp === undefined || !base || qty === null ? null : qty * (ltp - base);
  }

  function onTick(msg) {
    var data = msg.data || {};
    var key = msg.exchange + ":" + msg.symbol;
    var ltp = number(data.ltp);
    if (ltp === null) { return; }
    ltps[key] = ltp;
    paint(key, ltp, data);
    totals();
  }

  function paint(key, ltp, data) {
    var selector = '[data-key="' + key.replace(/["\\]/g, "\\$&") + '"]';
    document.querySelectorAll(selector).forEach(function (el) {
      var cells = el.hasAttribute("data-tick") ? [el] : el.querySelectorAll("[data-tick]");
      cells.forEach(function (cell) {
        var kind = cell.getAttribute("data-tick");
        if (kind === "ltp") {
          showPrice(cell, ltp);
        } else if (kind === "oi" && number(data.oi) !== null) {
          cell.textContent = count.format(data.oi);
        } else if (kind === "pnl") {
          var row = cell.closest("[data-qty]");
          var moved = row && move(row);
          var base = number(cell.getAttribute("data-base"));
          if (moved !== null && base !== null) { showPnl(cell, base + moved); }
        }
      });
    });
  }

  function totals() {
    var cells = document.querySelectorAll('[data-tick="total"]');
    if (!cells.length) { return; }
    var moved = 0;
    document.querySelectorAll("[data-qty][data-key]").forEach(function (row) { moved += move(row) || 0; });
    cells.forEach(function (cell) {
      var base = number(cell.getAttribute("data-base"));
      if (base === null) { return; }
      if (cell.getAttribute("data-format") === "pnl") { showPnl(cell, base + moved); } else { cell.textContent = money(cell, base + moved); }
    });
  }

  // -- regions ------------------------------------------------------------------------------------
  function refresh() {
    lastRefresh = Date.now();
    if (!refreshUrl) { return Promise.resolve(); }
    return getJson(refreshUrl).then(function (body) {
      Object.keys(body.regions || {}).forEach(function (id) {
        var region = document.getElementById(id);
        // Not under the user's hands: a field being edited inside it keeps its region until the next read.
        if (region && !(region.contains(document.activeElement) && document.activeElement.matches("input, select, textarea"))) {
          region.innerHTML = body.regions[id];
        }
      });
      // The server rendered its quotes; the feed's last ticks are as new or newer.
      Object.keys(ltps).forEach(function (key) { paint(key, ltps[key], {}); });
      totals();
      sync();
    }).catch(function () { /* the next poll or order update tries again */ });
  }

  function refreshSoon() {
    clearTimeout(refreshTimer);
    // Several updates of one order (open, then complete) arrive together: one read for all of them.
    refreshTimer = setTimeout(refresh, 250);
  }

  // -- notices ------------------------------------------------------------------------------------
  function noticeElement(id, title, message, orderid) {
    var box = document.createElement("div");
    box.className = "flash flash-error live-notice";
    box.setAttribute("role", "alert");
    if (id) { box.setAttribute("data-alert-id", id); }
    if (orderid) { box.setAttribute("data-orderid", orderid); }
    var p = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = title;
    p.append(strong, " " + message);
    var button = document.createElement("button");
    button.type = "button";
    button.className = "small js-ack";
    button.textContent = "Acknowledge";
    box.append(p, button);
    return box;
  }

  // The server's notices, plus those pushed by the feed that it does not list yet (matched by order id).
  function showNotices(list) {
    var text = list.map(function (n) { return n.message; }).join("\n");
    var pending = Array.prototype.filter.call(noticeArea.querySelectorAll(".live-notice[data-orderid]"), function (el) {
      return text.indexOf(el.getAttribute("data-orderid")) === -1;
    });
    noticeArea.replaceChildren.apply(noticeArea, list.map(function (n) {
      return noticeElement(n.id, n.title, n.message);
    }).concat(pending));
  }

  function loadNotices() {
    return getJson(noticesUrl).then(function (body) { showNotices(body.notices || []); return body.notices || []; });
  }

  function onRejected(msg) {
    var title = "Order rejected: " + msg.action + " " + msg.quantity + " " + msg.symbol;
    var reason = "Order " + msg.orderid + " (" + msg.exchange + ":" + msg.symbol + ") was rejected: " +
      (msg.rejection_reason || "no reason given");
    if (!noticeArea.querySelector('[data-orderid="' + String(msg.orderid).replace(/["\\]/g, "\\$&") + '"]')) {
      noticeArea.prepend(noticeElement(null, title, reason, String(msg.orderid)));
    }
    loadNotices().catch(function () { /* shown already; acknowledged once the server lists it */ });
  }

  function acknowledge(box) {
    var id = box.getAttribute("data-alert-id");
    var orderid = box.getAttribute("data-orderid");
    var find = id ? Promise.resolve(id) : loadNotices().then(function (list) {
      var match = list.filter(function (n) { return n.message.indexOf(orderid) !== -1; })[0];
      return match ? String(match.id) : null;
    });
    find.then(function (alertId) {
      if (!alertId) { box.remove(); return null; }
      return fetch(noticesUrl + "/" + encodeURIComponent(alertId) + "/ack", {
        method: "POST", credentials: "same-origin",
        headers: { Accept: "application/json", "X-CSRFToken": csrfMeta ? csrfMeta.content : "" }
      }).then(answer).then(function (body) { showNotices(body.notices || []); });
    }).catch(function () { box.querySelector(".js-ack").disabled = false; });
  }

  noticeArea.addEventListener("click", function (event) {
    var button = event.target.closest(".js-ack");
    if (button) {
      button.disabled = true;
      acknowledge(button.closest(".live-notice"));
    }
  });

  // -- the socket ---------------------------------------------------------------------------------
  function onMessage(event) {
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    var type = msg.type || msg.action;
    if (type === "market_data") {
      onTick(msg);
    } else if (type === "order_update") {
      if (String(msg.order_status).toLowerCase() === "rejected") { onRejected(msg); }
      refreshSoon();
    } else if (type === "auth") {
      if (msg.status === "success") {
        authed = true;
        backoff = 1000;
        subscribed = {};
        setState("live", "live");
        send({ action: "subscribe_orders" });
        sync();
        refreshSoon();  // whatever changed while the page had no socket
        loadNotices().catch(function () {});
      } else {
        ws.close();
      }
    } else if (type === "status" || type === "upstream") {
      // The broker's stream behind the feed dropped (the feed reconnects and resubscribes) or came back.
      var state = String(msg.status || msg.state || "").toLowerCase();
      if (state === "reconnecting" || state === "closed") { setState("reconnecting", "broker reconnecting"); }
      if (state === "connected" && authed) { setState("live", "live"); }
    }
  }

  function reconnectLater() {
    if (stopped) { return; }
    setState("polling", "refreshing every " + POLL_MS / 1000 + " s");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  }

  function connect() {
    if (stopped) { return; }
    getJson(tokenUrl).then(function (body) {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      var socket = new WebSocket(body.url || scheme + location.hostname + ":" + (body.port || 8765));
      ws = socket;
      socket.onopen = function () { socket.send(JSON.stringify({ action: "authenticate", session_token: body.token })); };
      socket.onmessage = onMessage;
      socket.onclose = function () {
        if (ws !== socket) { return; }
        ws = null;
        authed = false;
        subscribed = {};
        reconnectLater();
      };
    }).catch(function () {
      if (!ws) { reconnectLater(); }
    });
  }

  // The fallback and the resync share one clock: a read when the last one is older than the mode allows.
  setInterval(function () {
    if (stopped || document.hidden) { return; }
    if (Date.now() - lastRefresh >= (authed ? resyncMs : POLL_MS)) {
      refresh();
      if (!authed) { loadNotices().catch(function () {}); }
    }
  }, 1000);

  window.addEventListener("pagehide", function () {
    stopped = true;
    if (ws) { ws.close(); }
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {  // back from the browser's page cache: the socket was closed on the way out
      stopped = false;
      backoff = 1000;
      connect();
    }
  });

  setState("connecting", "connecting");
  connect();
}());
