// The seller's studio (/studio): sign in, create a live session, give OBS its server
// and key, then run the session: preview and stream health, pins, flash sales, chat
// moderation, viewers, orders and revenue as they change (docs/pages.md).

import {
  account, api, attempt, byId, el, explain, FLASH_EVENTS, formatPrice, showAccount, signIn,
  signOut,
} from "/assets/common.js";
import { WhepPlayer } from "/assets/player.js";
import { Socket } from "/assets/socketio.js";

const SAMPLES = 60; // points per sparkline
const MUTE_SECONDS = 300;
const MAX_SHOP_PAGES = 10;
const REFETCH_MS = 1000; // a busy stream changes stock many times a second
const SVG = "http://www.w3.org/2000/svg";
let room = null;

function path(liveSessionId, rest = "") {
  return `/api/live-sessions/${encodeURIComponent(liveSessionId)}${rest}`;
}

/** What to say about a Socket.IO answer: nothing when it succeeded. */
function said(answer) {
  return answer.ok ? "" : explain(answer.error);
}

/** A line through the last `values`, scaled to the box (`aria-label` says what it is). */
function drawLine(svg, values) {
  const top = Math.max(1, ...values) * 1.25; // headroom: a steady value sits mid-box
  const step = 120 / Math.max(1, values.length - 1);
  const points = values.map((value, i) => {
    const x = (i * step).toFixed(1);
    return `${x},${(30 - (value / top) * 28).toFixed(1)}`;
  });
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  line.setAttribute("class", "line");
  svg.replaceChildren(line);
}

function remember(series, value) {
  series.push(value);
  if (series.length > SAMPLES) series.shift();
}

/** `load` run at most once per `ms`, after the call that asks for it: the calls in
 * between fold into that one run, so a burst of events costs one request. */
function coalesced(load, ms) {
  let timer = null;
  return () => {
    timer ??= setTimeout(() => {
      timer = null;
      load().catch(() => {});
    }, ms);
  };
}

// Signing in, shops and sessions.

async function signedIn() {
  showAccount();
  byId("account").hidden = Boolean(account());
  byId("sessions").hidden = !account();
  if (account()) await attempt(byId("new-error"), loadShops);
}

async function loadShops() {
  const shops = [];
  let cursor = "";
  for (let page = 0; page < MAX_SHOP_PAGES; page++) {
    const found = await api("GET", `/api/shops/mine?limit=100${cursor}`);
    shops.push(...found.items);
    if (!found.next_cursor) break;
    cursor = `&cursor=${encodeURIComponent(found.next_cursor)}`;
  }
  byId("shop").replaceChildren(
    ...shops.map((shop) => el("option", { value: shop.id, text: shop.name })),
  );
  if (!shops.length) throw new Error("You run no shop yet: open one (POST /api/shops) or ask a shop's owner to add you.");
  await loadShop();
}

async function loadShop() {
  const shopId = encodeURIComponent(byId("shop").value);
  const [sessions, products] = await Promise.all([
    api("GET", `/api/live-sessions?shop_id=${shopId}&limit=50`),
    api("GET", `/api/products?shop_id=${shopId}&limit=100`),
  ]);
  byId("session-list").replaceChildren(...sessions.items.map((session) => {
    const open = el("button", { type: "button", text: `${session.title} · ${session.status}` });
    open.addEventListener("click", () => openRoom(session));
    return el("li", {}, [open]);
  }));
  byId("new-products").replaceChildren(...products.items.map((product) => {
    const box = el("input", { type: "checkbox", id: `pick-${product.id}`, value: product.id });
    const price = el("input", {
      type: "number", min: "0", id: `price-${product.id}`, placeholder: String(product.base_price),
      "aria-label": `Live price of ${product.name}`,
    });
    return el("li", { className: "row" }, [
      box,
      el("label", { for: box.id, text: `${product.name} (${formatPrice(product.base_price)})` }),
      price,
    ]);
  }));
}

async function createSession(event) {
  event.preventDefault();
  await attempt(byId("new-error"), async () => {
    const products = [...byId("new-products").querySelectorAll("input[type=checkbox]:checked")]
      .map((box) => {
        const price = byId(`price-${box.value}`).value;
        return { product_id: box.value, live_price: price === "" ? null : Number(price) };
      });
    const created = await api("POST", "/api/live-sessions", {
      shop_id: byId("shop").value,
      title: byId("new-title").value,
      scheduled_at: new Date(byId("new-start").value).toISOString(),
      products,
    });
    byId("new-session").reset();
    await loadShop();
    await openRoom(created, created.stream);
  });
}

// The control room of one session.

async function openRoom(session, stream = null) {
  room?.socket.close();
  room?.player.stop();
  const id = session.id;
  room = {
    id, server: stream?.server_url, key: stream?.stream_key, showKey: false,
    bitrate: [], fps: [], viewers: [],
    player: new WhepPlayer(byId("preview"), id, (text) => {
      byId("preview-status").textContent = text;
    }),
  };
  byId("room").hidden = false;
  byId("room-title").textContent = session.title;
  byId("room-link").href = `/live/${encodeURIComponent(id)}`;
  byId("room-title").focus();
  showObs();
  byId("health").textContent = "No stream yet.";
  byId("warnings").textContent = "";
  room.socket = roomSocket(room);
  await attempt(byId("room-error"), () => loadProducts(room));
  await attempt(byId("room-error"), () => loadOrders(room));
}

function roomSocket(current) {
  const live = { live_session_id: current.id };
  const refetchProducts = coalesced(() => loadProducts(current), REFETCH_MS);
  const refetchOrders = coalesced(() => loadOrders(current), REFETCH_MS);
  const socket = new Socket({ auth: { token: account().token } });
  socket
    .on("connect", async () => {
      const answer = await socket.request("session:join", live);
      if (!answer.ok) {
        byId("room-error").textContent = said(answer);
        return;
      }
      const snapshot = answer.snapshot;
      if (!snapshot.role) {
        byId("room-error").textContent = "Only the shop's team can run this session.";
      }
      showStatus(current, snapshot.status);
      showViewers(current, snapshot.viewers);
      showSales(snapshot.sales);
      byId("slow-mode").value = String(snapshot.slow_mode_seconds);
      byId("room-chat").replaceChildren(
        ...snapshot.messages.map((message) => chatLine(socket, live, message)),
      );
    })
    .on("connect_error", (error) => {
      byId("room-error").textContent = error?.message ?? "Refused";
    })
    .on("session:status", ({ status }) => showStatus(current, status))
    .on("stream:ended", () => showStatus(current, "ended"))
    .on("viewers:count", ({ viewers }) => showViewers(current, viewers))
    .on("sales:updated", (sales) => {
      showSales(sales);
      refetchOrders();
    })
    .on("stream:health", (health) => showHealth(current, health))
    .on("chat:message", (message) => byId("room-chat").append(chatLine(socket, live, message)))
    .on("chat:deleted", ({ message_id: messageId }) => {
      [...byId("room-chat").children].find((line) => line.dataset.id === messageId)?.remove();
    })
    .on("product:pinned", ({ product_id: productId }) => showPinned(productId))
    .on("product:unpinned", () => showPinned(null))
    .on("stock:changed", () => { // an order placed, cancelled or expired moves stock
      refetchProducts();
      refetchOrders();
    });
  for (const event of FLASH_EVENTS) {
    socket.on(event, (flash) => {
      byId("flash-state").textContent = `Flash sale ${flash.phase ?? "running"}: `
        + `${flash.sold} sold, ${flash.remaining} of ${flash.quantity} left.`;
    });
  }
  return socket.open();
}

function showStatus(current, status) {
  byId("room-status").textContent = status;
  byId("go-live").hidden = status !== "scheduled";
  byId("end").hidden = status === "ended";
  if (status === "live" && !current.player.pc) current.player.play();
  if (status === "ended") current.player.stop();
}

function showViewers(current, viewers) {
  byId("room-viewers").textContent = viewers;
  remember(current.viewers, viewers);
  drawLine(byId("viewers-chart"), current.viewers);
}

function showSales(sales) {
  if (!sales) return;
  byId("room-orders").textContent = sales.orders;
  byId("room-revenue").textContent = formatPrice(sales.revenue);
}

function showHealth(current, health) {
  const size = health.width ? `${health.width}×${health.height}` : "no video";
  byId("health").textContent = `${size} · ${health.frame_rate ?? 0} fps · `
    + `${Math.round(health.video_kbps ?? 0)} kb/s video · `
    + `${Math.round(health.audio_kbps ?? 0)} kb/s audio · `
    + `${health.webrtc_viewers ?? 0} watching over WebRTC`;
  const warnings = health.warnings ?? [];
  byId("warnings").textContent = warnings.map((warning) => warning.message).join(" ");
  remember(current.bitrate, health.video_kbps ?? 0);
  remember(current.fps, health.frame_rate ?? 0);
  drawLine(byId("bitrate-line"), current.bitrate);
  drawLine(byId("fps-line"), current.fps);
  if (!current.player.pc) current.player.play();
}

function chatLine(socket, live, message) {
  const act = (label, event, extra) => {
    const button = el("button", {
      type: "button",
      text: label,
      "aria-label": `${label} ${message.display_name}: ${message.text}`,
    });
    button.addEventListener("click", async () => {
      byId("room-error").textContent = said(await socket.request(event, { ...live, ...extra }));
    });
    return button;
  };
  return el("li", { "data-id": message.id }, [
    el("strong", { text: message.display_name }), " ", el("span", { text: message.text }), " ",
    act("Delete", "chat:delete", { message_id: message.id }),
    act("Mute 5 min", "chat:mute", { user_id: message.user_id, seconds: MUTE_SECONDS }),
    act("Ban", "chat:ban", { user_id: message.user_id }),
  ]);
}

async function loadProducts(current) {
  const session = await api("GET", path(current.id));
  if (current !== room) return;
  byId("room-products").replaceChildren(...(session.products ?? []).map((product) => {
    const pin = el("button", { type: "button", text: "Pin", "aria-label": `Pin ${product.name}` });
    pin.addEventListener("click", async () => {
      const answer = await room.socket.request("product:pin", {
        live_session_id: current.id, product_id: product.product_id,
      });
      byId("room-error").textContent = said(answer);
    });
    const price = formatPrice(product.live_price ?? product.price);
    return el("li", { className: "row", "data-product-id": product.product_id }, [
      el("span", { text: `${product.name} · ${price} · ${product.available} left` }), pin,
    ]);
  }));
  byId("flash-product").replaceChildren(...(session.products ?? []).map((product) => el("option", {
    value: product.product_id, text: product.name,
  })));
  showPinned(session.pinned_product_id);
}

function showPinned(productId) {
  for (const line of byId("room-products").children) {
    line.classList.toggle("pinned", line.dataset.productId === productId);
  }
}

/** The session's newest 100 orders: those with a line bought in it. */
async function loadOrders(current) {
  const shopId = encodeURIComponent(byId("shop").value);
  const liveSessionId = encodeURIComponent(current.id);
  const page = await api(
    "GET", `/api/orders?shop_id=${shopId}&live_session_id=${liveSessionId}&limit=100`,
  );
  if (current !== room) return;
  byId("room-order-list").replaceChildren(...page.items.map((order) => el("li", {
    text: `${order.code} · ${formatPrice(order.total)} · ${order.status}`,
  })));
}

function showObs() {
  byId("obs-server").textContent = room.server ?? "—";
  const key = room.showKey ? room.key : "••••••••";
  byId("obs-key").textContent = room.key ? key : "rotate to get a key";
  byId("show-key").textContent = room.showKey ? "Hide key" : "Show key";
  byId("show-key").setAttribute("aria-pressed", String(room.showKey));
  byId("obs-note").textContent = room.key ? ""
    : "A key is shown only when the session is created or its key rotated.";
}

async function copy(text, what) {
  await attempt(byId("obs-note"), async () => {
    if (!text) throw new Error(`No ${what} to copy yet: rotate the key.`);
    await navigator.clipboard.writeText(text);
    byId("obs-note").textContent = `${what} copied.`;
  });
}

byId("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  await attempt(byId("account-error"), async () => {
    await signIn(byId("email").value, byId("password").value);
    byId("password").value = "";
    await signedIn();
    byId("shop").focus();
  });
});

byId("sign-out").addEventListener("click", () => {
  signOut();
  room?.socket.close();
  room?.player.stop();
  room = null;
  byId("room").hidden = true;
  signedIn();
});

byId("shop").addEventListener("change", () => attempt(byId("new-error"), loadShop));
byId("new-session").addEventListener("submit", createSession);
byId("show-key").addEventListener("click", () => {
  room.showKey = !room.showKey;
  showObs();
});
byId("copy-server").addEventListener("click", () => copy(room.server, "Server"));
byId("copy-key").addEventListener("click", () => copy(room.key, "Stream key"));
byId("rotate-key").addEventListener("click", () => attempt(byId("obs-note"), async () => {
  const stream = await api("POST", path(room.id, "/stream-key/rotate"));
  Object.assign(room, { server: stream.server_url, key: stream.stream_key });
  showObs();
  byId("obs-note").textContent = "New key: the old one no longer works. Give OBS this one.";
}));
byId("go-live").addEventListener("click", () => attempt(byId("room-error"), async () => {
  showStatus(room, (await api("POST", path(room.id, "/start"))).status);
}));
byId("end").addEventListener("click", () => attempt(byId("room-error"), async () => {
  if (!confirm("End this live session for everyone?")) return;
  showStatus(room, (await api("POST", path(room.id, "/end"))).status);
}));
byId("unpin").addEventListener("click", async () => {
  byId("room-error").textContent = said(
    await room.socket.request("product:unpin", { live_session_id: room.id }),
  );
});
byId("set-slow-mode").addEventListener("click", async () => {
  byId("room-error").textContent = said(await room.socket.request("chat:slow_mode", {
    live_session_id: room.id, seconds: Number(byId("slow-mode").value),
  }));
});
byId("flash-form").addEventListener("submit", (event) => {
  event.preventDefault();
  attempt(byId("flash-state"), async () => {
    const flash = await api("POST", path(room.id, "/flash-sales"), {
      product_id: byId("flash-product").value,
      flash_price: Number(byId("flash-price-in").value),
      quantity: Number(byId("flash-quantity").value),
      duration_seconds: Number(byId("flash-duration").value),
    });
    byId("flash-state").textContent =
      `Flash sale ${flash.phase}: ${flash.remaining} of ${flash.quantity} left.`;
  });
});

addEventListener("pagehide", () => room?.player.stop());
signedIn();
