// A load-generator process (forked by run.js): holds a share of the clients, each a real
// socket.io-client connection of its own, and drives them through the phases run.js asks
// for. Whole rooms live in one worker, so every delivery of a message is seen by the same
// process that sent it: loss, duplicates and send-to-receive latency are counted here on
// one clock, and only totals and histograms travel back.
//
// Messages from run.js: { type: "connect" }, { type: "run" }, { type: "close" }; each is
// answered with one message of type "connected", "result" or "closed".

import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { io } from "socket.io-client";

import { Histogram } from "./lib/stats.js";

/** @type {Client[]} */
let clients = [];
/** The phase in progress, or null: events outside a phase are ignored. */
let phase = null;

const send = (msg) => process.send(msg);

/**
 * One connected user. `room` is shared by the clients of one chat; `pos` is this client's
 * place in it, used to index per-receiver delivery marks.
 */
class Client {
  constructor(spec, url, kind) {
    Object.assign(this, spec); // gi, token, userId, chatId, pos, roomSize
    const auth =
      kind === "peer"
        ? { token: spec.userId, rooms: spec.chatId ? [spec.chatId] : [] }
        : { token: spec.token };
    this.socket = io(url, {
      transports: ["websocket"],
      // One engine.io connection per client, never multiplexed with another's.
      forceNew: true,
      auth,
      autoConnect: false,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      timeout: 20_000,
    });
    this.everConnected = false;
    this.socket.on("connect", () => {
      if (this.everConnected && phase) phase.reconnects += 1;
      this.everConnected = true;
    });
    this.socket.on("disconnect", (reason) => {
      if (phase) {
        phase.disconnects += 1;
        phase.disconnectReasons[reason] = (phase.disconnectReasons[reason] ?? 0) + 1;
      }
    });
    this.socket.on("message:new", (m) => phase?.onDelivery(this, m));
  }

  /**
   * Connects, letting socket.io-client retry transport errors until `timeoutMs`; resolves
   * to null, or the error text (and the socket is closed, so it stops retrying).
   */
  connect(timeoutMs) {
    return new Promise((resolve) => {
      const s = this.socket;
      let lastError = "connect timeout";
      const timer = setTimeout(() => {
        s.disconnect();
        done(lastError);
      }, timeoutMs);
      const done = (err) => {
        clearTimeout(timer);
        s.off("connect", ok);
        s.off("connect_error", bad);
        resolve(err);
      };
      const ok = () => done(null);
      const bad = (e) => {
        lastError = String(e.message);
        // The server refused the handshake: socket.io-client does not retry that itself.
        if (lastError.startsWith("unauthorized") || lastError.startsWith("internal")) {
          s.disconnect();
          done(lastError);
        }
      };
      s.on("connect", ok);
      s.on("connect_error", bad);
      s.connect();
    });
  }
}

/** One measured stretch of load: a rate, a duration, then a drain. */
class Phase {
  constructor(cmd) {
    this.tag = cmd.tag;
    this.rate = cmd.rate;
    this.content = cmd.content;
    this.counts = {
      sent: 0,
      sentWhileDisconnected: 0,
      acked: 0,
      refused: {},
      delivered: 0,
      duplicated: 0,
      selfEchoes: 0,
      stray: 0,
    };
    this.reconnects = 0;
    this.disconnects = 0;
    this.disconnectReasons = {};
    this.ackLatency = new Histogram();
    this.refusalLatency = new Histogram();
    this.e2eLatency = new Histogram();
    this.sendLag = new Histogram();

    // Senders: clients in a chat with at least one other member, ordered by their offset
    // in the send cycle, spread over all workers' clients so the total rate is smooth.
    this.senders = clients.filter((c) => c.chatId && c.roomSize > 1);
    const perSender = Math.round((cmd.rate * cmd.durationMs) / 1000);
    this.perSender = perSender;
    for (const c of this.senders) {
      c.offsetMs = ((c.gi / cmd.totalClients) * 1000) / cmd.rate;
      c.sentAt = new Float64Array(perSender).fill(NaN);
      // 0 not sent, 1 awaiting its ack, 2 acked, 3 refused.
      c.ackState = new Uint8Array(perSender);
      // Deliveries of message k to the member at position p: marks[k * roomSize + p].
      c.marks = new Uint8Array(perSender * c.roomSize);
    }
    this.senders.sort((a, b) => a.offsetMs - b.offsetMs);
    this.byGi = new Map(clients.map((c) => [c.gi, c]));
    this.total = perSender * this.senders.length;
    this.next = 0;
    this.pending = 0;
    this.expectedFromAcked = 0;
    // performance.now() of the shared start instant.
    this.startPerf = performance.now() + (cmd.startAt - Date.now());
  }

  dueAt(g) {
    const n = this.senders.length;
    const c = this.senders[g % n];
    return this.startPerf + c.offsetMs + (Math.floor(g / n) * 1000) / this.rate;
  }

  /** Sends everything due, then sleeps until the next send; resolves when all are sent. */
  drive() {
    return new Promise((resolve) => {
      if (this.total === 0) return resolve();
      const n = this.senders.length;
      const tick = () => {
        const now = performance.now();
        while (this.next < this.total && this.dueAt(this.next) <= now) {
          const g = this.next++;
          this.sendOne(this.senders[g % n], Math.floor(g / n), now - this.dueAt(g));
        }
        if (this.next < this.total) setTimeout(tick, Math.max(0, this.dueAt(this.next) - performance.now()));
        else resolve();
      };
      setTimeout(tick, Math.max(0, this.startPerf - performance.now()));
    });
  }

  sendOne(c, k, lagMs) {
    const payload = { chatId: c.chatId, clientMsgId: `${this.tag}.${c.gi}.${k}`, content: this.content };
    const counts = this.counts;
    counts.sent += 1;
    if (!c.socket.connected) counts.sentWhileDisconnected += 1;
    this.sendLag.record(Math.max(0, lagMs));
    this.pending += 1;
    c.ackState[k] = 1;
    const t = performance.now();
    c.sentAt[k] = t;
    c.socket.emit("message:send", payload, (res) => {
      if (phase !== this) return; // answered after the phase closed: it stays unacked
      this.pending -= 1;
      const ms = performance.now() - t;
      if (res && res.data) {
        c.ackState[k] = 2;
        counts.acked += 1;
        this.expectedFromAcked += c.roomSize - 1;
        this.ackLatency.record(ms);
      } else {
        c.ackState[k] = 3;
        const code = res?.error?.code ?? "malformed_ack";
        counts.refused[code] = (counts.refused[code] ?? 0) + 1;
        this.refusalLatency.record(ms);
      }
    });
  }

  onDelivery(receiver, m) {
    const counts = this.counts;
    const parts = typeof m?.clientMsgId === "string" ? m.clientMsgId.split(".") : [];
    if (parts.length !== 3 || parts[0] !== this.tag) {
      counts.stray += 1;
      return;
    }
    const sender = this.byGi.get(Number(parts[1]));
    const k = Number(parts[2]);
    if (!sender || !(k >= 0 && k < this.perSender) || sender.chatId !== receiver.chatId) {
      counts.stray += 1;
      return;
    }
    if (sender === receiver) {
      counts.selfEchoes += 1; // Huddle also sends message:new to the sender's own sockets
      return;
    }
    const i = k * sender.roomSize + receiver.pos;
    if (sender.marks[i] > 0) {
      counts.duplicated += 1;
    } else {
      counts.delivered += 1;
      const t = sender.sentAt[k];
      if (!Number.isNaN(t)) this.e2eLatency.record(performance.now() - t);
    }
    if (sender.marks[i] < 255) sender.marks[i] += 1;
  }

  /** Waits until every send is answered and every acked message delivered, or `ms` passed. */
  async drain(ms) {
    const until = performance.now() + ms;
    while (performance.now() < until) {
      if (this.pending === 0 && this.counts.delivered >= this.expectedFromAcked) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Final accounting; only acked messages can be lost. */
  result() {
    let lost = 0;
    let lostMessages = 0;
    let expected = 0;
    let deliveredUnacked = 0;
    for (const c of this.senders) {
      for (let k = 0; k < this.perSender; k++) {
        const state = c.ackState[k];
        if (state === 2) {
          let missing = 0;
          for (let p = 0; p < c.roomSize; p++) {
            if (p !== c.pos && c.marks[k * c.roomSize + p] === 0) missing += 1;
          }
          expected += c.roomSize - 1;
          lost += missing;
          if (missing) lostMessages += 1;
        } else if (state === 1) {
          for (let p = 0; p < c.roomSize; p++) {
            if (p !== c.pos && c.marks[k * c.roomSize + p] > 0) {
              deliveredUnacked += 1;
              break;
            }
          }
        }
      }
    }
    return {
      ...this.counts,
      unacked: this.pending,
      deliveredUnacked,
      expectedDeliveries: expected,
      lost,
      lostMessages,
      reconnects: this.reconnects,
      disconnects: this.disconnects,
      disconnectReasons: this.disconnectReasons,
      ackLatency: this.ackLatency,
      refusalLatency: this.refusalLatency,
      e2eLatency: this.e2eLatency,
      sendLag: this.sendLag,
    };
  }
}

async function connectAll(cmd) {
  clients = cmd.clients.map((spec) => new Client(spec, cmd.url, cmd.kind));
  const errors = {};
  let ok = 0;
  let next = 0;
  const runner = async () => {
    while (next < clients.length) {
      const c = clients[next++];
      const err = await c.connect(cmd.connectTimeoutMs);
      if (err) errors[err] = (errors[err] ?? 0) + 1;
      else ok += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(cmd.concurrency, clients.length) }, runner));
  send({ type: "connected", ok, failed: clients.length - ok, errors });
}

async function runPhase(cmd) {
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpu0 = process.cpuUsage();
  const p = new Phase(cmd);
  phase = p;
  await p.drive();
  const sendEnd = performance.now();
  await p.drain(cmd.drainMs);
  const drainUsedMs = performance.now() - sendEnd;
  const result = p.result();
  phase = null;
  loop.disable();
  const cpu = process.cpuUsage(cpu0);
  send({
    type: "result",
    result,
    drainUsedMs,
    generator: {
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
    },
  });
}

process.on("message", (cmd) => {
  const fail = (e) => send({ type: "error", error: String(e?.stack ?? e) });
  if (cmd.type === "connect") connectAll(cmd).catch(fail);
  else if (cmd.type === "run") runPhase(cmd).catch(fail);
  else if (cmd.type === "close") {
    for (const c of clients) c.socket.disconnect();
    send({ type: "closed" });
    setTimeout(() => process.exit(0), 100);
  }
});

process.on("disconnect", () => process.exit(0)); // run.js went away
