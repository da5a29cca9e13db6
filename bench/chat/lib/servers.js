// Starting and stopping the servers under test: Huddle on its embedded default (it starts
// its own `secantusd-rs` child), and the Node peer. Every process started here is recorded,
// and killed when the bench exits by any path, so a run never leaves a server behind.

import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { alive, childrenOf } from "./proc.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Pids this bench started and has not yet seen exit. */
const started = new Set();

/** Kills whatever is still running, synchronously (for exit paths). */
export function killAllStarted() {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  started.clear();
}

process.on("exit", killAllStarted);

/** SIGTERM to everything still running (Huddle then closes its database), SIGKILL after `graceMs`. */
export async function stopAllStarted(graceMs) {
  const pids = [...started];
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      started.delete(pid);
    }
  }
  const until = Date.now() + graceMs;
  while (Date.now() < until && pids.some(alive)) await sleep(100);
  killAllStarted();
}

/** Records a process started elsewhere (the load generators) for the exit-time sweep. */
export function track(pid) {
  started.add(pid);
}

/** Forgets a process that has exited. */
export function untrack(pid) {
  started.delete(pid);
}

/** A free TCP port on 127.0.0.1 (free when asked; the server binds it right after). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs` if the process is still there. */
async function terminate(pid, graceMs) {
  if (!alive(pid)) {
    started.delete(pid);
    return true;
  }
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    // Gone already.
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) {
      started.delete(pid);
      return true;
    }
    await sleep(100);
  }
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Gone already.
  }
  started.delete(pid);
  return false;
}

function tail(file, lines = 15) {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Environment names a bench server must not inherit from the caller's shell. */
const FOREIGN_ENV = /^(HUDDLE_|MONGODB_|SENDGRID_|OPENAI_|AWS_)/;

/**
 * Starts the Huddle binary on its embedded default with the bench's settings, waits until
 * `/ready` answers 200 and finds its `secantusd-rs` child.
 *
 * @returns {Promise<{ kind: "huddle", pid: number, dbPid: number|null, url: string, log: string, stop: () => Promise<object> }>}
 */
export async function startHuddle({ bin, dataDir, sendgridUrl, secantusdBin, logFile, env: extra = {} }) {
  if (!existsSync(bin)) {
    throw new Error(`Huddle binary not found at ${bin} (build it with \`cargo build --release\`, or pass --huddle-bin)`);
  }
  const port = await freePort();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !FOREIGN_ENV.test(k)));
  Object.assign(env, {
    HUDDLE_DATA_DIR: dataDir,
    HUDDLE_HTTP_ADDR: `127.0.0.1:${port}`,
    // Its own ephemeral UDP port, so a bench never collides with a `make run` on 50000.
    HUDDLE_MEDIA_UDP_ADDR: "127.0.0.1:0",
    HUDDLE_WEB_DIR: "",
    // Tokens outlive several runs (the longest Huddle allows), and account creation is
    // not throttled.
    HUDDLE_ACCESS_TOKEN_TTL: "86400",
    HUDDLE_RATE_LIMIT_PER_IP: "1000000",
    HUDDLE_RATE_LIMIT_PER_ACCOUNT: "1000000",
    // The idle shape reuses accounts round-robin: many sockets per account.
    HUDDLE_MAX_SOCKETS_PER_USER: "1000",
    HUDDLE_SOCKET_HANDSHAKES_PER_IP: "1000000",
    HUDDLE_COOKIE_SECURE: "false",
    SENDGRID_API_KEY: "SG.bench-local-fake",
    SENDGRID_BASE_URL: sendgridUrl,
    ...(secantusdBin ? { HUDDLE_SECANTUSD_BIN: secantusdBin } : {}),
    ...extra,
  });
  const log = openSync(logFile, "a");
  // cwd is the data dir, so no stray ./huddle.toml is picked up.
  const child = spawn(bin, [], { cwd: dataDir, env, stdio: ["ignore", log, log] });
  closeSync(log);
  const pid = child.pid;
  started.add(pid);
  let exited = null;
  child.on("exit", (code, signal) => {
    exited = { code, signal };
    started.delete(pid);
  });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited) {
      throw new Error(`Huddle exited during start-up (${JSON.stringify(exited)}); last lines of ${logFile}:\n${tail(logFile)}`);
    }
    try {
      const r = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(2000) });
      if (r.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await terminate(pid, 5000);
      throw new Error(`Huddle not ready within 180 s; last lines of ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(200);
  }

  const db = childrenOf(pid).find((c) => c.comm.startsWith("secantusd"));
  const dbPid = db?.pid ?? null;
  if (dbPid) started.add(dbPid);

  return {
    kind: "huddle",
    pid,
    dbPid,
    url,
    log: logFile,
    /** Graceful stop (Huddle closes its database), then makes sure both are gone. */
    async stop() {
      const serverClean = await terminate(pid, 20_000);
      let dbClean = true;
      if (dbPid) {
        // Huddle stops its database on a graceful exit; give it a moment, then insist.
        const until = Date.now() + 10_000;
        while (alive(dbPid) && Date.now() < until) await sleep(100);
        dbClean = await terminate(dbPid, 5000);
      }
      return { serverClean, dbClean };
    },
  };
}

/** Starts the Node peer server (peer-server.js) on a free port. */
export async function startPeer({ echo = false, logFile }) {
  const args = [join(HERE, "..", "peer-server.js"), "--port", "0", ...(echo ? ["--echo"] : [])];
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", log] });
  closeSync(log);
  const pid = child.pid;
  started.add(pid);
  child.on("exit", () => started.delete(pid));
  const port = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error("peer server did not start within 10 s")), 10_000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const line = out.split("\n").find((l) => l.includes("listening"));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line).listening);
      }
    });
    child.on("exit", (code) => reject(new Error(`peer server exited (${code}); see ${logFile}`)));
  });
  return {
    kind: "peer",
    pid,
    dbPid: null,
    url: `http://127.0.0.1:${port}`,
    log: logFile,
    async stop() {
      return { serverClean: await terminate(pid, 5000) };
    },
  };
}
