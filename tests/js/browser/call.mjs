// Three users sign up, become friends, meet in a group and hold a video call through the
// SFU: every window must decode video from both other participants (getStats framesDecoded
// rising, <video> elements with a size) and receive their audio (packetsReceived rising),
// and when one leaves, the others drop their tile.
//
// HUDDLE_URL=http://127.0.0.1:3100 HUDDLE_OUTBOX=/tmp/webdev/outbox \
//   HUDDLE_SCREENSHOTS=/tmp/shots node browser/call.mjs

import { run, launch, newUserData, openUser, signUp, befriend, shot, log, assert, sleep, checkNoErrors } from "./lib.mjs";

/** Inbound RTP reports of one kind on the page's call connection: { trackId → `field` }.
 * Chromium counts an audio packet only once SRTP has authenticated and decrypted it. */
function sampleInbound(page, kind, field) {
  return page.evaluate(async ([kind, field]) => {
    const pc = window.huddle?.pc;
    if (!pc) return null;
    const out = {};
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === kind) out[r.trackIdentifier || r.id] = r[field] || 0;
    });
    return out;
  }, [kind, field]);
}

/** Samples `kind`'s `field` twice, 1.2 s apart: the remote tracks whose count rose, and whose
 * they are. */
async function rising(user, kind, field) {
  const a = await sampleInbound(user.page, kind, field);
  await sleep(1200);
  const b = await sampleInbound(user.page, kind, field);
  const owners = await trackOwners(user.page);
  if (!a || !b) return null;
  const ids = Object.keys(b).filter((id) => (a[id] ?? 0) > 0 && b[id] > a[id]);
  return { ids, from: new Set(ids.map((id) => owners[id]).filter(Boolean)), stats: b };
}

/** Waits until `user` receives rising audio from every one of `others` (the SFU seals audio
 * copies itself: Chromium must take them). */
async function waitForAudioFrom(user, others, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const r = await rising(user, "audio", "packetsReceived");
    if (r) {
      last = `rising=${r.ids.length} from=${[...r.from]} stats=${JSON.stringify(r.stats)}`;
      if (others.every((o) => r.from.has(o.id))) {
        log(`${user.label} receives audio from ${others.map((o) => o.label).join(" and ")} (${JSON.stringify(r.stats)})`);
        return;
      }
    }
  }
  throw new Error(`${user.label} never received audio from all of ${others.map((o) => o.label)}: ${last}\n  ${await statsDump(user.page)}`);
}

/** A compact dump of the connection's RTP stats, for failure messages. */
function statsDump(page) {
  return page.evaluate(async () => {
    const pc = window.huddle?.pc;
    if (!pc) return "no pc";
    const keep = {
      "inbound-rtp": ["kind", "trackIdentifier", "packetsReceived", "packetsLost", "framesReceived", "framesDecoded", "keyFramesDecoded", "framesDropped", "pliCount", "nackCount", "freezeCount"],
      "outbound-rtp": ["kind", "rid", "packetsSent", "framesEncoded", "keyFramesEncoded", "pliCount", "nackCount", "qualityLimitationReason", "targetBitrate"],
      "candidate-pair": ["state", "nominated", "bytesSent", "bytesReceived", "availableOutgoingBitrate"],
    };
    const out = [];
    (await pc.getStats()).forEach((r) => {
      const fields = keep[r.type];
      if (!fields || (r.type === "candidate-pair" && !r.nominated)) return;
      out.push(r.type + " " + fields.filter((f) => r[f] !== undefined).map((f) => `${f}=${r[f]}`).join(" "));
    });
    const extmaps = (sdp) => [...new Set((sdp || "").split("\r\n").filter((l) => l.startsWith("a=extmap:")))].join(" | ");
    out.push("local extmaps: " + extmaps(pc.localDescription?.sdp));
    out.push("remote extmaps: " + extmaps(pc.remoteDescription?.sdp));
    return `${pc.connectionState}/${pc.signalingState}\n    ` + out.join("\n    ");
  });
}

/** Who owns each remote track, from the app's track:published bookkeeping. */
function trackOwners(page) {
  return page.evaluate(() => Object.fromEntries([...(window.huddle.call?.published ?? new Map())].map(([id, p]) => [id, p.userId])));
}

/** Waits until `user` decodes rising video from every one of `others`, and the grid shows it. */
async function waitForVideoFrom(user, others, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const r = await rising(user, "video", "framesDecoded");
    if (r) {
      const sizes = await user.page.$$eval("#call-grid video[data-user-id][data-source=camera]", (vs) =>
        vs.map((v) => ({ user: v.dataset.userId, w: v.videoWidth, h: v.videoHeight })),
      );
      const shown = new Set(sizes.filter((s) => s.w > 0 && s.h > 0).map((s) => s.user));
      last = `rising=${r.ids.length} from=${[...r.from]} shown=${[...shown]} stats=${JSON.stringify(r.stats)}`;
      if (r.ids.length >= others.length && others.every((o) => r.from.has(o.id) && shown.has(o.id))) {
        log(`${user.label} decodes video from ${others.map((o) => o.label).join(" and ")} (${JSON.stringify(sizes)})`);
        return;
      }
    }
  }
  const dumps = [];
  for (const u of [user, ...others]) dumps.push(`  ${u.label}: ${await statsDump(u.page)}`);
  throw new Error(`${user.label} never decoded video from all of ${others.map((o) => o.label)}: ${last}\n${dumps.join("\n")}`);
}

run("call", 150_000, async (cleanups) => {
  const browser = await launch();
  cleanups.push(() => browser.close());

  const [ann, ben, cal] = await Promise.all(["ann", "ben", "cal"].map((n) => openUser(browser, newUserData(n))));
  for (const u of [ann, ben, cal]) await signUp(u);
  await befriend(ann, ben);
  await befriend(ann, cal);

  // Ann creates a group with both; they join it from their invitations.
  await ann.page.click("#tab-chats");
  await ann.page.click("#new-group");
  await ann.page.fill("#group-name", "Call crew");
  await ann.page.check(`#group-member-${ben.id}`);
  await ann.page.check(`#group-member-${cal.id}`);
  await ann.page.click("#group-create");
  await ann.page.waitForSelector("#chat-view:not([hidden])");
  const chatId = await ann.page.getAttribute("#message-list", "data-chat-id");
  for (const u of [ben, cal]) {
    await u.page.click("#tab-notifications");
    await u.page.click("#group-invites li[data-group-id] [data-testid=accept-group]");
    await u.page.click("#tab-chats");
    await u.page.waitForSelector(`#chat-list li[data-chat-id="${chatId}"]`);
  }
  log("group ready");

  // Ann starts a video call; the others accept. Each window notes when its user started or
  // accepted, and when each remote camera first showed a decoded frame.
  const watchFirstFrames = (page) =>
    page.evaluate(() => {
      window.__acceptedAt = performance.now();
      // Wall-clock milliseconds, comparable across the windows (one machine, one clock).
      window.__acceptedWall = performance.timeOrigin + performance.now();
      window.__firstFrames = {};
      window.__steps = {};
      setInterval(() => {
        const pc = window.huddle?.pc;
        if (pc && !("pc" in window.__steps)) window.__steps.pc = performance.now();
        if (pc?.connectionState === "connected" && !("connected" in window.__steps)) {
          window.__steps.connected = performance.now();
        }
        for (const v of document.querySelectorAll("#call-grid video[data-user-id][data-source=camera]")) {
          if (v.videoWidth > 0 && !(v.dataset.userId in window.__firstFrames)) {
            window.__firstFrames[v.dataset.userId] = performance.now();
          }
        }
      }, 10);
    });
  await watchFirstFrames(ann.page);
  await ann.page.click("#call-video");
  await ann.page.waitForSelector("#call-view:not([hidden])");
  for (const u of [ben, cal]) {
    await u.page.waitForSelector("#incoming-call:not([hidden])");
    await watchFirstFrames(u.page);
    await u.page.click("#call-accept");
    await u.page.waitForSelector("#call-view:not([hidden])");
  }
  log("everyone is in the call");

  const everyone = [ann, ben, cal];
  for (const u of everyone) await waitForVideoFrom(u, everyone.filter((o) => o !== u));
  for (const u of everyone) await waitForAudioFrom(u, everyone.filter((o) => o !== u));
  const accepted = new Map();
  for (const u of everyone) accepted.set(u, await u.page.evaluate(() => window.__acceptedWall));
  for (const u of everyone) {
    const { acceptedAt, firstFrames, steps, origin } = await u.page.evaluate(() => ({
      acceptedAt: window.__acceptedAt,
      firstFrames: window.__firstFrames,
      steps: window.__steps,
      origin: performance.timeOrigin,
    }));
    const since = (t) => Math.round(t - acceptedAt);
    const times = everyone.filter((o) => o !== u).map((o) => {
      // Someone who accepted later cannot be seen before: also from when both were in.
      const both = Math.max(origin + acceptedAt, accepted.get(o));
      return `${o.label} ${since(firstFrames[o.id])} ms (${Math.round(origin + firstFrames[o.id] - both)} ms after both accepted)`;
    });
    log(
      `${u.label}: from ${u === ann ? "starting" : "accepting"} the call to the first decoded frame: ${times.join(", ")}` +
        `; connection made at ${since(steps.pc)} ms, up at ${since(steps.connected)} ms`,
    );
  }
  for (const u of everyone) {
    const tiles = await u.page.$$eval("#call-grid video[data-user-id][data-source=camera]", (vs) => vs.map((v) => v.dataset.userId));
    assert(tiles.length === 2, `${u.label} shows ${tiles.length} remote tiles`);
  }
  await shot(ann.page, "call-1-grid");

  // Cal leaves: the others drop Cal's tile; Cal's window shows no call.
  await cal.page.click("#call-leave");
  await cal.page.waitForSelector("#call-view", { state: "hidden" });
  assert((await cal.page.$$("#call-grid video")).length === 0, "cal still shows call videos");
  for (const u of [ann, ben]) {
    await u.page.waitForSelector(`#call-grid [data-user-id="${cal.id}"]`, { state: "detached", timeout: 20_000 });
    const left = await u.page.$$eval("#call-grid video[data-user-id]", (vs) => [...new Set(vs.map((v) => v.dataset.userId))]);
    const other = u === ann ? ben : ann;
    assert(left.length === 1 && left[0] === other.id, `${u.label} still shows ${JSON.stringify(left)}`);
  }
  log("cal's tile is gone from both windows");
  await sleep(500);
  await shot(ann.page, "call-2-after-leave");

  // The remaining two hang up.
  await ben.page.click("#call-leave");
  await ann.page.waitForSelector(`#call-grid [data-user-id="${ben.id}"]`, { state: "detached" });
  await ann.page.click("#call-leave");
  for (const u of [ann, ben]) await u.page.waitForSelector("#call-view", { state: "hidden" });

  const problems = checkNoErrors(everyone);
  assert(!problems.length, "the pages reported errors");
});
