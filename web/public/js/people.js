// @ts-check
// The People tab: finding people, friend requests both ways, and the friends list.

import { $, h, clear, keepFocus, announce, toast } from "./dom.js";
import { api } from "./api.js";
import { S } from "./state.js";
import { fullName, nameOf, rememberUser, loadUsers, avatar } from "./users.js";
import { selectTab } from "./layout.js";
import { openChat } from "./conversation.js";

/** @typedef {import("./views.js").UserView} UserView */
/** @typedef {import("./views.js").InvitationView} InvitationView */
/** @typedef {import("./views.js").Page<UserView>} UserPage */

export async function loadFriends() {
  /** @type {UserPage} */
  const list = await api("GET", "/api/v1/friends");
  S.friends = new Map(list.data.map((u) => [u._id, rememberUser(u)]));
  for (const u of list.data) if (u.status && !S.presence.has(u._id)) S.presence.set(u._id, u.status);
  renderPeople();
}

export async function loadRequests() {
  /** @type {import("./views.js").FriendRequests} */
  const lists = await api("GET", "/api/v1/friends/requests");
  S.requests = lists;
  await loadUsers([...lists.incoming.map((r) => r.sender), ...lists.outgoing.map((r) => r.receiver)]);
  renderPeople();
}

/** @type {UserView[]} */
let lastResults = [];

$("#user-search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const q = /** @type {HTMLInputElement} */ ($("#user-search")).value.trim();
  try {
    /** @type {UserPage} */
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

export function renderPeople() {
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

/**
 * One person in a list: avatar, presence (friends), name, and the row's actions.
 * @param {Partial<UserView> & { _id: string }} u a user, or only the id of one not loaded yet
 * @param {HTMLElement | HTMLElement[]} actions
 * @param {"result" | "request" | "outgoing" | "friend"} [kind]
 */
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

/** @param {UserView} u */
async function sendRequest(u) {
  try {
    await api("POST", "/api/v1/friends/requests", { userId: u._id });
    await loadRequests();
    announce(`Friend request sent to ${fullName(u)}`);
  } catch (e) {
    toast(e.message);
  }
}

/**
 * @param {InvitationView} r
 * @param {"accept" | "reject"} action
 */
async function answerRequest(r, action) {
  try {
    await api("POST", `/api/v1/friends/requests/${r._id}/${action}`);
    await Promise.all([loadRequests(), loadFriends()]);
    announce(action === "accept" ? `You are now friends with ${nameOf(r.sender)}` : "Request declined");
  } catch (e) {
    toast(e.message);
  }
}

/** @param {InvitationView} r */
async function cancelRequest(r) {
  try {
    await api("DELETE", `/api/v1/friends/requests/${r._id}`);
    await loadRequests();
  } catch (e) {
    toast(e.message);
  }
}

/**
 * Opens (creating it if need be) the 1:1 chat with a user.
 * @param {string} userId
 */
async function openDirect(userId) {
  try {
    /** @type {import("./views.js").ChatView} */
    const chat = await api("POST", "/api/v1/chats", { userId });
    S.chats.set(chat._id, chat);
    selectTab("chats");
    openChat(chat._id);
  } catch (e) {
    toast(e.message);
  }
}
