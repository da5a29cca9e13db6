// A stand-in for SendGrid's v3 mail-send API on a loopback port, so the bench can read the
// verification codes Huddle emails (Huddle points at it through SENDGRID_BASE_URL). It
// answers `POST /v3/mail/send` with 202, as SendGrid does, and keeps each recipient's
// six-digit code for `code(email)`.

import { createServer } from "node:http";

export class FakeSendGrid {
  constructor() {
    this.codes = new Map(); // email -> newest code
    this.waiters = new Map(); // email -> [resolve]
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** Listens on 127.0.0.1 at a free port; resolves to the base URL. */
  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.baseUrl = `http://127.0.0.1:${this.server.address().port}`;
    return this.baseUrl;
  }

  close() {
    this.server.closeAllConnections?.();
    this.server.close();
  }

  handle(req, res) {
    if (req.method !== "POST" || req.url !== "/v3/mail/send") {
      res.writeHead(404).end();
      return;
    }
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      try {
        const mail = JSON.parse(body);
        const to = mail.personalizations?.[0]?.to?.[0]?.email?.toLowerCase();
        const text = mail.content?.find((c) => c.type === "text/plain")?.value ?? "";
        const code = /\b(\d{6})\b/.exec(text)?.[1];
        if (to && code) this.deliver(to, code);
        res.writeHead(202).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  }

  deliver(email, code) {
    this.codes.set(email, code);
    for (const resolve of this.waiters.get(email) ?? []) resolve(code);
    this.waiters.delete(email);
  }

  /** Forgets any code held for `email`, so the next `code()` waits for a fresh mail. */
  forget(email) {
    this.codes.delete(email.toLowerCase());
  }

  /** The code mailed to `email`: the one held, or the next to arrive within `timeoutMs`. */
  code(email, timeoutMs = 20_000) {
    email = email.toLowerCase();
    const held = this.codes.get(email);
    if (held) return Promise.resolve(held);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no verification mail to ${email} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const list = this.waiters.get(email) ?? [];
      list.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
      this.waiters.set(email, list);
    });
  }
}
