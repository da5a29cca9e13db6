// Drives one Socket.IO connection with the official `socket.io-client` for Huddle's
// whole-server tests (tests/common/sio.rs spawns it).
//
// Usage: node sio-driver.mjs <base-url>
//
// Reads one JSON command per line on stdin and writes one JSON object per line on stdout
// (nothing else goes to stdout; diagnostics go to stderr).
//
// Commands:
//   {"op":"connect","token":<string|null>}
//       -> {"type":"connected","sid":<socket.id>}
//        | {"type":"connect_error","message":<err.message>,"data":<err.data ?? null>}
//   {"op":"emit","id":<n>,"event":<name>,"data":<json>}
//       -> {"type":"ack","id":<n>,"data":<ack value>}
//        | {"type":"ack_error","id":<n>,"message":<why>}   (no ack within 10 s, or an error)
//   {"op":"emit_raw","event":<name>,"data":<json>}          (no ack asked for, nothing written)
//   {"op":"disconnect"}
//       -> {"type":"disconnect","reason":"io client disconnect"}, then exit 0
//
// Unprompted lines:
//   {"type":"event","event":<name>,"data":<first argument ?? null>}  every server event
//   {"type":"disconnect","reason":<reason>}                          server-side disconnect
//   {"type":"error","message":<why>}                                 a bad command
//
// The process exits when stdin closes.

import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const ACK_TIMEOUT_MS = 30_000;

const baseUrl = process.argv[2];
if (!baseUrl) {
  process.stderr.write("usage: node sio-driver.mjs <base-url>\n");
  process.exit(2);
}

/** The one socket of this process, once `connect` was asked for. */
let socket = null;
/** Set while we close the socket ourselves, so its `disconnect` is not reported twice. */
let closingByClient = false;
/** Set once we are on the way out; later output is dropped. */
let exiting = false;

/** Writes one JSON line on stdout. */
function out(obj) {
  if (exiting) return;
  process.stdout.write(JSON.stringify(obj) + "\n");
}

/** Flushes stdout, then exits with `code`. */
function exitAfterFlush(code) {
  if (exiting) return;
  exiting = true;
  process.stdout.write("", () => process.exit(code));
}

/** Makes a value safe for JSON.stringify (undefined and functions become null). */
function jsonable(value) {
  return value === undefined || typeof value === "function" ? null : value;
}

function connect(cmd) {
  if (socket !== null) {
    out({ type: "error", message: "connect: already connected (one socket per driver)" });
    return;
  }
  const token = cmd.token ?? null;
  // `headerToken`: the token as an `Authorization: Bearer` header of the connection request
  // instead of the handshake's `auth` (how tools without an auth payload connect).
  const headers = cmd.headerToken ? { Authorization: `Bearer ${cmd.headerToken}` } : undefined;
  socket = io(baseUrl, {
    auth: token === null ? {} : { token },
    extraHeaders: headers,
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
  });
  socket.on("connect", () => out({ type: "connected", sid: socket.id }));
  socket.on("connect_error", (err) =>
    out({ type: "connect_error", message: err?.message ?? String(err), data: jsonable(err?.data ?? null) }),
  );
  socket.on("disconnect", (reason) => {
    if (!closingByClient) out({ type: "disconnect", reason });
  });
  // Any event from the server; an ack callback the server asked for is ignored.
  socket.onAny((event, ...args) => out({ type: "event", event, data: jsonable(args[0] ?? null) }));
}

function requireSocket(op) {
  if (socket === null) {
    out({ type: "error", message: `${op}: not connected (send "connect" first)` });
    return false;
  }
  return true;
}

async function emit(cmd) {
  if (!requireSocket("emit")) return;
  const id = cmd.id;
  try {
    const ack = await socket.timeout(ACK_TIMEOUT_MS).emitWithAck(cmd.event, cmd.data ?? null);
    out({ type: "ack", id, data: jsonable(ack ?? null) });
  } catch (err) {
    out({ type: "ack_error", id, message: `${cmd.event}: ${err?.message ?? String(err)}` });
  }
}

function emitRaw(cmd) {
  if (!requireSocket("emit_raw")) return;
  socket.emit(cmd.event, cmd.data ?? null);
}

// Emits `event` with `count` binary attachments of `size` bytes each, without an ack.
function emitBinary(cmd) {
  if (!requireSocket("emit_binary")) return;
  const buffers = Array.from({ length: cmd.count }, () => new Uint8Array(cmd.size));
  socket.emit(cmd.event, ...buffers);
}

function disconnect() {
  if (socket !== null) {
    closingByClient = true;
    socket.disconnect();
  }
  out({ type: "disconnect", reason: "io client disconnect" });
  exitAfterFlush(0);
}

function handle(line) {
  if (line.trim() === "") return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    out({ type: "error", message: `not JSON: ${err.message}: ${line}` });
    return;
  }
  switch (cmd.op) {
    case "connect":
      connect(cmd);
      break;
    case "emit":
      emit(cmd);
      break;
    case "emit_raw":
      emitRaw(cmd);
      break;
    case "emit_binary":
      emitBinary(cmd);
      break;
    case "disconnect":
      disconnect();
      break;
    case "stall":
      stall();
      break;
    default:
      out({ type: "error", message: `unknown op: ${JSON.stringify(cmd.op)}` });
  }
}

// Stops reading from the server's connection, as a client that never reads would: the
// kernel buffers fill and the server must cope without waiting on this client.
function stall() {
  const ws = socket?.io?.engine?.transport?.ws;
  const raw = ws?._socket;
  if (!raw || typeof raw.pause !== "function") {
    out({ type: "error", message: "stall: no websocket transport to pause" });
    return;
  }
  raw.pause();
  out({ type: "stalled" });
}

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", handle);
rl.on("close", () => {
  if (socket !== null) {
    closingByClient = true;
    socket.disconnect();
  }
  exitAfterFlush(0);
});

// The test that spawned us has gone away: stop quietly.
process.stdout.on("error", (err) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});
