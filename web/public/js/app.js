// Huddle's browser client: sign-up and sign-in, people and friends, chats over Socket.IO,
// the assistant, and calls. Plain ES modules, no framework.

import { io } from "../vendor/socket.io.esm.min.js";
import { $, h, clear, announce, toast, formatTime, newClientId } from "./dom.js";
import { api, auth, upload, mediaUrl, currentSession, clearSession, onSignedOut, freshToken, refreshTokens, updateUser } from "./api.js";
import { Call, request } from "./call.js";
import { Assistant } from "./ai.js";

/** Everything the signed-in page knows. */
const S = {
  me: null,
  socket: null,
  users: new Map(), // id → UserView
  userLoads: new Map(), // id → Promise
  chats: new Map(), // id → ChatView
  friends: new Map(), // id → UserView
  presence: new Map(), // id → "online" | "offline"
  requests: { incoming: [], outgoing: [] },
  groupInvites: new Map(), // groupId → GroupView
  notifications: [],
  openChatId: null, // a chat id, "ai", or null
  messages: new Map(), // chatId → Map(seq → MessageView)
  readBy: new Map(), // chatId → Map(userId → seq)
  typing: new Map(), // chatId → Map(userId → timer)
  compose: null, // { mode: "reply" | "edit", message }
  typingSentAt: 0,
  typingStopTimer: null,
  call: null,
  incoming: null,
};

const assistant = new Assistant({ getSocket: () => S.socket });

/** For tests and debugging: `window.huddle.pc` is the live call's RTCPeerConnection. */
window.huddle = {
  pc: null,
  get call() {
    return S.call;
  },
  get socket() {
    return S.socket;
  },
  state: S,
};

// ---------------------------------------------------------------------------------------
// Signed out: sign in, sign up, verify

let pendingSignup = null; // { email, password } between sign-up and the emailed code

function showAuth(panel) {
  $("#app-view").hidden = true;
  $("#auth-view").hidden = false;
  for (const id of ["signin-panel", "signup-panel", "verify-panel"]) $("#" + id).hidden = id !== panel;
  const first = $(`#${panel} input`);
  first?.focus();
}

function formError(id, text) {
  $("#" + id).textContent = text || "";
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

$("#show-signup").addEventListener("click", () => showAuth("signup-panel"));
$("#show-signin").addEventListener("click", () => showAuth("signin-panel"));
$("#verify-back").addEventListener("click", () => showAuth("signin-panel"));

$("#signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const email = $("#signin-email").value.trim();
  const password = $("#signin-password").value;
  formError("signin-error");
  if (!email || !password) return formError("signin-error", "Enter your email and password.");
  busy($("#signin-submit"), true);
  try {
    await auth.login(email, password);
    $("#signin-password").value = "";
    await startApp();
  } catch (e) {
    if (e.code === "email_not_verified") {
      pendingSignup = { email, password };
      await auth.resend(email).catch(() => {});
      showVerify(email);
    } else {
      formError("signin-error", e.status === 401 ? "Wrong email or password." : e.message);
    }
  } finally {
    busy($("#signin-submit"), false);
  }
});

$("#signup-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  formError("signup-error");
  const form = {
    firstName: $("#signup-first").value.trim(),
    lastName: $("#signup-last").value.trim(),
    username: $("#signup-username").value.trim(),
    email: $("#signup-email").value.trim(),
    password: $("#signup-password").value,
    passwordConfirm: $("#signup-confirm").value,
  };
  if (Object.values(form).some((v) => !v)) return formError("signup-error", "Fill in every field.");
  if (form.password.length < 8) return formError("signup-error", "The password needs at least 8 characters.");
  if (form.password !== form.passwordConfirm) return formError("signup-error", "The passwords do not match.");
  busy($("#signup-submit"), true);
  try {
    await auth.register(form);
    pendingSignup = { email: form.email, password: form.password };
    showVerify(form.email);
  } catch (e) {
    formError("signup-error", e.message);
  } finally {
    busy($("#signup-submit"), false);
  }
});

function showVerify(email) {
  $("#verify-text").textContent = `We sent a code to ${email}. Enter it below.`;
  $("#verify-code").value = "";
  formError("verify-error");
  showAuth("verify-panel");
}

$("#verify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  formError("verify-error");
  const otp = $("#verify-code").value.trim();
  if (!otp) return formError("verify-error", "Enter the code from the email.");
  if (!pendingSignup) return showAuth("signin-panel");
  busy($("#verify-submit"), true);
  try {
    await auth.verify(pendingSignup.email, otp, pendingSignup.password);
    pendingSignup = null;
    await startApp();
  } catch (e) {
    formError("verify-error", e.status === 400 || e.status === 403 ? "That code is not right or has expired." : e.message);
  } finally {
    busy($("#verify-submit"), false);
  }
});

$("#resend-code").addEventListener("click", async () => {
  if (!pendingSignup) return;
  try {
    await auth.resend(pendingSignup.email);
    toast("A new code is on its way.");
  } catch (e) {
    toast(e.message);
  }
});

$("#signout").addEventListener("click", async () => {
  await S.call?.close();
  S.socket?.disconnect();
  await auth.logout().catch(() => {});
  location.reload();
});

onSignedOut(() => {
  S.socket?.disconnect();
  toast("Your session ended; please sign in again.");
  showAuth("signin-panel");
});

// ---------------------------------------------------------------------------------------
// Users and names

function fullName(u) {
  return u ? `${u.firstName} ${u.lastName}`.trim() || u.username : "…";
}

function nameOf(id) {
  if (id === S.me?._id) return "You";
  const u = S.users.get(id);
  if (!u) loadUsers([id]);
  return u ? fullName(u) : "Someone";
}

function rememberUser(u) {
  if (u?._id) S.users.set(u._id, u);
  return u;
}

/** Fetches unknown users; resolves once all are known (or failed). */
function loadUsers(ids) {
  const work = [];
  for (const id of new Set(ids)) {
    if (!id || S.users.has(id)) continue;
    if (!S.userLoads.has(id)) {
      S.userLoads.set(
        id,
        api("GET", `/api/v1/users/${id}`)
          .then((u) => {
            rememberUser(u);
            scheduleRender();
          })
          .catch(() => {}),
      );
    }
    work.push(S.userLoads.get(id));
  }
  return Promise.all(work);
}

/** An avatar: the user's picture, or their initials. */
function avatar(user, label) {
  const initials = user ? ((user.firstName?.[0] ?? "") + (user.lastName?.[0] ?? "")).toUpperCase() : "?";
  const el = h("span", { class: "avatar", "aria-hidden": "true" }, initials || "?");
  if (user?.avatarUrl) {
    mediaUrl(user.avatarUrl)
      .then((url) => {
        el.replaceWith(h("img", { class: "avatar", src: url, alt: label ?? `${fullName(user)}'s avatar` }));
      })
      .catch(() => {});
  }
  return el;
}

/**
 * Re-renders a list without losing keyboard focus: remembers which row (by its data-* id)
 * and which control in it had focus, and focuses the same control afterwards.
 */
function keepFocus(container, render) {
  const active = document.activeElement;
  const row = active && container.contains(active) ? active.closest("li") : null;
  const key = row && ["data-chat-id", "data-user-id", "data-group-id"].find((a) => row.hasAttribute(a));
  const rowSel = key ? `li[${key}="${row.getAttribute(key)}"]${row.dataset.kind ? `[data-kind="${row.dataset.kind}"]` : ""}` : null;
  const ctrlSel = active?.dataset?.testid ? `[data-testid="${active.dataset.testid}"]` : active?.className ? "." + active.className.split(" ")[0] : null;
  render();
  if (rowSel && ctrlSel) container.querySelector(`${rowSel} ${ctrlSel}`)?.focus();
}

let renderQueued = false;
/** Re-renders the name-bearing parts once, after a batch of user loads. */
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderChatList();
    renderPeople();
    if (S.openChatId && S.openChatId !== "ai") {
      renderChatHeader();
      renderAllMessages();
    }
  });
}

// ---------------------------------------------------------------------------------------
// Starting the signed-in app

async function startApp() {
  $("#auth-view").hidden = true;
  $("#app-view").hidden = false;
  S.me = rememberUser(await api("GET", "/api/v1/users/me"));
  updateUser(S.me);
  renderMe();
  await loadChats();
  connectSocket();
  await Promise.all([loadFriends(), loadRequests(), loadGroups(), loadNotifications()]);
  $("#main").focus();
}

function renderMe() {
  $("#me-name").textContent = `${fullName(S.me)} (@${S.me.username})`;
  clear($("#me-avatar")).append(avatar(S.me, "Your avatar"));
}

$("#avatar-input").addEventListener("change", async (ev) => {
  const file = ev.target.files[0];
  ev.target.value = "";
  if (!file) return;
  try {
    const media = await upload(file, "avatar");
    S.me = rememberUser(await api("PATCH", "/api/v1/users/me", { avatar: media._id }));
    updateUser(S.me);
    renderMe();
    announce("Avatar updated");
  } catch (e) {
    toast(`Could not change the avatar: ${e.message}`);
  }
});

// ---------------------------------------------------------------------------------------
// Socket

function connectSocket() {
  const socket = io({
    auth: (cb) => {
      freshToken()
        .catch(() => null)
        .then(() => cb({ token: currentSession()?.accessToken }));
    },
  });
  S.socket = socket;

  socket.on("connect", () => {
    document.body.dataset.socket = "connected";
    syncChats();
  });
  socket.on("disconnect", (reason) => {
    document.body.dataset.socket = "disconnected";
    if (reason === "io server disconnect" && !currentSession()) showAuth("signin-panel");
  });
  socket.on("connect_error", async (err) => {
    if (!String(err.message).startsWith("unauthorized")) return; // the client retries by itself
    try {
      await refreshTokens();
      socket.connect();
    } catch {
      /* onSignedOut shows the sign-in screen */
    }
  });

  socket.on("message:new", onMessage);
  socket.on("message:updated", onMessageUpdated);
  socket.on("message:deleted", ({ _id, chatId, seq }) => {
    const m = S.messages.get(chatId)?.get(seq);
    if (m) onMessageUpdated({ ...m, _id, deleted: true, content: "", attachments: [] });
    const chat = S.chats.get(chatId);
    if (chat?.lastMessage?._id === _id) {
      chat.lastMessage = { ...chat.lastMessage, deleted: true, content: "" };
      renderChatList();
    }
  });
  socket.on("message:read", onReadReceipt);
  socket.on("typing", onTyping);
  socket.on("presence", ({ userId, status }) => {
    S.presence.set(userId, status);
    renderPeople();
  });
  socket.on("friend:request", (inv) => {
    loadRequests();
    announce(`${nameOf(inv.sender)} sent you a friend request`);
  });
  socket.on("friend:accepted", () => {
    loadRequests();
    loadFriends();
  });
  socket.on("friend:request-closed", () => loadRequests());
  socket.on("friend:removed", () => loadFriends());
  socket.on("notification:new", (n) => {
    S.notifications.unshift(n);
    renderNotifications();
  });
  socket.on("group:invited", (g) => {
    S.groupInvites.set(g._id, g);
    renderGroupInvites();
    announce(`You were invited to the group ${g.name}`);
  });
  socket.on("group:updated", (g) => {
    const chat = S.chats.get(g.chatId);
    if (chat) {
      chat.name = g.name;
      renderChatList();
      if (S.openChatId === chat._id) renderChatHeader();
    }
  });
  socket.on("group:member-added", ({ chatId }) => refreshChat(chatId));
  socket.on("group:member-removed", ({ chatId, userId }) => {
    if (userId === S.me._id) {
      S.chats.delete(chatId);
      if (S.openChatId === chatId) showView("empty");
      renderChatList();
    } else refreshChat(chatId);
  });

  socket.on("call:incoming", onIncomingCall);
  for (const ev of ["call:ended", "call:ring-expired", "call:accepted", "call:declined"]) {
    socket.on(ev, (data) => {
      const callId = data.callId ?? data._id;
      if (!S.incoming || S.incoming._id !== callId) return;
      const aboutMe = ev === "call:ended" || (data.userIds ?? [data.userId]).includes(S.me._id);
      if (aboutMe) hideIncoming();
    });
  }

  assistant.listen(socket);
}

/** Catches up on every known chat after (re)connecting (docs §6). */
async function syncChats() {
  try {
    let more = true;
    while (more) {
      const chats = [...S.chats.values()].map((c) => ({ chatId: c._id, lastSeq: haveSeq(c._id) }));
      const data = await request(S.socket, "chat:sync", { chats });
      more = false;
      for (const c of data.chats) {
        const known = S.messages.has(c.chatId);
        for (const m of c.messages) if (known) storeMessage(m);
        // Unread counts and previews come from the server's view of the chat.
        await refreshChat(c.chatId);
        if (c.hasMore && known) more = true;
      }
    }
    if (S.openChatId && S.openChatId !== "ai") renderAllMessages();
    renderChatList();
  } catch (e) {
    console.warn("sync failed", e);
  }
}

/** The highest seq we hold every message up to (for chats whose history we loaded). */
function haveSeq(chatId) {
  const msgs = S.messages.get(chatId);
  if (!msgs) return S.chats.get(chatId)?.lastSeq ?? 0;
  let seq = 0;
  const seqs = [...msgs.keys()].sort((a, b) => a - b);
  for (const s of seqs) {
    if (s === seq + 1 || seq === 0) seq = s;
    else break;
  }
  return seq;
}

// ---------------------------------------------------------------------------------------
// Sidebar tabs

const TABS = ["chats", "people", "notifications"];
function selectTab(name) {
  for (const t of TABS) {
    $(`#tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`#panel-${t}`).hidden = t !== name;
  }
  if (name === "people") loadRequests();
}
for (const t of TABS) $(`#tab-${t}`).addEventListener("click", () => selectTab(t));
$(".tabs").addEventListener("keydown", (ev) => {
  if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
  const i = TABS.findIndex((t) => $(`#tab-${t}`).getAttribute("aria-selected") === "true");
  const next = TABS[(i + (ev.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
  selectTab(next);
  $(`#tab-${next}`).focus();
});

// ---------------------------------------------------------------------------------------
// Chats list

async function loadChats() {
  const page = await api("GET", "/api/v1/chats?limit=100");
  for (const c of page.data) S.chats.set(c._id, c);
  await loadUsers(page.data.flatMap((c) => c.participants));
  renderChatList();
}

async function refreshChat(chatId) {
  try {
    const chat = await api("GET", `/api/v1/chats/${chatId}`);
    S.chats.set(chat._id, chat);
    await loadUsers(chat.participants);
    renderChatList();
    if (S.openChatId === chatId) renderChatHeader();
    return chat;
  } catch {
    return null;
  }
}

function chatName(chat) {
  if (!chat) return "";
  if (chat.isGroup) return chat.name || "Group";
  const other = chat.participants.find((p) => p !== S.me._id);
  return other ? nameOf(other) : "Just you";
}

function previewOf(chat) {
  const m = chat.lastMessage;
  if (!m) return "No messages yet";
  if (m.deleted) return "Message deleted";
  const who = m.sender === S.me._id ? "You: " : chat.isGroup ? `${nameOf(m.sender).split(" ")[0]}: ` : "";
  const body =
    m.type === "call" ? "Call" : m.type === "image" ? "Photo" : m.type === "file" ? `File ${m.content}` : m.type === "video" ? "Video" : m.type === "audio" ? "Audio" : m.content;
  return who + body;
}

function lastActivity(chat) {
  return new Date(chat.lastMessage?.createdAt ?? chat.updatedAt ?? chat.createdAt).getTime();
}

function renderChatList() {
  if (!S.me) return;
  keepFocus($("#chat-list"), drawChatList);
}

function drawChatList() {
  const list = clear($("#chat-list"));
  list.append(
    h(
      "li",
      { class: `chat-item${S.openChatId === "ai" ? " active" : ""}`, "data-chat-id": "ai", "data-testid": "chat-item-ai" },
      h(
        "button",
        { type: "button", class: "chat-open", onclick: () => openAi(), "aria-current": S.openChatId === "ai" ? "true" : false },
        h("span", { class: "avatar", "aria-hidden": "true" }, "AI"),
        h("span", { class: "chat-text" }, h("span", { class: "chat-name" }, "Assistant"), h("span", { class: "chat-preview" }, "Ask anything, or summarize a chat")),
      ),
      h("span", { class: "pin-toggle", "aria-label": "Pinned" }, "Pinned"),
    ),
  );
  const chats = [...S.chats.values()].sort((a, b) => (b.pinned - a.pinned) || lastActivity(b) - lastActivity(a));
  for (const chat of chats) {
    const name = chatName(chat);
    const other = chat.isGroup ? null : S.users.get(chat.participants.find((p) => p !== S.me._id));
    const unread = chat.unreadCount > 0 && S.openChatId !== chat._id ? chat.unreadCount : 0;
    list.append(
      h(
        "li",
        { class: `chat-item${S.openChatId === chat._id ? " active" : ""}`, "data-chat-id": chat._id, "data-testid": "chat-item", "data-group": String(chat.isGroup) },
        h(
          "button",
          {
            type: "button",
            class: "chat-open",
            onclick: () => openChat(chat._id),
            "aria-current": S.openChatId === chat._id ? "true" : false,
            "aria-label": `${name}${unread ? `, ${unread} unread` : ""}`,
          },
          chat.isGroup ? h("span", { class: "avatar", "aria-hidden": "true" }, "#") : avatar(other, ""),
          h("span", { class: "chat-text" }, h("span", { class: "chat-name" }, name), h("span", { class: "chat-preview", "data-testid": "chat-preview" }, previewOf(chat))),
          unread ? h("span", { class: "unread-count", "data-testid": "unread-count" }, String(unread)) : null,
        ),
        h(
          "button",
          {
            type: "button",
            class: "pin-toggle",
            "data-testid": "pin-toggle",
            "aria-pressed": String(chat.pinned),
            "aria-label": chat.pinned ? `Unpin ${name}` : `Pin ${name}`,
            onclick: () => togglePin(chat),
          },
          chat.pinned ? "Pinned" : "Pin",
        ),
      ),
    );
  }
}

async function togglePin(chat) {
  try {
    const updated = await api("POST", `/api/v1/chats/${chat._id}/${chat.pinned ? "unpin" : "pin"}`);
    S.chats.set(updated._id, { ...chat, ...updated });
    renderChatList();
  } catch (e) {
    toast(e.message);
  }
}

// ---------------------------------------------------------------------------------------
// Group creation

$("#new-group").addEventListener("click", () => {
  const box = clear($("#group-members"));
  if (!S.friends.size) box.append(h("p", { class: "muted" }, "Add friends first to invite them."));
  for (const f of S.friends.values()) {
    const id = `group-member-${f._id}`;
    box.append(h("label", { for: id }, h("input", { type: "checkbox", id, value: f._id, "data-testid": "group-member" }), fullName(f)));
  }
  $("#group-form").hidden = false;
  $("#group-name").focus();
});
$("#group-cancel").addEventListener("click", () => {
  $("#group-form").hidden = true;
});
$("#group-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("#group-name").value.trim();
  if (!name) return toast("Give the group a name.");
  const members = [...$("#group-members").querySelectorAll("input:checked")].map((i) => i.value);
  try {
    const group = await api("POST", "/api/v1/groups", { name, members });
    $("#group-form").hidden = true;
    $("#group-name").value = "";
    await refreshChat(group.chatId);
    openChat(group.chatId);
    announce(`Group ${name} created`);
  } catch (e) {
    toast(`Could not create the group: ${e.message}`);
  }
});

// ---------------------------------------------------------------------------------------
// People: search, requests, friends

async function loadFriends() {
  const list = await api("GET", "/api/v1/friends");
  S.friends = new Map(list.data.map((u) => [u._id, rememberUser(u)]));
  for (const u of list.data) if (u.status && !S.presence.has(u._id)) S.presence.set(u._id, u.status);
  renderPeople();
}

async function loadRequests() {
  const lists = await api("GET", "/api/v1/friends/requests");
  S.requests = lists;
  await loadUsers([...lists.incoming.map((r) => r.sender), ...lists.outgoing.map((r) => r.receiver)]);
  renderPeople();
}

let lastResults = [];

$("#user-search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = $("#user-search").value.trim();
  try {
    const page = q
      ? await api("GET", `/api/v1/users/search?q=${encodeURIComponent(q)}&limit=20`)
      : await api("GET", "/api/v1/users/non-friends?limit=20");
    lastResults = page.data.map(rememberUser);
    renderPeople();
    announce(`${lastResults.length} people found`);
  } catch (e) {
    toast(e.message);
  }
});

function renderPeople() {
  if (!S.me) return;
  keepFocus($("#panel-people"), drawPeople);
}

function drawPeople() {
  const results = clear($("#user-search-results"));
  for (const u of lastResults) {
    if (u._id === S.me._id) continue;
    let action;
    const incoming = S.requests.incoming.find((r) => r.sender === u._id);
    if (S.friends.has(u._id)) action = h("span", { class: "muted" }, "Friend");
    else if (S.requests.outgoing.some((r) => r.receiver === u._id)) action = h("span", { class: "muted" }, "Requested");
    else if (incoming) action = h("button", { type: "button", class: "small", "data-testid": "accept-request", onclick: () => answerRequest(incoming, "accept") }, "Accept");
    else action = h("button", { type: "button", class: "small primary", "data-testid": "add-friend", "aria-label": `Add ${fullName(u)} as a friend`, onclick: () => sendRequest(u) }, "Add friend");
    results.append(personRow(u, action));
  }

  const incoming = clear($("#friend-requests"));
  for (const r of S.requests.incoming) {
    const u = S.users.get(r.sender);
    incoming.append(
      personRow(u ?? { _id: r.sender }, [
        h("button", { type: "button", class: "small primary", "data-testid": "accept-request", "aria-label": `Accept ${nameOf(r.sender)}`, onclick: () => answerRequest(r, "accept") }, "Accept"),
        h("button", { type: "button", class: "small", "data-testid": "reject-request", "aria-label": `Decline ${nameOf(r.sender)}`, onclick: () => answerRequest(r, "reject") }, "Decline"),
      ], "request"),
    );
  }
  if (!S.requests.incoming.length) incoming.append(h("li", { class: "muted" }, "No pending requests"));
  const badge = $("#request-count");
  badge.hidden = !S.requests.incoming.length;
  badge.textContent = String(S.requests.incoming.length);

  const outgoing = clear($("#outgoing-requests"));
  for (const r of S.requests.outgoing) {
    const u = S.users.get(r.receiver);
    outgoing.append(
      personRow(u ?? { _id: r.receiver }, h("button", { type: "button", class: "small", onclick: () => cancelRequest(r) }, "Cancel request"), "outgoing"),
    );
  }

  const friends = clear($("#friends-list"));
  for (const f of S.friends.values()) {
    friends.append(
      personRow(f, h("button", { type: "button", class: "small", "data-testid": "open-chat", "aria-label": `Message ${fullName(f)}`, onclick: () => openDirect(f._id) }, "Message"), "friend"),
    );
  }
  if (!S.friends.size) friends.append(h("li", { class: "muted" }, "No friends yet. Search for people above."));
}

function personRow(u, actions, kind = "result") {
  const online = S.presence.get(u._id) === "online";
  return h(
    "li",
    { class: "person", "data-user-id": u._id, "data-kind": kind, "data-testid": `person-${kind}` },
    avatar(u, ""),
    h("span", { class: "who" },
      S.friends.has(u._id) ? h("span", { class: `presence${online ? " online" : ""}`, role: "img", "aria-label": online ? "online" : "offline" }) : null,
      " ", u.firstName ? fullName(u) : nameOf(u._id),
      u.username ? h("small", {}, "@" + u.username) : null),
    actions,
  );
}

async function sendRequest(u) {
  try {
    await api("POST", "/api/v1/friends/requests", { userId: u._id });
    await loadRequests();
    announce(`Friend request sent to ${fullName(u)}`);
  } catch (e) {
    toast(e.message);
  }
}

async function answerRequest(r, action) {
  try {
    await api("POST", `/api/v1/friends/requests/${r._id}/${action}`);
    await Promise.all([loadRequests(), loadFriends()]);
    announce(action === "accept" ? `You are now friends with ${nameOf(r.sender)}` : "Request declined");
  } catch (e) {
    toast(e.message);
  }
}

async function cancelRequest(r) {
  try {
    await api("DELETE", `/api/v1/friends/requests/${r._id}`);
    await loadRequests();
  } catch (e) {
    toast(e.message);
  }
}

async function openDirect(userId) {
  try {
    const chat = await api("POST", "/api/v1/chats", { userId });
    S.chats.set(chat._id, chat);
    selectTab("chats");
    openChat(chat._id);
  } catch (e) {
    toast(e.message);
  }
}

// ---------------------------------------------------------------------------------------
// Notifications and group invitations

async function loadNotifications() {
  const page = await api("GET", "/api/v1/notifications?limit=50");
  S.notifications = page.data;
  renderNotifications();
}

function renderNotifications() {
  const list = clear($("#notification-list"));
  for (const n of S.notifications) {
    list.append(h("li", { class: n.read ? "" : "unread", "data-notification-id": n._id, "data-type": n.type }, h("span", {}, n.content), " ", h("time", { class: "muted", datetime: n.createdAt }, formatTime(n.createdAt))));
  }
  if (!S.notifications.length) list.append(h("li", { class: "muted" }, "Nothing yet"));
  const unread = S.notifications.filter((n) => !n.read).length;
  const badge = $("#notif-count");
  badge.hidden = !unread;
  badge.textContent = String(unread);
}

$("#notifications-read-all").addEventListener("click", async () => {
  try {
    await api("POST", "/api/v1/notifications/read-all");
    for (const n of S.notifications) n.read = true;
    renderNotifications();
  } catch (e) {
    toast(e.message);
  }
});

async function loadGroups() {
  const list = await api("GET", "/api/v1/groups");
  S.groupInvites = new Map(list.data.filter((g) => g.invited.includes(S.me._id)).map((g) => [g._id, g]));
  renderGroupInvites();
}

function renderGroupInvites() {
  const list = clear($("#group-invites"));
  for (const g of S.groupInvites.values()) {
    list.append(
      h(
        "li",
        { class: "person", "data-group-id": g._id, "data-testid": "group-invite" },
        h("span", { class: "who" }, g.name, h("small", {}, `${g.members.length} members`)),
        h("button", { type: "button", class: "small primary", "data-testid": "accept-group", "aria-label": `Join ${g.name}`, onclick: () => answerGroup(g, "accept") }, "Join"),
        h("button", { type: "button", class: "small", "data-testid": "reject-group", "aria-label": `Decline ${g.name}`, onclick: () => answerGroup(g, "reject") }, "Decline"),
      ),
    );
  }
  if (!S.groupInvites.size) list.append(h("li", { class: "muted" }, "No invitations"));
}

async function answerGroup(g, action) {
  try {
    const group = await api("POST", `/api/v1/groups/${g._id}/${action}`);
    S.groupInvites.delete(g._id);
    renderGroupInvites();
    if (action === "accept") {
      await refreshChat(group.chatId);
      announce(`You joined ${group.name}`);
    }
  } catch (e) {
    toast(e.message);
  }
}

// ---------------------------------------------------------------------------------------
// Main area views

function showView(name) {
  $("#empty-view").hidden = name !== "empty";
  $("#chat-view").hidden = name !== "chat";
  $("#ai-view").hidden = name !== "ai";
}

async function openAi() {
  S.openChatId = "ai";
  resetCompose();
  showView("ai");
  renderChatList();
  await assistant.open();
}

$("#ai-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const content = $("#ai-input").value.trim();
  if (!content) return;
  $("#ai-send").disabled = true;
  try {
    await assistant.ask(content);
    $("#ai-input").value = "";
  } catch {
    /* shown by the assistant */
  } finally {
    $("#ai-send").disabled = false;
  }
});
$("#ai-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("#ai-form").requestSubmit();
  }
});
$("#ai-stop").addEventListener("click", () => assistant.stop());

// ---------------------------------------------------------------------------------------
// One chat

async function openChat(chatId) {
  const chat = S.chats.get(chatId) ?? (await refreshChat(chatId));
  if (!chat) return toast("That chat is not available.");
  S.openChatId = chatId;
  resetCompose();
  $("#summary-panel").hidden = true;
  $("#show-starred").setAttribute("aria-pressed", "false");
  $("#message-list").classList.remove("only-starred");
  showView("chat");
  renderChatHeader();
  renderChatList();
  clear($("#message-list"));
  renderTyping();
  if (!S.messages.has(chatId)) {
    try {
      const page = await api("GET", `/api/v1/chats/${chatId}/messages?limit=50`);
      const msgs = new Map();
      for (const m of page.data) msgs.set(m.seq, m);
      // Live messages that arrived while loading stay.
      for (const [seq, m] of S.messages.get(chatId) ?? []) msgs.set(seq, m);
      S.messages.set(chatId, msgs);
      await loadUsers(page.data.map((m) => m.sender));
    } catch (e) {
      return toast(`Could not load messages: ${e.message}`);
    }
  }
  if (S.openChatId !== chatId) return;
  renderAllMessages();
  markRead(chatId);
  $("#message-input").focus();
}

function renderChatHeader() {
  const chat = S.chats.get(S.openChatId);
  if (!chat) return;
  $("#chat-title").textContent = chatName(chat);
  $("#chat-subtitle").textContent = chat.isGroup ? chat.participants.map(nameOf).join(", ") : "";
  $("#message-list").dataset.chatId = chat._id;
}

function renderAllMessages() {
  const list = clear($("#message-list"));
  const msgs = [...(S.messages.get(S.openChatId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  if (!msgs.length) list.append(h("li", { class: "muted empty-note" }, "No messages yet. Say hello!"));
  for (const m of msgs) list.append(renderMessage(m));
  updateReceipts();
  list.scrollTop = list.scrollHeight;
}

function messageById(chatId, id) {
  for (const m of S.messages.get(chatId)?.values() ?? []) if (m._id === id) return m;
  return null;
}

function callSummary(m) {
  const c = m.call;
  if (!c) return "Call";
  const kind = c.type === "video" ? "Video call" : "Audio call";
  if (c.status === "missed") return `Missed ${kind.toLowerCase()}`;
  const mins = Math.floor(c.durationSecs / 60);
  const secs = String(c.durationSecs % 60).padStart(2, "0");
  return `${kind} · ${mins}:${secs}`;
}

function renderMessage(m) {
  const mine = m.sender === S.me._id;
  if (m.type === "call") {
    return h("li", { class: "message call", "data-message-id": m._id, "data-seq": m.seq, "data-type": "call" },
      h("div", { class: "message-content" }, callSummary(m)),
      h("div", { class: "meta" }, h("time", { datetime: m.createdAt }, formatTime(m.createdAt))));
  }
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (m.deleted) classes.push("deleted");
  if (m.starred) classes.push("starred");
  const li = h("li", {
    class: classes.join(" "),
    "data-message-id": m._id,
    "data-seq": m.seq,
    "data-sender": m.sender,
    "data-client-msg-id": m.clientMsgId,
    "data-testid": "message",
  });
  const meta = h("div", { class: "meta" },
    h("span", { class: "sender" }, mine ? "You" : nameOf(m.sender)),
    h("time", { datetime: m.createdAt }, formatTime(m.createdAt)),
    m.editedAt && !m.deleted ? h("span", { "data-testid": "edited" }, "(edited)") : null,
    m.starred ? h("span", { class: "star", "aria-label": "Starred" }, "★") : null,
    mine && !m.deleted ? h("span", { class: "receipt", "data-testid": "read-receipt" }, "Sent") : null);
  li.append(meta);
  if (m.replyTo && !m.deleted) {
    const orig = messageById(m.chatId, m.replyTo);
    li.append(h("div", { class: "quote" }, orig ? `${nameOf(orig.sender)}: ${orig.deleted ? "deleted message" : orig.content || orig.type}` : "Reply to an earlier message"));
  }
  if (m.deleted) {
    li.append(h("div", { class: "message-content" }, "This message was deleted"));
    return li;
  }
  if (m.content && m.type !== "file") li.append(h("div", { class: "message-content" }, m.type === "link" ? h("a", { href: m.content, rel: "noopener noreferrer", target: "_blank" }, m.content) : m.content));
  for (const id of m.attachments ?? []) li.append(renderAttachment(m, id));
  const actions = h("div", { class: "actions" },
    h("button", { type: "button", "data-action": "reply", "aria-label": "Reply", onclick: () => startCompose("reply", m) }, "Reply"),
    h("button", { type: "button", "data-action": "star", "aria-pressed": String(!!m.starred), "aria-label": m.starred ? "Unstar" : "Star", onclick: () => star(m) }, m.starred ? "Unstar" : "Star"),
    mine && ["text", "link", "emoji"].includes(m.type) ? h("button", { type: "button", "data-action": "edit", onclick: () => startCompose("edit", m) }, "Edit") : null,
    mine ? h("button", { type: "button", "data-action": "delete", onclick: () => deleteMessage(m) }, "Delete") : null);
  li.append(actions);
  return li;
}

function renderAttachment(m, id) {
  const box = h("div", { class: "attachment-box", "data-media-id": id }, h("span", { class: "muted" }, "Loading attachment…"));
  mediaUrl(id)
    .then((url) => {
      let el;
      if (m.type === "image") el = h("img", { class: "attachment", src: url, alt: m.content || "Shared image" });
      else if (m.type === "video") el = h("video", { class: "attachment", src: url, controls: true });
      else if (m.type === "audio") el = h("audio", { class: "attachment", src: url, controls: true });
      else el = h("a", { href: url, download: m.content || "attachment", rel: "noopener", "data-testid": "file-link" }, `Download ${m.content || "file"}`);
      box.replaceChildren(el);
    })
    .catch(() => box.replaceChildren(h("span", { class: "muted" }, "Attachment unavailable")));
  return box;
}

/** Stores a message in memory; returns true if it is new. */
function storeMessage(m) {
  let msgs = S.messages.get(m.chatId);
  if (!msgs) return false;
  const isNew = !msgs.has(m.seq);
  const old = msgs.get(m.seq);
  msgs.set(m.seq, old && old.starred && !("starred" in m) ? { ...m, starred: true } : m);
  return isNew;
}

/** Puts one message into the open list, in seq order. */
function placeMessage(m) {
  if (S.openChatId !== m.chatId) return;
  const list = $("#message-list");
  list.querySelector(".empty-note")?.remove();
  const li = renderMessage(m);
  const existing = list.querySelector(`li[data-seq="${m.seq}"]`);
  if (existing) {
    existing.replaceWith(li);
  } else {
    const after = [...list.children].find((el) => Number(el.dataset.seq) > m.seq);
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.insertBefore(li, after ?? null);
    if (atBottom || m.sender === S.me._id) list.scrollTop = list.scrollHeight;
  }
  updateReceipts();
}

function onMessage(m) {
  const chat = S.chats.get(m.chatId);
  if (!chat) {
    // A new chat (someone opened a 1:1 with us, or we joined a group)
    refreshChat(m.chatId);
    return;
  }
  const known = S.messages.has(m.chatId);
  if (known) {
    const msgs = S.messages.get(m.chatId);
    if (msgs.has(m.seq)) return;
    storeMessage(m);
  }
  if (m.seq >= (chat.lastSeq ?? 0)) {
    chat.lastSeq = m.seq;
    chat.lastMessage = m;
    chat.updatedAt = m.createdAt;
  }
  const mine = m.sender === S.me._id;
  if (mine) chat.readSeq = Math.max(chat.readSeq ?? 0, m.seq);
  if (S.openChatId === m.chatId) {
    placeMessage(m);
    if (!mine) {
      clearTyping(m.chatId, m.sender);
      markRead(m.chatId);
      announce(`${nameOf(m.sender)}: ${m.type === "text" ? m.content : m.type}`);
    }
  } else if (!mine) {
    chat.unreadCount = (chat.unreadCount ?? 0) + 1;
    announce(`New message from ${nameOf(m.sender)} in ${chatName(chat)}`);
  }
  renderChatList();
}

function onMessageUpdated(m) {
  const msgs = S.messages.get(m.chatId);
  const old = msgs?.get(m.seq);
  if (msgs) {
    // Edits reach the whole chat with starred: false; star changes only reach us, content unchanged.
    const isEdit = !old || old.content !== m.content || old.editedAt !== m.editedAt || old.deleted !== m.deleted;
    msgs.set(m.seq, isEdit && old ? { ...m, starred: old.starred } : m);
    placeMessage(msgs.get(m.seq));
  }
  const chat = S.chats.get(m.chatId);
  if (chat?.lastMessage?._id === m._id) {
    chat.lastMessage = { ...chat.lastMessage, content: m.content, deleted: m.deleted };
    renderChatList();
  }
}

function onReadReceipt({ chatId, userId, seq }) {
  if (userId === S.me._id) {
    const chat = S.chats.get(chatId);
    if (chat) {
      chat.readSeq = Math.max(chat.readSeq ?? 0, seq);
      chat.unreadCount = Math.max(0, (chat.lastSeq ?? 0) - chat.readSeq);
      renderChatList();
    }
    return;
  }
  let map = S.readBy.get(chatId);
  if (!map) S.readBy.set(chatId, (map = new Map()));
  map.set(userId, Math.max(map.get(userId) ?? 0, seq));
  if (S.openChatId === chatId) updateReceipts();
}

/** "Seen" on my messages that another member has read. */
function updateReceipts() {
  const chatId = S.openChatId;
  const readers = S.readBy.get(chatId) ?? new Map();
  const chat = S.chats.get(chatId);
  for (const el of $("#message-list").querySelectorAll("li.mine")) {
    const seq = Number(el.dataset.seq);
    const seenBy = [...readers].filter(([, s]) => s >= seq).map(([u]) => u);
    const receipt = el.querySelector(".receipt");
    if (!receipt) continue;
    if (!seenBy.length) {
      receipt.textContent = "Sent";
      receipt.dataset.seen = "false";
    } else {
      receipt.textContent = chat?.isGroup ? `Seen by ${seenBy.map((u) => nameOf(u).split(" ")[0]).join(", ")}` : "Seen";
      receipt.dataset.seen = "true";
    }
  }
}

function markRead(chatId) {
  const chat = S.chats.get(chatId);
  if (!chat || !S.socket?.connected || document.visibilityState === "hidden") return;
  const seq = chat.lastSeq ?? 0;
  if (seq <= (chat.readSeq ?? 0)) {
    if (chat.unreadCount) {
      chat.unreadCount = 0;
      renderChatList();
    }
    return;
  }
  chat.readSeq = seq;
  chat.unreadCount = 0;
  renderChatList();
  request(S.socket, "message:read", { chatId, seq }).catch(() => {});
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && S.openChatId && S.openChatId !== "ai") markRead(S.openChatId);
});

// ---- typing ----

function onTyping({ chatId, userId, typing }) {
  let map = S.typing.get(chatId);
  if (!map) S.typing.set(chatId, (map = new Map()));
  clearTimeout(map.get(userId));
  if (typing) map.set(userId, setTimeout(() => clearTyping(chatId, userId), 6000));
  else map.delete(userId);
  if (S.openChatId === chatId) renderTyping();
}

function clearTyping(chatId, userId) {
  const map = S.typing.get(chatId);
  if (!map) return;
  clearTimeout(map.get(userId));
  map.delete(userId);
  if (S.openChatId === chatId) renderTyping();
}

function renderTyping() {
  const who = [...(S.typing.get(S.openChatId)?.keys() ?? [])].map((u) => nameOf(u).split(" ")[0]);
  $("#typing-indicator").textContent = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing…` : "";
}

function typingTick() {
  const chatId = S.openChatId;
  if (!chatId || chatId === "ai" || !S.socket?.connected) return;
  const now = Date.now();
  if (now - S.typingSentAt > 3000) {
    S.typingSentAt = now;
    request(S.socket, "typing:start", { chatId }).catch(() => {});
  }
  clearTimeout(S.typingStopTimer);
  S.typingStopTimer = setTimeout(() => stopTyping(chatId), 2500);
}

function stopTyping(chatId) {
  clearTimeout(S.typingStopTimer);
  if (!S.typingSentAt) return;
  S.typingSentAt = 0;
  request(S.socket, "typing:stop", { chatId }).catch(() => {});
}

// ---- composing ----

function startCompose(mode, m) {
  S.compose = { mode, message: m };
  $("#compose-banner").hidden = false;
  $("#compose-banner-text").textContent =
    mode === "edit" ? "Editing your message" : `Replying to ${nameOf(m.sender)}: ${(m.content || m.type).slice(0, 80)}`;
  if (mode === "edit") $("#message-input").value = m.content;
  $("#message-input").focus();
}

function resetCompose() {
  if (S.compose?.mode === "edit") $("#message-input").value = "";
  S.compose = null;
  $("#compose-banner").hidden = true;
}

$("#compose-banner-cancel").addEventListener("click", () => {
  resetCompose();
  $("#message-input").focus();
});

$("#message-input").addEventListener("input", typingTick);
$("#message-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    $("#composer").requestSubmit();
  } else if (ev.key === "Escape" && S.compose) {
    resetCompose();
  }
});

$("#composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const chatId = S.openChatId;
  const input = $("#message-input");
  const content = input.value.trim();
  if (!content || !chatId) return;
  stopTyping(chatId);
  const compose = S.compose;
  input.value = "";
  resetCompose();
  try {
    if (compose?.mode === "edit") {
      const m = await request(S.socket, "message:edit", { messageId: compose.message._id, content });
      onMessageUpdated(m);
      return;
    }
    const payload = { chatId, clientMsgId: newClientId(), type: /^https?:\/\/\S+$/.test(content) ? "link" : "text", content };
    if (compose?.mode === "reply") payload.replyTo = compose.message._id;
    await sendMessage(payload);
  } catch (e) {
    input.value = content;
    toast(`Not sent: ${e.message}`);
  }
});

/** Attempts at one send refused as `overloaded` (the server was busy) before giving up. */
const OVERLOADED_ATTEMPTS = 6;

/**
 * message:send, retried under the same clientMsgId (idempotent on the server): once after a
 * lost ack, and after each `overloaded` refusal once the server's retryAfterMs (with jitter,
 * doubling) has passed.
 */
async function sendMessage(payload) {
  let m;
  let lostAck = false;
  for (let attempt = 1; ; attempt++) {
    try {
      m = await request(S.socket, "message:send", payload, lostAck ? 15_000 : 10_000);
      break;
    } catch (e) {
      if (e.code === "overloaded" && attempt < OVERLOADED_ATTEMPTS) {
        const base = (e.retryAfterMs || 500) * 2 ** (attempt - 1);
        await new Promise((resolve) => setTimeout(resolve, base / 2 + Math.random() * base));
        continue;
      }
      if (e.code || lostAck) throw e; // the server refused it, or the retry was lost too
      lostAck = true;
    }
  }
  onMessage(m);
  return m;
}

$("#attach-input").addEventListener("change", async (ev) => {
  const files = [...ev.target.files];
  ev.target.value = "";
  const chatId = S.openChatId;
  if (!chatId || chatId === "ai") return;
  for (const file of files) {
    try {
      announce(`Uploading ${file.name}`);
      const media = await upload(file, "attachment", chatId);
      const type = ["image", "video", "audio"].includes(media.type) ? media.type : "file";
      const caption = $("#message-input").value.trim();
      const content = type === "file" ? media.name : caption && files.length === 1 ? caption : "";
      if (content === caption && caption) $("#message-input").value = "";
      await sendMessage({ chatId, clientMsgId: newClientId(), type, content, attachments: [media._id] });
    } catch (e) {
      toast(`Could not send ${file.name}: ${e.message}`);
    }
  }
});

async function star(m) {
  try {
    const updated = await request(S.socket, "message:star", { messageId: m._id, starred: !m.starred });
    const msgs = S.messages.get(updated.chatId);
    msgs?.set(updated.seq, updated);
    placeMessage(updated);
    $(`#message-list li[data-seq="${updated.seq}"] [data-action=star]`)?.focus();
  } catch (e) {
    toast(e.message);
  }
}

async function deleteMessage(m) {
  if (!confirm("Delete this message for everyone?")) return;
  try {
    const tomb = await request(S.socket, "message:delete", { messageId: m._id });
    onMessageUpdated(tomb);
  } catch (e) {
    toast(e.message);
  }
}

$("#show-starred").addEventListener("click", (ev) => {
  const on = ev.currentTarget.getAttribute("aria-pressed") !== "true";
  ev.currentTarget.setAttribute("aria-pressed", String(on));
  $("#message-list").classList.toggle("only-starred", on);
});

$("#summarize").addEventListener("click", () => {
  if (S.openChatId && S.openChatId !== "ai") assistant.summarize(S.openChatId);
});
$("#summary-close").addEventListener("click", () => {
  $("#summary-panel").hidden = true;
});

// ---------------------------------------------------------------------------------------
// Calls

function showCall(on) {
  $("#call-view").hidden = !on;
  if (!on) {
    for (const id of ["call-mute", "call-camera", "call-screen"]) $("#" + id).setAttribute("aria-pressed", "false");
    $("#call-mute").textContent = "Mute";
    $("#call-camera").textContent = "Camera off";
    $("#call-screen").textContent = "Share screen";
  }
}

async function enterCall(callId, type, chatId, alreadyJoined = false) {
  if (S.call) await S.call.close();
  const call = new Call({
    socket: S.socket,
    me: S.me._id,
    nameOf,
    onClosed: () => {
      if (S.call === call) S.call = null;
      document.body.dataset.inCall = "false";
      showCall(false);
    },
  });
  S.call = call;
  call.chatId = chatId;
  $("#call-title").textContent = `${type === "video" ? "Video" : "Audio"} call · ${chatName(S.chats.get(chatId))}`;
  $("#call-camera").hidden = type !== "video";
  showCall(true);
  document.body.dataset.inCall = "true";
  try {
    await call.join(callId, type, { alreadyJoined });
    document.body.dataset.callId = callId;
    announce("You joined the call");
  } catch (e) {
    toast(`Could not join the call: ${e.message}`);
    await call.close();
  }
}

async function startCall(type) {
  const chatId = S.openChatId;
  if (!chatId || chatId === "ai") return;
  try {
    const call = await request(S.socket, "call:start", { chatId, type });
    // The initiator is a participant from the start.
    await enterCall(call._id, call.type, chatId, true);
  } catch (e) {
    if (e.code === "call_in_progress") {
      // Join the call already going on in this chat.
      const page = await api("GET", "/api/v1/calls?limit=20").catch(() => ({ data: [] }));
      const live = page.data.find((c) => c.chatId === chatId && (c.status === "ringing" || c.status === "ongoing"));
      if (live) return enterCall(live._id, live.type, chatId);
    }
    toast(`Could not start the call: ${e.message}`);
  }
}

$("#call-audio").addEventListener("click", () => startCall("audio"));
$("#call-video").addEventListener("click", () => startCall("video"));
$("#call-leave").addEventListener("click", () => S.call?.close());
$("#call-mute").addEventListener("click", async (ev) => {
  const btn = ev.currentTarget;
  if (!S.call) return;
  const muted = await S.call.toggleMute();
  btn.setAttribute("aria-pressed", String(muted));
  btn.textContent = muted ? "Unmute" : "Mute";
});
$("#call-camera").addEventListener("click", async (ev) => {
  const btn = ev.currentTarget;
  if (!S.call) return;
  const off = await S.call.toggleCamera();
  btn.setAttribute("aria-pressed", String(off));
  btn.textContent = off ? "Camera on" : "Camera off";
});
$("#call-screen").addEventListener("click", async (ev) => {
  const btn = ev.currentTarget;
  if (!S.call) return;
  try {
    const sharing = await S.call.toggleScreen();
    btn.setAttribute("aria-pressed", String(sharing));
    btn.textContent = sharing ? "Stop sharing" : "Share screen";
  } catch (e) {
    toast(`Screen sharing failed: ${e.message}`);
  }
});

async function onIncomingCall(call) {
  S.incoming = call;
  await loadUsers([call.initiator]);
  if (!S.chats.has(call.chatId)) await refreshChat(call.chatId);
  const chat = S.chats.get(call.chatId);
  const where = chat?.isGroup ? ` in ${chatName(chat)}` : "";
  $("#incoming-call-text").textContent = `${nameOf(call.initiator)} is calling (${call.type})${where}`;
  $("#incoming-call").hidden = false;
  $("#incoming-call").dataset.callId = call._id;
  $("#call-accept").focus();
  announce($("#incoming-call-text").textContent);
}

function hideIncoming() {
  S.incoming = null;
  $("#incoming-call").hidden = true;
}

$("#call-accept").addEventListener("click", async () => {
  const call = S.incoming;
  hideIncoming();
  if (!call) return;
  try {
    await request(S.socket, "call:accept", { callId: call._id });
  } catch (e) {
    if (e.code !== "already_answered") return toast(`Could not answer: ${e.message}`);
  }
  if (S.chats.has(call.chatId) && S.openChatId !== call.chatId) openChat(call.chatId);
  await enterCall(call._id, call.type, call.chatId);
});

$("#call-decline").addEventListener("click", async () => {
  const call = S.incoming;
  hideIncoming();
  if (call) await request(S.socket, "call:decline", { callId: call._id }).catch(() => {});
});

window.addEventListener("pagehide", () => {
  if (S.call?.callId) S.socket?.emit("call:leave", { callId: S.call.callId });
});

// ---------------------------------------------------------------------------------------
// Boot

if (currentSession()) {
  startApp().catch((e) => {
    if (e.status === 401) {
      clearSession();
      showAuth("signin-panel");
    } else {
      toast(`Could not load: ${e.message}`);
    }
  });
} else {
  showAuth("signin-panel");
}
