// The bench's users and group chats, created over Huddle's REST API once and kept in
// `<data dir>/accounts.json`, so later runs on the same data dir only refresh tokens that
// are about to expire (or all of them, when the stored ones are refused).
//
// Accounts are verified the way a real user verifies: register, read the six-digit code
// from the mail (caught by the fake SendGrid), then verify, which signs in.

import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

const PASSWORD = "bench-password-not-a-secret";
const STATE_VERSION = 1;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `task(item)` over `items` with at most `limit` in flight; resolves to the results. */
export async function pool(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i], i);
    }
  });
  await Promise.all(runners);
  return results;
}

/** A JSON request to the API; retries network errors and 429/5xx a few times. */
async function api(base, method, path, { token, body } = {}) {
  for (let attempt = 1; ; attempt++) {
    let r;
    try {
      r = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      if (attempt < 5) {
        await sleep(500 * attempt);
        continue;
      }
      throw new Error(`${method} ${path}: ${e.message}`);
    }
    const text = await r.text();
    let json;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    if ((r.status === 429 || r.status >= 500) && attempt < 5) {
      await sleep(1000 * attempt);
      continue;
    }
    return { status: r.status, body: json };
  }
}

function fail(what, r) {
  return new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
}

const emailOf = (i) => `bench${i}@bench.example.com`;

export class Accounts {
  /**
   * @param {string} file the accounts.json path
   * @param {(msg: string) => void} log progress lines
   */
  constructor(file, log) {
    this.file = file;
    this.log = log;
    this.state = { version: STATE_VERSION, users: [], rooms: {} };
    if (existsSync(file)) {
      try {
        const loaded = JSON.parse(readFileSync(file, "utf8"));
        if (loaded.version === STATE_VERSION) this.state = loaded;
        // An interrupted creation saves users out of order: keep the unbroken prefix (the
        // rest exist on the server and are picked up again by `create`).
        const hole = this.state.users.findIndex((u) => !u);
        if (hole >= 0) this.state.users.length = hole;
      } catch {
        this.log(`ignoring unreadable ${file}`);
      }
    }
  }

  save() {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state));
    renameSync(tmp, this.file);
  }

  /**
   * Makes sure `count` verified users exist with tokens valid for `validForMs` more, and
   * that users 0..count are grouped into rooms of `roomSize` (the last room may be smaller,
   * but has at least two members). Returns { users, rooms }.
   */
  async ensure({ base, sendgrid, count, roomSize, validForMs }) {
    const { state } = this;
    const t0 = Date.now();

    // Stored tokens may have been signed by another secret, or the database may be new:
    // probe one, then re-login, and start over if the account is gone.
    if (state.users.length > 0) {
      const probe = await api(base, "GET", "/api/v1/users/me", { token: state.users[0].token });
      if (probe.status === 401) {
        const login = await this.login(base, 0);
        if (!login) {
          this.log("stored accounts are unknown to this database: creating them again");
          state.users = [];
          state.rooms = {};
        } else {
          // The accounts are there but their tokens are refused: sign them all in again.
          for (const u of state.users) u.expiresAt = 0;
        }
      } else if (probe.status !== 200) {
        throw fail("GET /api/v1/users/me", probe);
      }
    }

    // Refresh tokens that would expire during the run.
    const stale = state.users
      .map((u, i) => ({ u, i }))
      .filter(({ u }) => !u.expiresAt || u.expiresAt < Date.now() + validForMs)
      .map(({ i }) => i);
    if (stale.length) {
      this.log(`signing in ${stale.length} accounts again (tokens expiring)`);
      await pool(stale, 16, async (i) => {
        if (!(await this.login(base, i))) throw new Error(`cannot sign in ${emailOf(i)}`);
      });
      this.save();
    }

    // New accounts.
    if (state.users.length < count) {
      const todo = Array.from({ length: count - state.users.length }, (_, k) => state.users.length + k);
      this.log(`creating ${todo.length} accounts (${state.users.length} already stored)`);
      let done = 0;
      await pool(todo, 16, async (i) => {
        state.users[i] = await this.create(base, sendgrid, i);
        if (++done % 100 === 0) {
          this.log(`  ${done}/${todo.length} accounts`);
          this.save();
        }
      });
      this.save();
    }

    // Rooms: group chats of `roomSize` consecutive users.
    const key = String(roomSize);
    const rooms = (state.rooms[key] ??= []);
    const wanted = [];
    for (let start = 0; start + 1 < count; start += roomSize) {
      const members = [];
      for (let i = start; i < Math.min(start + roomSize, count); i++) members.push(i);
      if (members.length >= 2) wanted.push(members);
    }
    const same = (a, b) => a && a.length === b.length && a.every((v, k) => v === b[k]);
    const missing = wanted.map((m, r) => ({ m, r })).filter(({ m, r }) => !same(rooms[r]?.members, m));
    if (missing.length) {
      this.log(`creating ${missing.length} group chats of up to ${roomSize}`);
      let done = 0;
      await pool(missing, 8, async ({ m, r }) => {
        rooms[r] = await this.createRoom(base, r, m);
        if (++done % 50 === 0) {
          this.log(`  ${done}/${missing.length} group chats`);
          this.save();
        }
      });
      this.save();
    }
    if (stale.length || missing.length || Date.now() - t0 > 5000) {
      this.log(`accounts ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    return { users: state.users.slice(0, count), rooms: rooms.slice(0, wanted.length) };
  }

  /** Signs user `i` in again; false when the account does not exist (or the password is wrong). */
  async login(base, i) {
    const email = emailOf(i);
    const r = await api(base, "POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
    if (r.status === 401) return false;
    if (r.status !== 200) throw fail(`login ${email}`, r);
    this.state.users[i] = this.user(email, r.body);
    return true;
  }

  user(email, body) {
    return {
      email,
      userId: body.user._id,
      token: body.accessToken,
      expiresAt: Date.now() + body.expiresIn * 1000,
    };
  }

  /** Registers and verifies user `i`; picks up where an interrupted earlier run left it. */
  async create(base, sendgrid, i) {
    const email = emailOf(i);
    sendgrid.forget(email);
    const r = await api(base, "POST", "/api/v1/auth/register", {
      body: {
        firstName: "Bench",
        lastName: `User ${i}`,
        username: `bench${i}`,
        email,
        password: PASSWORD,
        passwordConfirm: PASSWORD,
      },
    });
    if (r.status === 409) {
      // Registered by an earlier run that did not save: signed in if verified, otherwise
      // ask for a fresh code.
      const login = await api(base, "POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } });
      if (login.status === 200) return this.user(email, login.body);
      if (login.body?.error?.code !== "email_not_verified") throw fail(`login ${email}`, login);
      const again = await api(base, "POST", "/api/v1/auth/send-otp", { body: { email } });
      if (again.status !== 202) throw fail(`send-otp ${email}`, again);
    } else if (r.status !== 202) {
      throw fail(`register ${email}`, r);
    }
    const otp = await sendgrid.code(email);
    const v = await api(base, "POST", "/api/v1/auth/verify", { body: { email, otp, password: PASSWORD } });
    if (v.status !== 200) throw fail(`verify ${email}`, v);
    return this.user(email, v.body);
  }

  /** A group chat created by the first member, every other member invited and accepting. */
  async createRoom(base, r, members) {
    const users = this.state.users;
    const [admin, ...rest] = members;
    const g = await api(base, "POST", "/api/v1/groups", {
      token: users[admin].token,
      body: { name: `bench room ${r}`, members: rest.map((i) => users[i].userId) },
    });
    if (g.status !== 201) throw fail(`create group ${r}`, g);
    for (const i of rest) {
      const a = await api(base, "POST", `/api/v1/groups/${g.body._id}/accept`, { token: users[i].token });
      if (a.status !== 200) throw fail(`accept group ${r} as ${emailOf(i)}`, a);
    }
    return { groupId: g.body._id, chatId: g.body.chatId, members };
  }
}
