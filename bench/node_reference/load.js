// The load process of bench/socketio_fanout.py: N viewers and one seller in one live
// session; the seller pins products at a fixed rate and every viewer times each
// `product:pinned` it receives against the send time stamped here (one clock).
//
//   node load.js <config.json>
// Progress and the result are JSON lines on stdout: {"phase": "joined" | "start" |
// "end" | "result", ...}. Everything is bounded: join and drain timeouts, update count.
"use strict";

const fs = require("node:fs");
const { performance } = require("node:perf_hooks");
const { io } = require("socket.io-client");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const products = config.product_ids;
const sendTimes = new Float64Array(config.updates);
const latencies = new Float64Array(config.viewers * config.updates);
let received = 0;
let unmatched = 0;
let sent = 0;
let ackFailures = 0;
let lastDelivery = 0;
let allReceived = null;

function report(phase, fields = {}) {
  process.stdout.write(JSON.stringify({ phase, ...fields }) + "\n");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function connect(auth) {
  return io(config.url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: config.join_timeout_s * 1000,
    auth,
  });
}

// Update k pins products[k % M]: a viewer's next delivery of product p is the first
// update at or after the one it expects next that pinned p (robust to lost deliveries).
function viewer(socket) {
  let next = 0;
  socket.on("product:pinned", (card) => {
    const now = performance.now();
    let k = next;
    while (k < sent && products[k % products.length] !== card.product_id) k += 1;
    if (k >= sent) {
      unmatched += 1;
      return;
    }
    latencies[received] = now - sendTimes[k];
    received += 1;
    lastDelivery = now;
    next = k + 1;
    if (allReceived && received >= allReceived.expected) allReceived.resolve();
  });
}

async function join(socket) {
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
  const answer = await socket
    .timeout(config.join_timeout_s * 1000)
    .emitWithAck("session:join", { live_session_id: config.live_session_id });
  if (!answer.ok) throw new Error(JSON.stringify(answer.error));
}

async function joinViewers() {
  const joined = [];
  let failures = 0;
  let index = 0;
  async function worker() {
    while (index < config.viewers) {
      index += 1;
      const socket = connect(undefined);
      try {
        await join(socket);
        viewer(socket);
        joined.push(socket);
      } catch {
        failures += 1;
        socket.close();
      }
    }
  }
  await Promise.all(Array.from({ length: config.join_concurrency }, worker));
  return { joined, failures };
}

async function broadcast(seller) {
  const interval = 1000 / config.rate;
  const started = performance.now();
  for (let k = 0; k < config.updates; k += 1) {
    const due = started + k * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    sendTimes[k] = performance.now();
    sent = k + 1;
    const pin = { live_session_id: config.live_session_id, product_id: products[k % products.length] };
    seller.timeout(config.drain_timeout_s * 1000).emit("product:pin", pin, (err, answer) => {
      if (err || !answer.ok) ackFailures += 1;
    });
  }
  return started;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return 0;
  return sorted[Math.max(1, Math.ceil((q / 100) * sorted.length)) - 1];
}

async function main() {
  const joinStarted = performance.now();
  const seller = connect(config.seller_token ? { token: config.seller_token } : undefined);
  await join(seller);
  const { joined, failures } = await joinViewers();
  report("joined", { viewers: joined.length, join_failures: failures, join_s: (performance.now() - joinStarted) / 1000 });
  await sleep(config.settle_s * 1000);

  const expected = joined.length * config.updates;
  const done = new Promise((resolve) => (allReceived = { expected, resolve }));
  report("start");
  const firstSend = await broadcast(seller);
  const lastSend = performance.now();
  await Promise.race([done, sleep(config.drain_timeout_s * 1000)]);
  report("end");

  const sorted = latencies.subarray(0, received).sort();
  const elapsed = ((lastDelivery || lastSend) - firstSend) / 1000;
  report("result", {
    viewers: joined.length,
    join_failures: failures,
    updates: sent,
    expected,
    received,
    lost: expected - received,
    unmatched,
    ack_failures: ackFailures,
    send_s: (lastSend - firstSend) / 1000,
    elapsed_s: elapsed,
    deliveries_per_s: elapsed > 0 ? received / elapsed : 0,
    latency_ms: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: percentile(sorted, 100) },
  });
  for (const socket of [seller, ...joined]) socket.close();
  process.exit(0);
}

main().catch((error) => {
  report("error", { message: String(error && error.stack ? error.stack : error) });
  process.exit(1);
});
