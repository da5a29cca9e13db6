// Two users sign up through the UI, become friends, open their 1:1 chat and talk live:
// unread count, read receipt, typing indicator, messages both ways without reloading.
//
// HUDDLE_URL=http://127.0.0.1:3100 HUDDLE_OUTBOX=/tmp/webdev/outbox \
//   HUDDLE_SCREENSHOTS=/tmp/shots node browser/chat.mjs

import { run, launch, newUserData, openUser, signUp, befriend, shot, log, assert, checkNoErrors, makePng } from "./lib.mjs";

run("chat", 150_000, async (cleanups) => {
  const browser = await launch();
  cleanups.push(() => browser.close());

  const alice = await openUser(browser, newUserData("alice"));
  const bob = await openUser(browser, newUserData("bob"));
  await alice.page.waitForSelector("#signin-panel:not([hidden])");

  await signUp(alice, { screenshot: "chat-1-signup" });
  await signUp(bob);
  await befriend(alice, bob);

  // Alice opens the chat from her friends list and writes first.
  await alice.page.click(`#friends-list li[data-user-id="${bob.id}"] [data-testid=open-chat]`);
  await alice.page.waitForSelector("#chat-view:not([hidden])");
  const chatId = await alice.page.getAttribute("#message-list", "data-chat-id");
  assert(chatId, "the open chat has no id");
  const hello = `Hello Bob ${Date.now()}`;
  await alice.page.fill("#message-input", hello);
  await alice.page.press("#message-input", "Enter");
  await alice.page.waitForSelector(`#message-list li.mine[data-testid=message] >> text=${hello}`);
  log("alice sent her message");

  // Bob sees the new chat appear with one unread message and a preview, live.
  await bob.page.click("#tab-chats");
  const bobItem = `#chat-list li[data-chat-id="${chatId}"]`;
  await bob.page.waitForSelector(`${bobItem} [data-testid=unread-count]`);
  const unread = await bob.page.textContent(`${bobItem} [data-testid=unread-count]`);
  assert(unread.trim() === "1", `bob's unread count is ${unread}, expected 1`);
  const preview = await bob.page.textContent(`${bobItem} [data-testid=chat-preview]`);
  assert(preview.includes("Hello Bob"), `bob's preview is "${preview}"`);
  assert(await bob.page.isVisible("#chat-list li[data-chat-id=ai]"), "the Assistant is not in the chat list");
  const first = await bob.page.getAttribute("#chat-list li:first-child", "data-chat-id");
  assert(first === "ai", "the Assistant is not pinned at the top");
  await shot(bob.page, "chat-2-chat-list");

  // Bob opens it: the message is there, the badge goes, and Alice sees a read receipt.
  await bob.page.click(`${bobItem} .chat-open`);
  await bob.page.waitForSelector(`#message-list li[data-sender="${alice.id}"] >> text=${hello}`);
  await bob.page.waitForSelector(`${bobItem} [data-testid=unread-count]`, { state: "detached" });
  await alice.page.waitForSelector('#message-list li.mine [data-testid=read-receipt][data-seen="true"]');
  log("read receipt shown to alice");

  // Bob types: Alice sees the typing indicator.
  await bob.page.click("#message-input");
  await bob.page.keyboard.type("Hi Ali", { delay: 40 });
  await alice.page.waitForFunction(() => /is typing/.test(document.querySelector("#typing-indicator").textContent));
  log("typing indicator shown to alice");

  // Bob sends: Alice sees it live, and the indicator clears.
  const reply = `Hi Alice ${Date.now()}`;
  await bob.page.fill("#message-input", reply);
  await bob.page.click("#send-button");
  await alice.page.waitForSelector(`#message-list li[data-sender="${bob.id}"] >> text=${reply}`);
  await bob.page.waitForSelector(`#message-list li.mine >> text=${reply}`);
  await alice.page.waitForFunction(() => document.querySelector("#typing-indicator").textContent === "");
  log("both messages seen live on both sides");

  // Each side shows both messages in order.
  for (const u of [alice, bob]) {
    const texts = await u.page.$$eval("#message-list li[data-testid=message] .message-content", (els) => els.map((e) => e.textContent));
    assert(texts.length === 2 && texts[0] === hello && texts[1] === reply, `${u.label} sees ${JSON.stringify(texts)}`);
  }
  // Edit, star and an image attachment, all seen live by the other side.
  const aliceMsg = `#message-list li[data-sender="${alice.id}"]`;
  await alice.page.click(`${aliceMsg} [data-action=edit]`);
  await alice.page.fill("#message-input", `${hello} (edited)`);
  await alice.page.press("#message-input", "Enter");
  await bob.page.waitForSelector(`${aliceMsg} [data-testid=edited]`);
  await bob.page.click(`${aliceMsg} [data-action=star]`);
  await bob.page.waitForSelector(`${aliceMsg}.starred`);
  assert(!(await alice.page.$(`${aliceMsg}.starred`)), "a star leaked to the other user");
  log("edit and star work");

  await alice.page.setInputFiles("#attach-input", { name: "dot.png", mimeType: "image/png", buffer: makePng(120) });
  const img = `#message-list li[data-sender="${alice.id}"] img.attachment`;
  await bob.page.waitForSelector(img);
  await bob.page.waitForFunction((sel) => document.querySelector(sel)?.naturalWidth > 0, img);
  log("image attachment uploaded and shown to bob");
  await shot(alice.page, "chat-3-conversation");

  // Delete: Bob sees a tombstone.
  alice.page.once("dialog", (d) => d.accept());
  await alice.page.click(`${aliceMsg}:not(:has(img)) [data-action=delete]`);
  await bob.page.waitForSelector(`${aliceMsg}.deleted`);
  log("delete shown live");

  // The assistant answers, or says clearly that this server has none.
  await bob.page.click("#chat-list li[data-chat-id=ai] .chat-open");
  await bob.page.waitForSelector("#ai-view:not([hidden])");
  await bob.page.waitForFunction(() => !document.querySelector("#ai-notice").hidden || !document.querySelector("#ai-send").disabled);
  const notice = await bob.page.$eval("#ai-notice", (n) => (n.hidden ? "" : n.textContent));
  log(`assistant: ${notice || "available"}`);
  // With an assistant configured (HUDDLE_AI_ANSWER: what it will say), ask it and watch the
  // answer stream into the AI chat.
  const expected = process.env.HUDDLE_AI_ANSWER;
  if (expected) {
    assert(!notice, `the assistant is configured, yet the page says: ${notice}`);
    await bob.page.fill("#ai-input", "What is the answer?");
    await bob.page.click("#ai-send");
    // The assistant's server fails the first time (the test scripts it so): the question
    // stays, and "Try again" asks it again under the same clientMsgId.
    await bob.page.click("#ai-messages [data-testid=ai-retry]");
    await bob.page.waitForFunction(
      (text) => [...document.querySelectorAll("#ai-messages li[data-role=assistant]")].some((li) => li.textContent.includes(text)),
      expected,
    );
    log("the assistant's answer streamed into the AI chat");
    await shot(bob.page, "chat-4-assistant");
  }
  await alice.page.click("#summarize");
  await alice.page.waitForFunction(() => !/Summarizing/.test(document.querySelector("#summary-text").textContent), null, { timeout: 40_000 });
  log(`summary panel: ${await alice.page.textContent("#summary-text")}`);

  // A profile avatar, uploaded to the store and shown in the header.
  await alice.page.setInputFiles("#avatar-input", { name: "me.png", mimeType: "image/png", buffer: makePng(64, [198, 87, 35]) });
  await alice.page.waitForFunction(() => document.querySelector("#me-avatar img")?.naturalWidth > 0);
  log("avatar uploaded");

  // Page script never holds the refresh token: it lives in an HttpOnly cookie.
  const stored = await bob.page.evaluate(() => sessionStorage.getItem("huddle.session"));
  assert(!/refresh/i.test(stored), `the tab's storage holds a refresh token: ${stored}`);
  const visible = await bob.page.evaluate(() => document.cookie);
  assert(!/huddle_refresh/.test(visible), `page script can read the refresh cookie: ${visible}`);
  const cookies = await bob.page.context().cookies();
  assert(
    cookies.some((c) => c.name.startsWith("huddle_refresh_") && c.httpOnly),
    `no HttpOnly session cookie: ${JSON.stringify(cookies.map((c) => [c.name, c.httpOnly]))}`,
  );
  // An expired access token is refreshed: reload with the stored expiry in the past.
  const before = await bob.page.evaluate(() => JSON.parse(sessionStorage.getItem("huddle.session")).accessToken);
  await bob.page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem("huddle.session"));
    s.expiresAt = 0;
    sessionStorage.setItem("huddle.session", JSON.stringify(s));
  });
  await bob.page.reload();
  await bob.page.waitForSelector("#app-view:not([hidden])");
  await bob.page.waitForFunction(() => document.body.dataset.socket === "connected");
  await bob.page.waitForSelector(`#chat-list li[data-chat-id="${chatId}"]`);
  const after = await bob.page.evaluate(() => JSON.parse(sessionStorage.getItem("huddle.session")).accessToken);
  assert(after && after !== before, "the session was not refreshed (same access token)");
  log("token refreshed after reload");

  const problems = checkNoErrors([alice, bob]);
  assert(!problems.length, "the pages reported errors");
});
