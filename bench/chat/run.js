#!/usr/bin/env node
// Huddle chat load benchmark. Starts Huddle (on its embedded default: it starts its own
// `secantusd-rs`) and a plain Node socket.io peer server, drives each with the same load
// from real socket.io-client connections spread over worker processes, and prints what was
// sent, acknowledged, refused, delivered and lost, the latencies, and the deliveries per
// CPU-second of the server processes only (read from /proc). See README.md.
//
//   npm ci --prefix bench/chat
//   node bench/chat/run.js --shape steady [--clients 1000 --room-size 10 --rate 1 --duration 60]

import { fork, spawnSync } from "node:child_process";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { Accounts } from "./lib/accounts.js";
import { ProcWatch, openFileLimit, rssBytes } from "./lib/proc.js";
import { FakeSendGrid } from "./lib/sendgrid.js";
import { killAllStarted, startHuddle, startPeer, stopAllStarted, track, untrack } from "./lib/servers.js";
import { Histogram } from "./lib/stats.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, "..", "..");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => console.error(`[bench] ${msg}`);

// ---------------------------------------------------------------------------------------
// Options

const USAGE = `usage: node bench/chat/run.js [options]

Shapes (--shape):
  steady     N clients in rooms, each sending at a fixed rate for a duration (default)
  stepup     the steady load at rising per-client rates (--rates); finds the highest rate
             where every send is acked with ack p99 under --ack-p99-ms
  idle       --idle-connections idle sockets; server RSS per connection
  overload   --total-rate messages/s offered in all; server RSS over time, refusals by code

Options:
  --target LIST          huddle,peer (default), huddle, or peer
  --clients N            clients (and accounts), default 1000
  --room-size N          members per group chat, default 10
  --rate R               messages per second per client (steady), default 1
  --duration S           seconds of sending (steady, overload), default 60
  --drain S              longest wait after sending for acks and deliveries, default 10
  --content-bytes N      message content length, default 200
  --rates LIST           stepup rates per client, default 1,2,4,8,16,32
  --step-duration S      seconds per stepup step, default 20
  --ack-p99-ms MS        stepup pass threshold, default 100
  --total-rate R         overload: offered messages/s over all clients, default 5000
  --idle-connections K   idle: sockets to open, default 5000 (accounts reused round-robin)
  --idle-settle S        idle: seconds to wait before each RSS reading, default 5
  --workers N            load-generator processes, default ceil(connections / 250)
  --connect-concurrency  handshakes in flight per worker, default 50
  --sample-ms MS         RSS/CPU sampling period, default 1000
  --huddle-bin PATH      default $HUDDLE_BIN or <repo>/target/release/huddle
  --secantusd-bin PATH   the embedded database binary (default: Huddle's own lookup)
  --data-dir DIR         accounts, Huddle's data dir and logs, default bench/chat/.data
  --results-dir DIR      where the JSON goes, default bench/chat/results
  --server-env K=V       extra environment for Huddle (repeatable)
  --peer-echo            the peer also sends message:new to the sender, as Huddle does
  --help`;

function options() {
  const { values } = parseArgs({
    options: {
      shape: { type: "string", default: "steady" },
      target: { type: "string", default: "huddle,peer" },
      clients: { type: "string", default: "1000" },
      "room-size": { type: "string", default: "10" },
      rate: { type: "string", default: "1" },
      duration: { type: "string", default: "60" },
      drain: { type: "string", default: "10" },
      "content-bytes": { type: "string", default: "200" },
      rates: { type: "string", default: "1,2,4,8,16,32" },
      "step-duration": { type: "string", default: "20" },
      "ack-p99-ms": { type: "string", default: "100" },
      "total-rate": { type: "string", default: "5000" },
      "idle-connections": { type: "string", default: "5000" },
      "idle-settle": { type: "string", default: "5" },
      workers: { type: "string" },
      "connect-concurrency": { type: "string", default: "50" },
      "sample-ms": { type: "string", default: "1000" },
      "huddle-bin": { type: "string", default: process.env.HUDDLE_BIN || join(REPO, "target/release/huddle") },
      "secantusd-bin": { type: "string", default: process.env.HUDDLE_SECANTUSD_BIN || "" },
      "data-dir": { type: "string", default: join(HERE, ".data") },
      "results-dir": { type: "string", default: join(HERE, "results") },
      "server-env": { type: "string", multiple: true, default: [] },
      "peer-echo": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name, { min = 0, int = false } = {}) => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v < min || (int && !Number.isInteger(v))) {
      console.error(`--${name}: expected a number >= ${min}${int ? " (whole)" : ""}, got ${values[name]}`);
      process.exit(2);
    }
    return v;
  };
  const o = {
    shape: values.shape,
    targets: values.target.split(",").map((t) => t.trim()).filter(Boolean),
    clients: num("clients", { min: 1, int: true }),
    roomSize: num("room-size", { min: 2, int: true }),
    rate: num("rate", { min: 0.001 }),
    duration: num("duration", { min: 1 }),
    drain: num("drain", { min: 0 }),
    contentBytes: num("content-bytes", { min: 1, int: true }),
    rates: values.rates.split(",").map(Number),
    stepDuration: num("step-duration", { min: 1 }),
    ackP99Ms: num("ack-p99-ms", { min: 0 }),
    totalRate: num("total-rate", { min: 0.001 }),
    idleConnections: num("idle-connections", { min: 1, int: true }),
    idleSettle: num("idle-settle", { min: 0 }),
    workers: values.workers === undefined ? null : num("workers", { min: 1, int: true }),
    connectConcurrency: num("connect-concurrency", { min: 1, int: true }),
    sampleMs: num("sample-ms", { min: 50 }),
    huddleBin: resolve(values["huddle-bin"]),
    secantusdBin: values["secantusd-bin"] ? resolve(values["secantusd-bin"]) : null,
    dataDir: resolve(values["data-dir"]),
    resultsDir: resolve(values["results-dir"]),
    serverEnv: Object.fromEntries(
      values["server-env"].map((kv) => {
        const at = kv.indexOf("=");
        if (at < 1) {
          console.error(`--server-env: expected KEY=VALUE, got ${kv}`);
          process.exit(2);
        }
        return [kv.slice(0, at), kv.slice(at + 1)];
      }),
    ),
    peerEcho: values["peer-echo"],
  };
  if (!["steady", "stepup", "idle", "overload"].includes(o.shape)) {
    console.error(`--shape: one of steady, stepup, idle, overload (got ${o.shape})`);
    process.exit(2);
  }
  if (o.targets.length === 0 || o.targets.some((t) => !["huddle", "peer"].includes(t))) {
    console.error(`--target: huddle, peer or both (got ${values.target})`);
    process.exit(2);
  }
  if (o.rates.some((r) => !(r > 0))) {
    console.error(`--rates: positive numbers, comma-separated (got ${values.rates})`);
    process.exit(2);
  }
  if (o.roomSize > 256) {
    console.error("--room-size: Huddle groups hold at most 256 members");
    process.exit(2);
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// Open files: every socket is a descriptor in a worker and one in the server.

/**
 * Re-runs this script under a shell that raised `ulimit -n`, once, when the current soft
 * limit is too low for `need` descriptors. Servers and workers inherit the raised limit.
 */
function ensureOpenFiles(need) {
  const { soft, hard } = openFileLimit();
  if (soft >= need) return;
  if (!process.env.BENCH_ULIMIT_RAISED) {
    log(`open-file limit ${soft} is below the ${need} this run needs: raising it (hard limit ${hard})`);
    const script = 'ulimit -n 65535 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"';
    // The child owns the terminal's Ctrl-C; this process only waits.
    process.on("SIGINT", () => {});
    process.on("SIGTERM", () => {});
    const r = spawnSync("/bin/sh", ["-c", script, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      stdio: "inherit",
      env: { ...process.env, BENCH_ULIMIT_RAISED: "1" },
    });
    process.exit(r.status ?? 1);
  }
  log(
    `WARNING: open-file limit is ${soft} (hard ${hard}), below the ${need} this run needs; ` +
      "raise it (ulimit -n, or LimitNOFILE/nofile for your session) or expect failed connections",
  );
}

// ---------------------------------------------------------------------------------------
// Load-generator workers

class Workers {
  constructor(n) {
    this.procs = Array.from({ length: n }, () => {
      const child = fork(join(HERE, "worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
      track(child.pid);
      child.on("exit", () => untrack(child.pid));
      child.on("error", () => {}); // a closed channel is reported through `ask`
      child.inbox = [];
      child.waiting = [];
      child.on("message", (m) => {
        const w = child.waiting.shift();
        if (w) w(m);
        else child.inbox.push(m);
      });
      child.on("exit", (code) => {
        for (const w of child.waiting.splice(0)) w({ type: "error", error: `worker exited (${code})` });
      });
      return child;
    });
  }

  get size() {
    return this.procs.length;
  }

  /** Sends one message to worker `i` and resolves with its answer. */
  ask(i, msg) {
    const child = this.procs[i];
    const answer = new Promise((resolve) => {
      const queued = child.inbox.shift();
      if (queued) resolve(queued);
      else child.waiting.push(resolve);
    });
    if (child.connected) child.send(msg, (err) => err && child.waiting.shift()?.({ type: "error", error: String(err) }));
    else child.waiting.shift()?.({ type: "error", error: "worker is gone" });
    return answer.then((m) => {
      if (m.type === "error") throw new Error(`load generator ${i}: ${m.error}`);
      return m;
    });
  }

  /** Sends to every worker (`msgFor(i)` builds each one's message); resolves with all answers. */
  all(msgFor) {
    return Promise.all(this.procs.map((_, i) => this.ask(i, msgFor(i))));
  }

  async close() {
    await Promise.race([this.all(() => ({ type: "close" })).catch(() => {}), sleep(5000)]);
    for (const p of this.procs) if (p.exitCode === null) p.kill("SIGKILL");
  }
}

/** Whole rooms per worker, round-robin, so a message and all its deliveries meet in one process. */
function splitRooms(people, n) {
  const shares = Array.from({ length: n }, () => []);
  people.rooms.forEach((room, r) => {
    room.members.forEach((i, pos) => {
      const u = people.users[i];
      shares[r % n].push({ gi: i, token: u.token, userId: u.userId, chatId: room.chatId, pos, roomSize: room.members.length });
    });
  });
  return shares;
}

async function connect(workers, url, kind, shares, o) {
  const t0 = Date.now();
  const answers = await workers.all((i) => ({
    type: "connect",
    url,
    kind,
    clients: shares[i],
    concurrency: o.connectConcurrency,
    connectTimeoutMs: 60_000,
  }));
  const ok = answers.reduce((s, a) => s + a.ok, 0);
  const failed = answers.reduce((s, a) => s + a.failed, 0);
  const errors = {};
  for (const a of answers) for (const [e, n] of Object.entries(a.errors)) errors[e] = (errors[e] ?? 0) + n;
  log(`${kind}: ${ok} sockets connected in ${((Date.now() - t0) / 1000).toFixed(1)} s${failed ? `, ${failed} failed ${JSON.stringify(errors)}` : ""}`);
  if (ok === 0) throw new Error(`no socket could connect to ${kind}: ${JSON.stringify(errors)}`);
  if (failed) log(`WARNING: ${failed} clients are not connected; their sends will count as unacked`);
  return { ok, failed, errors, seconds: (Date.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------
// One measured phase: the load, then the drain; CPU of the server pids over exactly that.

function contentOf(bytes) {
  const text = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. ";
  return text.repeat(Math.ceil(bytes / text.length)).slice(0, bytes);
}

let phaseCounter = 0;
const RUN_ID = Date.now().toString(36);

async function measuredPhase(server, workers, o, { rate, durationS, totalClients }) {
  const pids = { server: server.pid, ...(server.dbPid ? { db: server.dbPid } : {}) };
  const watch = new ProcWatch(pids);
  const startAt = Date.now() + 1000;
  const answers = workers.all(() => ({
    type: "run",
    tag: `${RUN_ID}${(phaseCounter++).toString(36)}`,
    rate,
    durationMs: durationS * 1000,
    drainMs: o.drain * 1000,
    startAt,
    content: contentOf(o.contentBytes),
    totalClients,
  }));
  await sleep(Math.max(0, startAt - Date.now()));
  const cpu0 = watch.cpu();
  watch.startSampling(o.sampleMs);
  const results = await answers;
  const cpu1 = watch.cpu();
  const { samples, maxRss } = watch.stopSampling();
  const windowS = (Date.now() - startAt) / 1000;
  return aggregate(results, { cpu0, cpu1, windowS, samples, maxRss, rate, durationS });
}

function aggregate(answers, { cpu0, cpu1, windowS, samples, maxRss, rate, durationS }) {
  const sum = (f) => answers.reduce((s, a) => s + f(a), 0);
  const r = (f) => sum((a) => f(a.result));
  const refused = {};
  const reasons = {};
  const hist = { ackLatency: new Histogram(), refusalLatency: new Histogram(), e2eLatency: new Histogram(), sendLag: new Histogram() };
  for (const { result } of answers) {
    for (const [code, n] of Object.entries(result.refused)) refused[code] = (refused[code] ?? 0) + n;
    for (const [why, n] of Object.entries(result.disconnectReasons)) reasons[why] = (reasons[why] ?? 0) + n;
    for (const k of Object.keys(hist)) hist[k].merge(result[k]);
  }
  const delivered = r((x) => x.delivered);
  const cpu = {};
  for (const k of Object.keys(cpu1)) cpu[k] = cpu1[k] != null && cpu0[k] != null ? cpu1[k] - cpu0[k] : null;
  const cpuTotal = Object.values(cpu).reduce((s, v) => s + (v ?? 0), 0);
  const perCpu = (c) => (c > 0 ? delivered / c : null);
  return {
    ratePerClient: rate,
    durationS,
    windowS,
    sent: r((x) => x.sent),
    sentWhileDisconnected: r((x) => x.sentWhileDisconnected),
    acked: r((x) => x.acked),
    refused,
    refusedTotal: Object.values(refused).reduce((s, n) => s + n, 0),
    unacked: r((x) => x.unacked),
    expectedDeliveries: r((x) => x.expectedDeliveries),
    delivered,
    lost: r((x) => x.lost),
    lostMessages: r((x) => x.lostMessages),
    deliveredUnacked: r((x) => x.deliveredUnacked),
    duplicated: r((x) => x.duplicated),
    selfEchoes: r((x) => x.selfEchoes),
    stray: r((x) => x.stray),
    disconnects: r((x) => x.disconnects),
    reconnects: r((x) => x.reconnects),
    disconnectReasons: reasons,
    latencyMs: {
      ack: hist.ackLatency.summary(),
      refusal: hist.refusalLatency.summary(),
      sendToReceive: hist.e2eLatency.summary(),
    },
    cpuSeconds: { ...cpu, total: cpuTotal },
    deliveriesPerCpuSecond: {
      ...Object.fromEntries(Object.entries(cpu).map(([k, c]) => [k, perCpu(c)])),
      total: perCpu(cpuTotal),
    },
    // Sends over the sending period; acks and deliveries over the whole window.
    rateAchieved: {
      sentPerS: r((x) => x.sent) / durationS,
      ackedPerS: r((x) => x.acked) / windowS,
      deliveredPerS: delivered / windowS,
    },
    maxRssBytes: maxRss,
    rssSamples: samples.map((s) => ({ tMs: s.tMs, ...Object.fromEntries(Object.entries(s.rss).map(([k, v]) => [`${k}RssBytes`, v])) })),
    generator: {
      workers: answers.length,
      cpuSeconds: sum((a) => a.generator.cpuSeconds),
      loopDelayMaxMs: Math.max(...answers.map((a) => a.generator.loopDelayMaxMs)),
      sendLagMs: hist.sendLag.summary(),
      drainUsedS: Math.max(...answers.map((a) => a.drainUsedMs)) / 1000,
    },
  };
}

// ---------------------------------------------------------------------------------------
// Printing

const fmt = (v, digits = 1) => (v == null ? "-" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits }));
const mb = (b) => (b == null ? "-" : `${fmt(b / 2 ** 20, 1)} MiB`);
const lat = (s) => `p50 ${fmt(s.p50, 2)}  p99 ${fmt(s.p99, 2)}  p999 ${fmt(s.p999, 2)}  max ${fmt(s.max, 1)} ms (n=${fmt(s.count, 0)})`;

function printPhase(kind, p, indent = "  ") {
  const refused = p.refusedTotal ? ` ${JSON.stringify(p.refused)}` : "";
  const out = [
    `${indent}sent ${fmt(p.sent, 0)}  acked ${fmt(p.acked, 0)}  refused ${fmt(p.refusedTotal, 0)}${refused}  unacked ${fmt(p.unacked, 0)}` +
      (p.sentWhileDisconnected ? `  (sent while disconnected ${fmt(p.sentWhileDisconnected, 0)})` : ""),
    `${indent}delivered ${fmt(p.delivered, 0)} of ${fmt(p.expectedDeliveries, 0)} expected from acked  lost ${fmt(p.lost, 0)} (${fmt(p.lostMessages, 0)} messages)  duplicated ${fmt(p.duplicated, 0)}` +
      (p.deliveredUnacked ? `  delivered-but-unacked messages ${fmt(p.deliveredUnacked, 0)}` : ""),
    `${indent}ack latency      ${lat(p.latencyMs.ack)}`,
    `${indent}send->receive    ${lat(p.latencyMs.sendToReceive)}`,
  ];
  if (p.refusedTotal) out.push(`${indent}refusal latency  ${lat(p.latencyMs.refusal)}`);
  const cpu = p.cpuSeconds;
  const dpc = p.deliveriesPerCpuSecond;
  if (kind === "huddle") {
    out.push(`${indent}CPU s over ${fmt(p.windowS, 1)} s: server ${fmt(cpu.server, 2)}  db ${fmt(cpu.db, 2)}  sum ${fmt(cpu.total, 2)}`);
    out.push(`${indent}deliveries per CPU-s: server ${fmt(dpc.server, 0)}  db ${fmt(dpc.db, 0)}  server+db ${fmt(dpc.total, 0)}`);
    out.push(`${indent}RSS max: server ${mb(p.maxRssBytes.server)}  db ${mb(p.maxRssBytes.db)}`);
  } else {
    out.push(`${indent}CPU s over ${fmt(p.windowS, 1)} s: server ${fmt(cpu.server, 2)}`);
    out.push(`${indent}deliveries per CPU-s: ${fmt(dpc.total, 0)}`);
    out.push(`${indent}RSS max: server ${mb(p.maxRssBytes.server)}`);
  }
  out.push(
    `${indent}rates: sent ${fmt(p.rateAchieved.sentPerS, 0)}/s over ${fmt(p.durationS, 1)} s of sending; acked ${fmt(p.rateAchieved.ackedPerS, 0)}/s, delivered ${fmt(p.rateAchieved.deliveredPerS, 0)}/s over the ${fmt(p.windowS, 1)} s window`,
  );
  if (p.disconnects || p.reconnects) out.push(`${indent}disconnects ${p.disconnects} ${JSON.stringify(p.disconnectReasons)}  reconnects ${p.reconnects}`);
  if (p.stray) out.push(`${indent}stray events ${p.stray}`);
  const g = p.generator;
  out.push(
    `${indent}generator: ${g.workers} workers, ${fmt(g.cpuSeconds, 1)} CPU-s, event-loop delay max ${fmt(g.loopDelayMaxMs, 0)} ms, send lag p99 ${fmt(g.sendLagMs.p99, 1)} ms, drain ${fmt(g.drainUsedS, 1)} s`,
  );
  if (g.sendLagMs.p99 > 50 || g.loopDelayMaxMs > 250) {
    out.push(`${indent}WARNING: the load generator fell behind (send lag/loop delay): use more --workers or a bigger machine`);
  }
  console.log(out.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Shapes

async function runTraffic(server, people, o) {
  const nWorkers = o.workers ?? Math.min(16, Math.max(1, Math.ceil(o.clients / 250)));
  const workers = new Workers(Math.min(nWorkers, people.rooms.length || 1));
  try {
    const shares = splitRooms(people, workers.size);
    const connected = await connect(workers, server.url, server.kind, shares, o);
    await sleep(1000);
    const totalClients = people.users.length;
    const out = { connected };
    if (o.shape === "steady") {
      console.log(`\n${server.kind}: steady, ${o.clients} clients in rooms of ${o.roomSize}, ${o.rate} msg/s each, ${o.duration} s`);
      out.steady = await measuredPhase(server, workers, o, { rate: o.rate, durationS: o.duration, totalClients });
      printPhase(server.kind, out.steady);
    } else if (o.shape === "overload") {
      const rate = o.totalRate / o.clients;
      console.log(`\n${server.kind}: overload, ${o.totalRate} msg/s offered (${fmt(rate, 3)} per client, ${o.clients} clients, rooms of ${o.roomSize}), ${o.duration} s`);
      const p = await measuredPhase(server, workers, o, { rate, durationS: o.duration, totalClients });
      out.overload = p;
      printPhase(server.kind, p);
      // RSS over time, at most a dozen points (every sample is in the JSON).
      const every = Math.max(1, Math.ceil(p.rssSamples.length / 12));
      const points = p.rssSamples.filter((_, i) => i % every === 0 || i === p.rssSamples.length - 1);
      const show = (key) => points.map((s) => `${fmt(s.tMs / 1000, 0)}s ${fmt((s[key] ?? 0) / 2 ** 20, 0)}`).join(", ");
      console.log(`  server RSS over time (MiB): ${show("serverRssBytes")}`);
      if (server.dbPid) console.log(`  db RSS over time (MiB): ${show("dbRssBytes")}`);
      const internal = p.refused.internal ?? 0;
      console.log(`  refusals by code: ${JSON.stringify(p.refused)}; internal: ${internal === 0 ? "none (as expected)" : `${internal} (UNEXPECTED)`}`);
    } else if (o.shape === "stepup") {
      console.log(`\n${server.kind}: stepup, ${o.clients} clients in rooms of ${o.roomSize}, ${o.stepDuration} s per step, pass: all acked and ack p99 < ${o.ackP99Ms} ms`);
      out.steps = [];
      out.maxPassingRate = null;
      for (const rate of o.rates) {
        const p = await measuredPhase(server, workers, o, { rate, durationS: o.stepDuration, totalClients });
        p.pass = p.sent > 0 && p.acked === p.sent && p.latencyMs.ack.p99 != null && p.latencyMs.ack.p99 < o.ackP99Ms;
        out.steps.push(p);
        console.log(`\n  step ${rate} msg/s per client (${fmt(rate * totalClients, 0)} offered/s): ${p.pass ? "PASS" : "FAIL"}`);
        printPhase(server.kind, p, "    ");
        if (!p.pass) break;
        out.maxPassingRate = rate;
        await sleep(2000);
      }
      console.log(`\n  ${server.kind}: highest passing rate ${out.maxPassingRate == null ? "none" : `${out.maxPassingRate} msg/s per client (${fmt(out.maxPassingRate * totalClients, 0)} msg/s in all)`}`);
    }
    if (server.kind === "huddle") out.appendBatches = await appendBatches(server.url);
    return out;
  } finally {
    await workers.close();
  }
}

/** How Huddle's message writer batched this run's sends, from its `/metrics`. */
async function appendBatches(url) {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const value = (name) => Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m"))?.[1] ?? NaN);
    const count = value("huddle_append_batch_size_count");
    const sum = value("huddle_append_batch_size_sum");
    if (!(count > 0)) return null;
    console.log(`  writer batches: ${fmt(count, 0)}, ${fmt(sum / count, 2)} sends each on average`);
    return { count, sends: sum, meanSize: sum / count };
  } catch (e) {
    console.log(`  writer batches: /metrics not read (${e.message})`);
    return null;
  }
}

async function runIdle(server, people, o) {
  const k = o.idleConnections;
  const nWorkers = o.workers ?? Math.min(16, Math.max(1, Math.ceil(k / 250)));
  const workers = new Workers(nWorkers);
  try {
    // Connection c signs in as account c mod accounts, in that account's room.
    const roomOf = new Map();
    people.rooms.forEach((room) => room.members.forEach((i, pos) => roomOf.set(i, { chatId: room.chatId, pos, roomSize: room.members.length })));
    const shares = Array.from({ length: workers.size }, () => []);
    for (let c = 0; c < k; c++) {
      const i = c % people.users.length;
      const u = people.users[i];
      const room = roomOf.get(i) ?? { chatId: null, pos: 0, roomSize: 1 };
      shares[c % workers.size].push({ gi: c, token: u.token, userId: u.userId, ...room });
    }
    console.log(`\n${server.kind}: idle, ${k} connections over ${people.users.length} accounts`);
    await sleep(o.idleSettle * 1000);
    const before = { server: rssBytes(server.pid), db: server.dbPid ? rssBytes(server.dbPid) : null };
    const connected = await connect(workers, server.url, server.kind, shares, o);
    await sleep(o.idleSettle * 1000);
    const after = { server: rssBytes(server.pid), db: server.dbPid ? rssBytes(server.dbPid) : null };
    const per = (x) => (x.before != null && x.after != null && connected.ok ? (x.after - x.before) / connected.ok : null);
    const out = {
      connected,
      rssBeforeBytes: before,
      rssAfterBytes: after,
      rssPerConnectionBytes: { server: per({ before: before.server, after: after.server }), db: per({ before: before.db, after: after.db }) },
    };
    console.log(`  connected ${connected.ok} of ${k}${connected.failed ? ` (failed ${connected.failed}: ${JSON.stringify(connected.errors)})` : ""}`);
    console.log(`  server RSS ${mb(before.server)} -> ${mb(after.server)}: ${fmt(out.rssPerConnectionBytes.server / 1024, 1)} KiB per connection`);
    if (server.dbPid) console.log(`  db RSS ${mb(before.db)} -> ${mb(after.db)}: ${fmt(out.rssPerConnectionBytes.db / 1024, 2)} KiB per connection`);
    return out;
  } finally {
    await workers.close();
  }
}

// ---------------------------------------------------------------------------------------
// Targets

/** Users and rooms for the peer: the same layout, with made-up ids (it checks nothing). */
function peerPeople(o) {
  const users = Array.from({ length: o.clients }, (_, i) => ({ userId: `u${i}`, token: null }));
  const rooms = [];
  for (let start = 0, r = 0; start + 1 < o.clients; start += o.roomSize, r++) {
    const members = [];
    for (let i = start; i < Math.min(start + o.roomSize, o.clients); i++) members.push(i);
    if (members.length >= 2) rooms.push({ chatId: `room${r}`, members });
  }
  return { users, rooms };
}

/** Longest this run can take, for how long tokens must stay valid (plus an hour). */
function runLengthMs(o) {
  const phases =
    o.shape === "stepup" ? o.rates.length * (o.stepDuration + o.drain + 3) : o.shape === "idle" ? 2 * o.idleSettle + 120 : o.duration + o.drain;
  return (phases + 600) * 1000 + 3600_000;
}

async function runHuddle(o, sendgrid) {
  const huddleDir = join(o.dataDir, "huddle");
  mkdirSync(huddleDir, { recursive: true });
  const start = () =>
    startHuddle({
      bin: o.huddleBin,
      dataDir: huddleDir,
      sendgridUrl: sendgrid.baseUrl,
      secantusdBin: o.secantusdBin,
      logFile: join(o.dataDir, "huddle.log"),
      env: o.serverEnv,
    });
  log(`starting Huddle ${o.huddleBin} (data dir ${huddleDir}, log ${join(o.dataDir, "huddle.log")})`);
  let server = await start();
  try {
    log(`Huddle pid ${server.pid}, secantusd-rs pid ${server.dbPid ?? "not found"}, ${server.url}`);
    if (!server.dbPid) log("WARNING: no secantusd-rs child found: database CPU is not measured (is MONGODB_URI set via --server-env?)");
    const accounts = new Accounts(join(o.dataDir, "accounts.json"), log);
    const before = JSON.stringify(accounts.state);
    const count = o.shape === "idle" ? Math.min(o.clients, o.idleConnections) : o.clients;
    const people = await accounts.ensure({ base: server.url, sendgrid, count, roomSize: o.roomSize, validForMs: runLengthMs(o) });
    if (JSON.stringify(accounts.state) !== before) {
      // Setting up accounts leaves its own garbage and caches behind: measure a fresh server.
      log("restarting Huddle after account setup, so the measurement starts clean");
      await server.stop();
      server = await start();
      log(`Huddle pid ${server.pid}, secantusd-rs pid ${server.dbPid ?? "not found"}`);
    }
    const result = o.shape === "idle" ? await runIdle(server, people, o) : await runTraffic(server, people, o);
    return { pid: server.pid, dbPid: server.dbPid, log: server.log, ...result };
  } finally {
    const stopped = await server.stop();
    if (!stopped.serverClean || stopped.dbClean === false) log(`Huddle did not stop on SIGTERM in time and was killed ${JSON.stringify(stopped)}`);
  }
}

async function runPeer(o) {
  const server = await startPeer({ echo: o.peerEcho, logFile: join(o.dataDir, "peer.log") });
  try {
    log(`peer server pid ${server.pid}, ${server.url}${o.peerEcho ? " (echo to sender on)" : ""}`);
    const people = o.shape === "idle" ? peerPeople({ ...o, clients: Math.min(o.clients, o.idleConnections) }) : peerPeople(o);
    const result = o.shape === "idle" ? await runIdle(server, people, o) : await runTraffic(server, people, o);
    return { pid: server.pid, echo: o.peerEcho, ...result };
  } finally {
    await server.stop();
  }
}

/** Deliveries per CPU-second, Huddle (server + db) over the peer, for each comparable phase. */
function compare(results) {
  const h = results.targets.huddle;
  const p = results.targets.peer;
  if (!h || !p || h.error || p.error) return null;
  const ratio = (a, b) => (a?.deliveriesPerCpuSecond?.total && b?.deliveriesPerCpuSecond?.total ? a.deliveriesPerCpuSecond.total / b.deliveriesPerCpuSecond.total : null);
  if (results.shape === "idle") {
    const a = h.rssPerConnectionBytes.server;
    const b = p.rssPerConnectionBytes.server;
    return { rssPerConnectionHuddleOverPeer: a && b ? a / b : null };
  }
  if (results.shape === "stepup") {
    const steps = h.steps.map((hs) => {
      const ps = p.steps.find((x) => x.ratePerClient === hs.ratePerClient);
      return { ratePerClient: hs.ratePerClient, deliveriesPerCpuSecondHuddleOverPeer: ratio(hs, ps) };
    });
    return { steps, maxPassingRate: { huddle: h.maxPassingRate, peer: p.maxPassingRate } };
  }
  const phase = results.shape;
  return { deliveriesPerCpuSecondHuddleOverPeer: ratio(h[phase], p[phase]) };
}

function printComparison(cmp, shape) {
  if (!cmp) return;
  console.log("\ncomparison (Huddle server+db vs Node peer):");
  if (shape === "idle") {
    console.log(`  RSS per idle connection, Huddle / peer: ${fmt(cmp.rssPerConnectionHuddleOverPeer, 2)}`);
  } else if (shape === "stepup") {
    for (const s of cmp.steps) console.log(`  ${s.ratePerClient} msg/s per client: deliveries per CPU-s, Huddle / peer = ${fmt(s.deliveriesPerCpuSecondHuddleOverPeer, 3)}`);
    console.log(`  highest passing rate: Huddle ${cmp.maxPassingRate.huddle ?? "none"}, peer ${cmp.maxPassingRate.peer ?? "none"}`);
  } else {
    console.log(`  deliveries per CPU-s, Huddle / peer = ${fmt(cmp.deliveriesPerCpuSecondHuddleOverPeer, 3)}`);
  }
}

function gitInfo() {
  const git = (...args) => spawnSync("git", ["-C", REPO, ...args], { encoding: "utf8" }).stdout?.trim() || null;
  return { commit: git("rev-parse", "HEAD"), dirty: (git("status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock") ?? "") !== "" };
}

async function main() {
  const o = options();
  const sockets = o.shape === "idle" ? o.idleConnections : o.clients;
  // The server holds one descriptor per socket (each worker holds its share).
  ensureOpenFiles(sockets + 1024);
  mkdirSync(o.dataDir, { recursive: true });
  mkdirSync(o.resultsDir, { recursive: true });

  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      log(`${signal}: stopping the servers this run started`);
      // A second Ctrl-C kills at once (the exit hook sends SIGKILL).
      process.once(signal, () => process.exit(130));
      stopAllStarted(10_000).finally(() => process.exit(130));
    });
  }

  const results = {
    startedAt: new Date().toISOString(),
    shape: o.shape,
    options: { ...o, serverEnv: Object.keys(o.serverEnv) },
    host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memBytes: os.totalmem(), node: process.version, platform: `${os.type()} ${os.release()}` },
    huddle: { bin: o.huddleBin, ...gitInfo() },
    targets: {},
  };
  try {
    results.huddle.binMtime = statSync(o.huddleBin).mtime.toISOString();
  } catch {
    // Reported when Huddle is started.
  }

  const sendgrid = new FakeSendGrid();
  await sendgrid.start();
  let failed = null;
  try {
    for (const target of o.targets) {
      try {
        results.targets[target] = target === "huddle" ? await runHuddle(o, sendgrid) : await runPeer(o);
      } catch (e) {
        failed = e;
        results.targets[target] = { error: String(e.message ?? e) };
        log(`${target} failed: ${e.message ?? e}`);
      }
    }
  } finally {
    sendgrid.close();
  }

  results.comparison = compare(results);
  printComparison(results.comparison, o.shape);
  results.finishedAt = new Date().toISOString();
  const file = join(o.resultsDir, `${results.startedAt.replace(/[:.]/g, "-")}-${o.shape}.json`);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
  if (failed) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  killAllStarted();
  process.exit(1);
});
