// The viewer page (/live/{id}): the stream over WHEP, and the session's room over
// Socket.IO (docs/realtime.md): chat, viewers, reactions, the pinned product, buying
// (buying.js) and, once the session has ended, its replay (replay.js). Everything
// people typed is shown with textContent, never parsed as HTML.

import { Buying } from "/assets/buying.js";
import {
  account, api, byId, el, explain, FLASH_EVENTS, formatPrice, showAccount, signIn, signOut,
} from "/assets/common.js";
import { WhepPlayer } from "/assets/player.js";
import { showReplay } from "/assets/replay.js";
import { Socket } from "/assets/socketio.js";

const liveSessionId = decodeURIComponent(location.pathname.split("/")[2] ?? "");
const session = { live_session_id: liveSessionId };
const STATUS = { scheduled: "Starting soon", live: "Live", ended: "Ended" };
const player = new WhepPlayer(byId("video"), liveSessionId, (text) => {
  byId("video-status").textContent = text;
});
const buying = new Buying(liveSessionId, signedInOrAsk);
const reactionTotals = {};
// A moderator's mute (in this session) or ban (from the shop's chat) of this viewer.
const silenced = { banned: false, mutedUntil: 0, timer: null };
let socket = null;
let pinned = null;
let afterSignIn = null; // where the keyboard was when sign-in was asked for

function connect() {
  socket?.close();
  byId("status").textContent = "Connecting…";
  const signedIn = account();
  socket = new Socket({ auth: signedIn ? { token: signedIn.token } : null })
    .on("connect", join)
    .on("disconnect", () => { byId("status").textContent = "Reconnecting…"; })
    .on("connect_error", refused)
    .on("error", (refusal) => { byId("chat-error").textContent = explain(refusal); })
    .on("session:status", ({ status }) => showStatus(status))
    .on("stream:reconnecting", () => player.say("The seller's stream dropped; waiting for it."))
    .on("stream:resumed", () => player.play())
    .on("stream:ended", () => showStatus("ended"))
    .on("viewers:count", ({ viewers }) => { byId("viewers").textContent = viewers; })
    .on("chat:message", addMessage)
    .on("chat:deleted", ({ message_id: id }) => messageItem(id)?.remove())
    .on("chat:slow_mode", ({ seconds }) => showSlowMode(seconds))
    .on("chat:muted", muted)
    .on("chat:banned", (ban) => banned(ban, true))
    .on("chat:unbanned", (ban) => banned(ban, false))
    .on("reaction:counts", ({ counts }) => addReactions(counts))
    .on("product:pinned", showProduct)
    .on("product:unpinned", () => showProduct(null))
    .on("stock:changed", ({ product_id: productId, available }) => {
      if (pinned?.product_id === productId) showLeft((pinned.available = available));
    })
    .on("order:paid", (order) => buying.paid(order))
    .on("cart:updated", () => buying.refreshCart());
  for (const event of FLASH_EVENTS) socket.on(event, (flash) => buying.flashChanged(flash));
  socket.open();
}

async function join() {
  const answer = await socket.request("session:join", session);
  if (!answer.ok) {
    byId("status").textContent = explain(answer.error);
    return;
  }
  const snapshot = answer.snapshot;
  byId("title").textContent = snapshot.title;
  document.title = `${snapshot.title} · Stream Cart`;
  byId("viewers").textContent = snapshot.viewers;
  byId("messages").replaceChildren(...snapshot.messages.map(messageView));
  scrollChat();
  showSlowMode(snapshot.slow_mode_seconds);
  showProduct(snapshot.pinned);
  buying.flashChanged(snapshot.flash);
  showStatus(snapshot.status);
  if (account()) buying.refreshCart();
}

function refused(error) {
  if (error?.data?.code === "invalid-token" && account()) {
    signOut();
    signedInOrOut();
    byId("account-error").textContent = "Your sign-in has expired; please sign in again.";
    return;
  }
  byId("status").textContent = `Cannot connect: ${error?.message ?? "refused"}`;
}

function showStatus(status) {
  byId("status").textContent = STATUS[status] ?? status;
  if (status === "live" && !player.playing) player.play();
  if (status === "scheduled") player.say("The stream has not started yet.");
  if (status === "ended" && !buying.replay) {
    player.stop();
    player.say("This live session has ended.");
    buying.replay = true; // bought from a replay: regular prices, no stream to count in
    showReplay(liveSessionId, replayed, nameOf)
      .then((shown) => { byId("stage").hidden = shown; })
      .catch(() => {});
  }
}

/** The product the seller had pinned at this moment of the replay, as its card. */
async function replayed(productId) {
  const info = productId && await buying.productInfo(productId).catch(() => null);
  showProduct(info ? {
    product_id: info.id, name: info.name, image: info.images[0], price: info.base_price,
    live_price: null, available: info.variants.reduce((sum, variant) => sum + variant.available, 0),
  } : null);
}

async function nameOf(productId) {
  return (await buying.productInfo(productId).catch(() => null))?.name ?? "";
}

function messageView(message) {
  return el("li", { "data-id": message.id }, [
    el("strong", { text: message.display_name }), " ", el("span", { text: message.text }),
  ]);
}

function messageItem(id) {
  return [...byId("messages").children].find((item) => item.dataset.id === id);
}

function addMessage(message) {
  byId("messages").append(messageView(message));
  scrollChat();
}

function scrollChat() {
  const list = byId("messages");
  list.scrollTop = list.scrollHeight;
}

function showSlowMode(seconds) {
  const notice = byId("slow-mode");
  notice.hidden = !seconds;
  notice.textContent = seconds ? `Slow mode: one message every ${seconds} s.` : "";
}

/** A mute lasts `seconds` from now (0 lifts it): counted on this device's monotonic
 * clock, so a wrong wall clock does not matter. */
function muted({ live_session_id: id, seconds }) {
  if (id !== liveSessionId) return;
  clearTimeout(silenced.timer);
  silenced.mutedUntil = performance.now() + seconds * 1000;
  silenced.timer = setTimeout(() => {
    silenced.mutedUntil = 0;
    showSilenced();
  }, seconds * 1000);
  showSilenced();
}

/** A ban covers every session of its shop: one from another session counts here when
 * that session is this shop's (asked only then, as bans are rare). */
async function banned(ban, isBanned) {
  if (ban.live_session_id !== liveSessionId) {
    const here = await api("GET", `/api/live-sessions/${encodeURIComponent(liveSessionId)}`)
      .catch(() => null);
    if (here?.shop_id !== ban.shop_id) return;
  }
  silenced.banned = isBanned;
  showSilenced();
}

/** Say at once why the chat is closed to this viewer, and close it until that ends. */
function showSilenced() {
  const left = Math.ceil((silenced.mutedUntil - performance.now()) / 1000);
  let why = "";
  if (silenced.banned) why = "A moderator banned you from this shop's chat. You can still watch.";
  else if (left > 0) why = `A moderator muted you for ${forHowLong(left)}. You can still watch.`;
  byId("chat-closed").textContent = why;
  byId("chat-closed").hidden = !why;
  for (const control of byId("chat-form").elements) control.disabled = Boolean(why);
}

function forHowLong(seconds) {
  if (seconds < 60) return `${seconds} s`;
  return seconds < 3600 ? `${Math.ceil(seconds / 60)} min` : `${Math.ceil(seconds / 3600)} h`;
}

function addReactions(counts) {
  for (const [kind, count] of Object.entries(counts)) {
    reactionTotals[kind] = (reactionTotals[kind] ?? 0) + count;
    const total = document.querySelector(`[data-kind="${CSS.escape(kind)}"] .count`);
    if (total) total.textContent = reactionTotals[kind];
  }
}

function showProduct(product) {
  pinned = product;
  buying.pinned(product);
  byId("product").hidden = !product;
  if (!product) return;
  const live = product.live_price ?? product.price;
  byId("product-name").textContent = product.name;
  byId("product-price").textContent = formatPrice(live);
  byId("product-regular").textContent = live < product.price ? formatPrice(product.price) : "";
  const image = byId("product-image");
  const source = ownImage(product.image);
  image.hidden = !source;
  if (source) image.src = source;
  else image.removeAttribute("src");
  showLeft(product.available);
}

/** Only images this origin serves: the page loads nothing from other hosts. */
function ownImage(address) {
  if (!address) return null;
  const url = new URL(address, location.href);
  return url.origin === location.origin ? url.href : null;
}

function showLeft(available) {
  byId("product-left").textContent = available > 0 ? `${available} left` : "Sold out";
}

byId("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byId("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (!signedInOrAsk(input, byId("chat-error"), "Sign in to chat.")) return;
  const answer = await socket.request("chat:send", { ...session, text });
  byId("chat-error").textContent = answer.ok ? "" : explain(answer.error);
  if (answer.ok) input.value = "";
});

for (const button of document.querySelectorAll("[data-kind]")) {
  button.addEventListener("click", async () => {
    if (!signedInOrAsk(button, byId("reaction-error"), "Sign in to react.")) return;
    const answer = await socket.request("reaction:send", { ...session, kind: button.dataset.kind });
    byId("reaction-error").textContent = answer.ok ? "" : explain(answer.error);
  });
}

byId("unmute").addEventListener("click", () => {
  const video = byId("video");
  video.muted = !video.muted;
  video.play().catch(() => {});
  byId("unmute").textContent = video.muted ? "Unmute" : "Mute";
});

byId("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await signIn(byId("email").value, byId("password").value);
    byId("account-error").textContent = "";
    byId("password").value = "";
    signedInOrOut();
    (afterSignIn ?? byId("sign-out")).focus();
    afterSignIn = null;
  } catch (error) {
    byId("account-error").textContent = error.message;
  }
});

byId("sign-out").addEventListener("click", () => {
  signOut();
  signedInOrOut();
});

/** True when signed in; otherwise say why in `notice`, take the keyboard to the
 * sign-in form, and bring it back to `returnTo` after. */
function signedInOrAsk(returnTo, notice, why) {
  if (account()) return true;
  notice.textContent = why;
  afterSignIn = returnTo;
  byId("email").focus();
  return false;
}

/** The socket and the video both carry who is watching: a signed-in viewer counts once. */
function signedInOrOut() {
  clearTimeout(silenced.timer);
  Object.assign(silenced, { banned: false, mutedUntil: 0, timer: null });
  showSilenced();
  showAccount();
  buying.signedInOrOut();
  connect();
  if (player.pc) player.play();
}

addEventListener("pagehide", () => player.stop());
showAccount();
connect();
