// Buying on the viewer page: the pinned product's Add to cart and Buy now, the cart,
// the flash sale with its countdown on the server's clock, and each order's
// bank-transfer details (VietQR, amount, transfer content, deadline) until it is paid.

import { api, attempt, byId, el, formatPrice, minutesSeconds } from "/assets/common.js";

const TICK_MS = 250;

/** The server's clock, as last told: countdowns never trust the device's. */
class ServerClock {
  constructor() {
    this.offsetMs = 0;
  }

  heard(serverTime) {
    if (serverTime) this.offsetMs = Date.parse(serverTime) - Date.now();
  }

  now() {
    return Date.now() + this.offsetMs;
  }
}

function countdown(ms) {
  return minutesSeconds(Math.max(0, Math.ceil(ms / 1000)));
}

export class Buying {
  /** `signedIn(returnTo, notice, why)` is true when signed in, else asks to sign in. */
  constructor(liveSessionId, signedIn) {
    this.liveSessionId = liveSessionId;
    this.signedIn = signedIn;
    this.clock = new ServerClock();
    this.product = null;
    this.flash = null;
    this.replay = false; // the session has ended: buying from its replay
    this.products = new Map(); // product id -> the catalog's product, asked once
    byId("add-to-cart").addEventListener("click", () => this.addToCart());
    byId("buy-now").addEventListener("click", () => this.buyNow());
    byId("cart-checkout").addEventListener("click", () => this.checkOutCart());
    byId("flash-claim").addEventListener("click", () => this.claim());
    setInterval(() => this.tick(), TICK_MS);
  }

  async productInfo(productId) {
    if (!this.products.has(productId)) {
      const asked = api("GET", `/api/products/${encodeURIComponent(productId)}`);
      asked.catch(() => this.products.delete(productId)); // ask again next time
      this.products.set(productId, asked);
    }
    return this.products.get(productId);
  }

  /** The pinned product changed (or is gone): offer its variants when it has several. */
  async pinned(product) {
    this.product = product;
    const picker = byId("variant-picker");
    picker.hidden = true;
    if (!product) return;
    const info = await this.productInfo(product.product_id).catch(() => null);
    if (this.product !== product || !info) return;
    const variants = info.variants.filter((variant) => !variant.archived && !variant.is_default);
    byId("variant").replaceChildren(...variants.map((variant) => el("option", {
      value: variant.id, text: Object.values(variant.options).join(" / ") || variant.sku || "",
    })));
    picker.hidden = variants.length < 2;
  }

  line() {
    const picker = byId("variant-picker");
    return {
      product_id: this.product.product_id,
      variant_id: picker.hidden ? undefined : byId("variant").value,
      quantity: 1,
      live_session_id: this.replay ? undefined : this.liveSessionId,
    };
  }

  async addToCart() {
    if (!this.signedIn(byId("add-to-cart"), byId("buy-error"), "Sign in to buy.")) return;
    await attempt(byId("buy-error"), async () => {
      this.showCart(await api("POST", "/api/cart/items", this.line()));
    });
  }

  async buyNow() {
    if (!this.signedIn(byId("buy-now"), byId("buy-error"), "Sign in to buy.")) return;
    await attempt(byId("buy-error"), async () => {
      const placed = await api("POST", "/api/orders/checkout", {
        payment_method: "bank_transfer", items: [this.line()],
      });
      this.showOrders(placed.orders);
    });
  }

  async checkOutCart() {
    await attempt(byId("cart-error"), async () => {
      const placed = await api("POST", "/api/orders/checkout", { payment_method: "bank_transfer" });
      this.showOrders(placed.orders);
      await this.refreshCart();
    });
  }

  async claim() {
    if (!this.signedIn(byId("flash-claim"), byId("flash-error"), "Sign in to buy.")) return;
    const path = `/api/live-sessions/${encodeURIComponent(this.liveSessionId)}`
      + `/flash-sales/${encodeURIComponent(this.flash.id)}/claim`;
    await attempt(byId("flash-error"), async () => {
      this.showOrders([await api("POST", path, { quantity: 1 })]);
    });
  }

  /** The cart changed somewhere (this tab, another, a checkout): show it as it is now. */
  async refreshCart() {
    this.showCart(await api("GET", "/api/cart").catch(() => null));
  }

  showCart(cart) {
    const section = byId("cart");
    section.hidden = !cart?.items.length;
    if (section.hidden) return;
    byId("cart-items").replaceChildren(...cart.items.map((item) => el("li", {
      text: `${item.quantity} × ${item.name} · ${formatPrice(item.unit_price)}`,
    })));
    byId("cart-subtotal").textContent = formatPrice(cart.subtotal);
  }

  /** Another buyer's cart and orders are not this one's: clear them (and refill). */
  signedInOrOut() {
    this.showCart(null);
    byId("checkout").hidden = true;
    byId("orders").replaceChildren();
  }

  showOrders(orders) {
    byId("orders").replaceChildren(...orders.map(orderView));
    byId("checkout").hidden = false;
    byId("checkout-heading").focus();
  }

  /** `order:paid` for one of this buyer's orders (maybe from another tab). */
  paid({ order_id: orderId }) {
    const view = [...byId("orders").children].find((item) => item.dataset.orderId === orderId);
    if (view) view.querySelector(".order-status").textContent = "Paid. Thank you!";
  }

  /** A flash sale as the snapshot and `flash:*` events carry it (or null), or only its
   * new counts (`flash:claimed`, `flash:returned`). */
  flashChanged(flash) {
    if (flash?.phase) {
      this.flash = flash;
      this.clock.heard(flash.server_time);
      this.nameFlash(flash);
    } else if (!flash) {
      this.flash = null;
    } else if (flash.id === this.flash?.id) {
      Object.assign(this.flash, flash);
    }
    this.showFlash();
  }

  async nameFlash(flash) {
    const info = await this.productInfo(flash.product_id).catch(() => null);
    if (flash === this.flash && info) byId("flash-name").textContent = info.name;
  }

  showFlash() {
    const flash = this.flash;
    byId("flash").hidden = !flash || flash.phase === "ended";
    if (byId("flash").hidden) return;
    byId("flash-price").textContent = formatPrice(flash.flash_price);
    byId("flash-regular").textContent = formatPrice(flash.regular_price);
    byId("flash-left").textContent = flash.remaining > 0
      ? `${flash.remaining} of ${flash.quantity} left` : "Sold out";
    byId("flash-claim").disabled = flash.phase !== "started" || flash.remaining <= 0;
    this.tick();
  }

  tick() {
    const flash = this.flash;
    if (!flash || flash.phase === "ended") return;
    const now = this.clock.now();
    byId("flash-clock").textContent = flash.phase === "scheduled"
      ? `Starts in ${countdown(Date.parse(flash.starts_at) - now)}`
      : `Ends in ${countdown(Date.parse(flash.ends_at) - now)}`;
  }
}

function orderView(order) {
  const payment = order.payment;
  const details = [["Total", formatPrice(order.total)]];
  const children = [
    el("p", {}, ["Order ", el("strong", { text: order.code }), ": ",
      el("span", { className: "order-status", role: "status", text: waiting(order) })]),
  ];
  if (payment) {
    details.push(
      ["Amount to transfer", formatPrice(payment.amount - payment.received)],
      ["Transfer content", payment.code],
      ["Bank", payment.bank ? `${payment.bank} ${payment.account}` : "—"],
      ["Pay before", new Date(payment.expires_at).toLocaleString()],
    );
    children.push(payment.qr_url
      ? el("img", { className: "qr", src: payment.qr_url,
        alt: `VietQR code: transfer ${formatPrice(payment.amount)} with content ${payment.code}` })
      : el("p", { className: "notice", text: payment.qr_missing_reason ?? "" }));
  }
  children.push(el("dl", {}, details.flatMap(([term, value]) => [
    el("dt", { text: term }), el("dd", { text: value }),
  ])));
  return el("article", { className: "order", "data-order-id": order.id }, children);
}

function waiting(order) {
  if (order.status === "paid") return "Paid. Thank you!";
  return order.status === "pending_payment" ? "Waiting for your transfer" : order.status;
}
