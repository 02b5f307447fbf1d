// A load process of bench/socketio_fanout.py, in one of two roles, so the load can be
// spread over several processes (one seller, any number of viewer processes) and the
// load generator is not what limits the run:
//
// - "seller": joins the session, waits for {"go": true} on stdin, then pins products at a
//   fixed rate and reports when it sent each pin ({"phase": "sent", "send_times": [...]}).
// - "viewers": joins `viewers` guests ({"phase": "joined", ...}), records when each
//   `product:pinned` arrives and which pin it answers, then, given the seller's send
//   times ({"send_times": [...]} on stdin), waits for the rest (bounded), writes every
//   latency (little-endian float64, ms) to `latencies_path` and reports counts and, per
//   pin, when its last delivery here arrived ({"phase": "result", ...}).
//
// Every time is on the machine's wall clock in ms (performance.timeOrigin + now), which
// all the processes share.
//
//   node load.js <config.json>
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { performance } = require("node:perf_hooks");
const { io } = require("socket.io-client");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const products = config.product_ids;
const began = performance.timeOrigin + performance.now();

function now() {
  return performance.timeOrigin + performance.now();
}

function report(phase, fields = {}) {
  process.stdout.write(JSON.stringify({ phase, ...fields }) + "\n");
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const commands = readline.createInterface({ input: process.stdin });
const pending = [];
commands.on("line", (line) => {
  const waiter = pending.shift();
  if (waiter) waiter(JSON.parse(line));
});
function command() {
  return new Promise((resolve) => pending.push(resolve));
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

async function seller() {
  const socket = connect(config.seller_token ? { token: config.seller_token } : undefined);
  await join(socket);
  report("joined", { viewers: 0, join_failures: 0, began_at: began, joined_at: now() });
  await command(); // {"go": true}
  const sendTimes = [];
  let ackFailures = 0;
  const interval = 1000 / config.rate;
  const started = performance.now();
  for (let k = 0; k < config.updates; k += 1) {
    const wait = started + k * interval - performance.now();
    if (wait > 0) await sleep(wait);
    sendTimes.push(now());
    const pin = { live_session_id: config.live_session_id, product_id: products[k % products.length] };
    socket.timeout(config.drain_timeout_s * 1000).emit("product:pin", pin, (err, answer) => {
      if (err || !answer.ok) ackFailures += 1;
    });
  }
  report("sent", { send_times: sendTimes });
  await command(); // {"stop": true}: the acks are in by now, or never will be
  report("result", { ack_failures: ackFailures });
  socket.close();
}

async function viewers() {
  const capacity = config.viewers * config.updates;
  const pins = new Int32Array(capacity); // which pin each delivery answers
  const arrivals = new Float64Array(capacity);
  let received = 0;
  let unmatched = 0;
  let expected = Infinity;
  let allIn = null;

  // Pin k shows products[k % M]: a viewer's next delivery of product p answers the
  // first pin at or after the one it expects next that showed p (so a lost delivery
  // does not shift the rest).
  function watch(socket) {
    let next = 0;
    socket.on("product:pinned", (card) => {
      const at = now();
      let k = next;
      while (k < config.updates && products[k % products.length] !== card.product_id) k += 1;
      if (k >= config.updates) {
        unmatched += 1;
        return;
      }
      pins[received] = k;
      arrivals[received] = at;
      received += 1;
      next = k + 1;
      if (allIn && received >= expected) allIn();
    });
  }

  const joined = [];
  let failures = 0;
  let index = 0;
  async function worker() {
    while (index < config.viewers) {
      index += 1;
      const socket = connect(undefined);
      try {
        await join(socket);
        watch(socket);
        joined.push(socket);
      } catch {
        failures += 1;
        socket.close();
      }
    }
  }
  await Promise.all(Array.from({ length: config.join_concurrency }, worker));
  report("joined", { viewers: joined.length, join_failures: failures, began_at: began, joined_at: now() });

  const { send_times: sendTimes } = await command();
  expected = joined.length * sendTimes.length;
  if (received < expected) {
    await Promise.race([new Promise((resolve) => (allIn = resolve)), sleep(config.drain_timeout_s * 1000)]);
  }
  const latencies = new Float64Array(received);
  let lastArrival = 0;
  const lastSeen = new Array(sendTimes.length).fill(0);
  const seen = new Int32Array(sendTimes.length);
  for (let i = 0; i < received; i += 1) {
    const k = pins[i];
    latencies[i] = arrivals[i] - sendTimes[k];
    seen[k] += 1;
    if (arrivals[i] > lastSeen[k]) lastSeen[k] = arrivals[i];
    if (arrivals[i] > lastArrival) lastArrival = arrivals[i];
  }
  fs.writeFileSync(config.latencies_path, Buffer.from(latencies.buffer));
  report("result", {
    viewers: joined.length,
    received,
    unmatched,
    last_arrival: lastArrival,
    // per pin: when its last delivery here came, or null when a viewer here missed it
    last_seen: lastSeen.map((at, k) => (seen[k] >= joined.length ? at : null)),
  });
  for (const socket of joined) socket.close();
}

(config.role === "seller" ? seller() : viewers())
  .then(() => process.exit(0))
  .catch((error) => {
    report("error", { message: String(error && error.stack ? error.stack : error) });
    process.exit(1);
  });
