// @ts-check
// The Alerts tab: group invitations to answer, and the notification list.

import { $, h, clear, announce, toast, formatTime } from "./dom.js";
import { api } from "./api.js";
import { S } from "./state.js";
import { refreshChat } from "./chat-list.js";

/** @typedef {import("./views.js").GroupView} GroupView */

export async function loadNotifications() {
  /** @type {import("./views.js").Page<import("./views.js").NotificationView>} */
  const page = await api("GET", "/api/v1/notifications?limit=50");
  S.notifications = page.data;
  renderNotifications();
}

export function renderNotifications() {
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

export async function loadGroups() {
  /** @type {import("./views.js").Page<GroupView>} */
  const list = await api("GET", "/api/v1/groups");
  S.groupInvites = new Map(list.data.filter((g) => g.invited.includes(S.me._id)).map((g) => [g._id, g]));
  renderGroupInvites();
}

export function renderGroupInvites() {
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

/**
 * @param {GroupView} g
 * @param {"accept" | "reject"} action
 */
async function answerGroup(g, action) {
  try {
    /** @type {GroupView} */
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
