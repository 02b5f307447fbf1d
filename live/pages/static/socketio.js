// A small Socket.IO client of our own: Socket.IO v5 packets over the Engine.IO v4
// WebSocket transport only (no long-polling, no binary attachments, the default
// namespace only), which is all the pages need from this server. Why not the official
// client: docs/pages.md.

import { backoffMs } from "/assets/common.js";

const OPEN = "0";
const CLOSE = "1";
const PING = "2";
const PONG = "3";
const MESSAGE = "4";

const CONNECT = "0";
const DISCONNECT = "1";
const EVENT = "2";
const ACK = "3";
const CONNECT_ERROR = "4";

const PACKET = /^(\d)(\d*)([\s\S]*)$/; // type, ack id, JSON data
const ACK_TIMEOUT_MS = 10000;

function disconnected(message) {
  return { ok: false, error: { code: "disconnected", message } };
}

/** One connection to this page's own server, reconnecting with back-off when it
 * drops. Events: "connect", "disconnect", "connect_error" and the server's own. */
export class Socket {
  constructor({ auth = null, path = "/socket.io/" } = {}) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.url = `${scheme}//${location.host}${path}?EIO=4&transport=websocket`;
    this.auth = auth;
    this.connected = false;
    this.handlers = new Map();
    this.acks = new Map();
    this.nextAck = 0;
    this.retries = 0;
    this.closed = false;
    this.ws = null;
    this.watchdog = null;
    this.retry = null;
  }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  open() {
    this.closed = false;
    const ws = new WebSocket(this.url);
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = () => this.dropped(ws);
    this.ws = ws;
    return this;
  }

  /** Close for good (no reconnect). */
  close() {
    this.closed = true;
    this.connected = false; // closed on purpose: no "disconnect" event
    clearTimeout(this.retry);
    this.ws?.close();
  }

  /** Fire and forget; a refusal comes back as an "error" event. */
  emit(event, payload) {
    if (this.connected) this.send(MESSAGE + EVENT + JSON.stringify([event, payload]));
  }

  /** The server's answer ({ok: true, ...} or {ok: false, error}), never a rejection:
   * being offline or a lost answer is an answer too. */
  request(event, payload) {
    if (!this.connected) return Promise.resolve(disconnected("Not connected to the server."));
    const id = this.nextAck++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(id, disconnected("No answer from the server.")),
        ACK_TIMEOUT_MS);
      this.acks.set(id, { resolve, timer });
      this.send(MESSAGE + EVENT + id + JSON.stringify([event, payload]));
    });
  }

  send(text) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  fire(event, ...args) {
    for (const handler of this.handlers.get(event) ?? []) handler(...args);
  }

  settle(id, answer) {
    const pending = this.acks.get(id);
    if (!pending) return;
    this.acks.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(answer);
  }

  receive(text) {
    switch (text[0]) {
      case OPEN: {
        const { pingInterval, pingTimeout } = JSON.parse(text.slice(1));
        this.silence = pingInterval + pingTimeout;
        this.heard();
        this.send(MESSAGE + CONNECT + (this.auth ? JSON.stringify(this.auth) : ""));
        break;
      }
      case PING:
        this.heard();
        this.send(PONG);
        break;
      case MESSAGE:
        this.packet(text.slice(1));
        break;
      case CLOSE:
        this.ws.close();
        break;
    }
  }

  /** The server pings every pingInterval; silence past pingTimeout means a dead link. */
  heard() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => this.ws.close(), this.silence);
  }

  packet(text) {
    const [, type, id, json] = PACKET.exec(text) ?? [];
    const data = json ? JSON.parse(json) : undefined;
    switch (type) {
      case CONNECT:
        this.connected = true;
        this.retries = 0;
        this.fire("connect");
        break;
      case CONNECT_ERROR:
        this.closed = true; // a refused token stays refused: the page decides what next
        this.fire("connect_error", data);
        this.ws.close();
        break;
      case EVENT:
        this.fire(...data);
        break;
      case ACK:
        this.settle(Number(id), data[0]);
        break;
      case DISCONNECT:
        this.closed = true; // the server closed this socket on purpose
        this.ws.close();
        break;
    }
  }

  dropped(ws) {
    if (ws !== this.ws) return;
    clearTimeout(this.watchdog);
    for (const id of [...this.acks.keys()]) {
      this.settle(id, disconnected("The connection dropped."));
    }
    const was = this.connected;
    this.connected = false;
    if (was) this.fire("disconnect");
    if (this.closed) return;
    this.retry = setTimeout(() => this.open(), backoffMs(this.retries++));
  }
}
