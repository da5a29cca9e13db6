// The comparison point: a plain Node socket.io 4.8 room-broadcast server speaking the same
// `message:send` / `message:new` contract as Huddle, with no auth check, no storage and no
// database. The bench measures its CPU exactly as it measures Huddle's.
//
//   node peer-server.js [--port 0] [--echo]
//
// Prints one JSON line `{"listening":<port>}` on stdout once it accepts connections.
// Clients connect with `auth: { token, rooms: [chatId, ...] }` and are joined to those
// rooms. `--echo` also sends `message:new` to the sender's own socket, as Huddle does.

import { createServer } from "node:http";
import { Server } from "socket.io";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1] || 0) || 0;
const echo = args.includes("--echo");

const http = createServer();
const io = new Server(http, {
  // The limits Huddle announces: 64 KiB packets, the engine.io heartbeat defaults.
  maxHttpBufferSize: 64 * 1024,
  serveClient: false,
});

const seqs = new Map(); // chatId -> last seq
let nextId = 0;

io.on("connection", (socket) => {
  const { token, rooms } = socket.handshake.auth ?? {};
  if (typeof token !== "string" || !Array.isArray(rooms)) {
    socket.disconnect(true);
    return;
  }
  socket.data.userId = token;
  socket.join(rooms);

  socket.on("message:send", (req, ack) => {
    if (typeof ack !== "function") return;
    const { chatId, clientMsgId, content } = req ?? {};
    if (typeof chatId !== "string" || !socket.rooms.has(chatId)) {
      ack({ error: { code: "not_found", message: "not found" } });
      return;
    }
    const seq = (seqs.get(chatId) ?? 0) + 1;
    seqs.set(chatId, seq);
    const now = new Date().toISOString();
    const message = {
      _id: (++nextId).toString(16).padStart(24, "0"),
      chatId,
      seq,
      sender: socket.data.userId,
      clientMsgId,
      content,
      type: "text",
      attachments: [],
      starred: false,
      createdAt: now,
      updatedAt: now,
      deleted: false,
    };
    (echo ? io.to(chatId) : socket.to(chatId)).emit("message:new", message);
    ack({ data: message });
  });
});

http.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ listening: http.address().port })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
