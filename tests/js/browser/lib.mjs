// Shared helpers for Huddle's browser tests: launch Chromium, sign users up through the
// UI (reading the emailed code from the outbox), befriend them, take screenshots.

import { chromium } from "playwright-core";
import { readdir, readFile, stat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { deflateSync } from "node:zlib";

export const BASE_URL = (process.env.HUDDLE_URL || "http://127.0.0.1:3100").replace(/\/$/, "");
export const OUTBOX = process.env.HUDDLE_OUTBOX || "/tmp/webdev/outbox";
export const SHOTS = process.env.HUDDLE_SCREENSHOTS || "/tmp/huddle-shots";

const started = Date.now();
/** Every user opened, for diagnostics when a test fails. */
const opened = [];

/** Prints what each page showed and reported, to explain a failure. */
async function diagnose() {
  for (const u of opened) {
    const toast = await u.page
      .evaluate(() => {
        const t = document.querySelector("#toast");
        return t && !t.hidden ? t.textContent : "";
      })
      .catch(() => "");
    if (toast) console.error(`  ${u.label} toast: ${toast}`);
    for (const e of u.errors) console.error(`  ${u.label} ${e}`);
    for (const l of u.logs.slice(-15)) console.error(`  ${u.label} console: ${l}`);
  }
}

/** Prints a progress line with the elapsed time. */
export function log(...args) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  console.log(`[${t}s]`, ...args);
}

/**
 * Runs `main(cleanup)` under a global timeout; exits 0 on success, 1 with a clear message on
 * failure or timeout. `cleanup` functions registered via the returned array run either way.
 */
export async function run(name, timeoutMs, main) {
  const cleanups = [];
  const finish = async (code, message) => {
    for (const fn of cleanups.reverse()) {
      await Promise.race([Promise.resolve().then(fn).catch(() => {}), sleep(5000)]);
    }
    if (message) console.error(message);
    process.exit(code);
  };
  const timer = setTimeout(() => {
    finish(1, `FAIL ${name}: timed out after ${timeoutMs / 1000} s`);
  }, timeoutMs);
  try {
    await main(cleanups);
    clearTimeout(timer);
    log(`PASS ${name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    await finish(0);
  } catch (e) {
    clearTimeout(timer);
    console.error(`FAIL ${name}: ${e?.stack || e}`);
    await Promise.race([diagnose(), sleep(5000)]);
    await finish(1);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function launch() {
  await mkdir(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      "--no-sandbox",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}

/** A fresh user description with a unique username and email. */
export function newUserData(label) {
  const suffix = randomBytes(4).toString("hex");
  return {
    label,
    firstName: label[0].toUpperCase() + label.slice(1),
    lastName: "Tester",
    username: `${label.toLowerCase()}_${suffix}`,
    email: `${label.toLowerCase()}.${suffix}@example.test`,
    password: `pw-${randomBytes(6).toString("hex")}`,
  };
}

/** One browser context (an independent user) with a page on the app. */
export async function openUser(browser, data) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  const logs = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`console: ${msg.text()}`);
    else logs.push(`${msg.type()}: ${msg.text()}`);
  });
  await page.goto(BASE_URL + "/");
  const user = { ...data, context, page, errors, logs };
  opened.push(user);
  return user;
}

/** The newest OTP mailed to `email` after `since` (ms), polling the outbox. */
export async function readOtp(email, since, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let best = null;
    for (const name of await readdir(OUTBOX).catch(() => [])) {
      if (!name.endsWith(".json")) continue;
      const path = join(OUTBOX, name);
      try {
        const info = await stat(path);
        if (info.mtimeMs < since - 2000) continue;
        const mail = JSON.parse(await readFile(path, "utf8"));
        if (String(mail.to).toLowerCase() !== email.toLowerCase() || !mail.otp) continue;
        if (!best || info.mtimeMs > best.mtime) best = { mtime: info.mtimeMs, otp: String(mail.otp) };
      } catch {
        /* a file being written */
      }
    }
    if (best) return best.otp;
    await sleep(250);
  }
  throw new Error(`no verification email for ${email} in ${OUTBOX}`);
}

/** Signs a user up through the UI, enters the emailed code, and waits to be signed in. */
export async function signUp(user, { screenshot } = {}) {
  const { page } = user;
  await page.click("#show-signup");
  await page.fill("#signup-first", user.firstName);
  await page.fill("#signup-last", user.lastName);
  await page.fill("#signup-username", user.username);
  await page.fill("#signup-email", user.email);
  await page.fill("#signup-password", user.password);
  await page.fill("#signup-confirm", user.password);
  if (screenshot) await shot(page, screenshot);
  const since = Date.now();
  await page.click("#signup-submit");
  await page.waitForSelector("#verify-panel:not([hidden])");
  const otp = await readOtp(user.email, since);
  await page.fill("#verify-code", otp);
  await page.click("#verify-submit");
  await page.waitForSelector("#app-view:not([hidden])");
  await page.waitForFunction(() => document.body.dataset.socket === "connected");
  user.id = await page.evaluate(() => window.huddle.state.me._id);
  log(`${user.label} signed up as @${user.username} (${user.id})`);
  return user;
}

/** `a` finds `b` by username and sends a request; `b` accepts it live. */
export async function befriend(a, b) {
  await a.page.click("#tab-people");
  await a.page.fill("#user-search", b.username);
  await a.page.click("#user-search-submit");
  await a.page.click(`#user-search-results li[data-user-id="${b.id}"] [data-testid=add-friend]`);
  await b.page.click("#tab-people");
  await b.page.click(`#friend-requests li[data-user-id="${a.id}"] [data-testid=accept-request]`);
  await b.page.waitForSelector(`#friends-list li[data-user-id="${a.id}"]`);
  await a.page.waitForSelector(`#friends-list li[data-user-id="${b.id}"]`);
  log(`${a.label} and ${b.label} are friends`);
}

export async function shot(page, name) {
  const path = join(SHOTS, `${name}.png`);
  await page.screenshot({ path });
  log(`screenshot ${path}`);
}

/** Fails if a page reported uncaught errors. */
export function checkNoErrors(users) {
  // HTTP errors the app handles (e.g. no assistant on this server) are not page errors.
  const problems = users.flatMap((u) =>
    u.errors.filter((e) => !/favicon|Failed to load resource/.test(e)).map((e) => `${u.label}: ${e}`),
  );
  if (problems.length) log("page errors:\n  " + problems.join("\n  "));
  return problems;
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/** A solid-colour RGB PNG of `size`×`size` pixels with a lighter diagonal, as a Buffer. */
export function makePng(size = 96, [r, g, b] = [35, 87, 198]) {
  const row = (y) => {
    const line = Buffer.alloc(1 + size * 3); // filter byte 0, then RGB
    for (let x = 0; x < size; x++) {
      const light = Math.abs(x - y) < size / 12;
      line.set(light ? [255, 255, 255] : [r, g, b], 1 + x * 3);
    }
    return line;
  };
  const raw = Buffer.concat(Array.from({ length: size }, (_, y) => row(y)));
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function crc32(buf) {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
