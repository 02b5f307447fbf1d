// The reference: a minimal socket.io 4 server doing what the hub does in the fan-out
// scenario. `session:join` puts the socket in the session's room; `product:pin`
// broadcasts the product card to the room, answering the pinner with it; the room's
// viewer count goes out once a second. Same event names and payload shapes as the hub.
//
//   node server.js <port> <catalogue.json>
// catalogue.json: {"live_session_id": "...", "cards": {"<product_id>": {...card}}}
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const { Server } = require("socket.io");

const [port, cataloguePath] = process.argv.slice(2);
const catalogue = JSON.parse(fs.readFileSync(cataloguePath, "utf8"));
const room = `live:${catalogue.live_session_id}`;

const httpServer = http.createServer();
const io = new Server(httpServer, { maxHttpBufferSize: 64 * 1024 });

function refuse(ack, code) {
  if (typeof ack === "function") ack({ ok: false, error: { code, message: code } });
}

io.on("connection", (socket) => {
  socket.on("session:join", (body, ack) => {
    if (!body || body.live_session_id !== catalogue.live_session_id) {
      return refuse(ack, "live-session-not-found");
    }
    socket.join(room);
    const snapshot = { live_session_id: body.live_session_id, status: "live", pinned: null };
    if (typeof ack === "function") ack({ ok: true, snapshot });
  });

  socket.on("product:pin", (body, ack) => {
    const card = body && catalogue.cards[body.product_id];
    if (!card || body.live_session_id !== catalogue.live_session_id) {
      return refuse(ack, "product-not-on-show");
    }
    io.to(room).emit("product:pinned", card);
    if (typeof ack === "function") ack({ ok: true, product: card });
  });
});

setInterval(() => {
  const viewers = io.sockets.adapter.rooms.get(room)?.size ?? 0;
  if (viewers > 0) {
    io.to(room).emit("viewers:count", { live_session_id: catalogue.live_session_id, viewers });
  }
}, 1000);

httpServer.listen(Number(port), "127.0.0.1", () => console.log("listening"));
process.on("SIGTERM", () => process.exit(0));
