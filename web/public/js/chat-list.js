// @ts-check
// The chat list in the sidebar (the assistant pinned on top, then pinned and recent chats),
// and the form that creates a group.

import { $, h, clear, keepFocus, announce, toast } from "./dom.js";
import { api } from "./api.js";
import { S } from "./state.js";
import { fullName, nameOf, loadUsers, avatar } from "./users.js";
import { openChat, renderChatHeader } from "./conversation.js";
import { openAi } from "./assistant-screen.js";

/** @typedef {import("./views.js").ChatView} ChatView */
/** @typedef {import("./views.js").GroupView} GroupView */

export async function loadChats() {
  /** @type {import("./views.js").Page<ChatView>} */
  const page = await api("GET", "/api/v1/chats?limit=100");
  for (const c of page.data) S.chats.set(c._id, c);
  await loadUsers(page.data.flatMap((c) => c.participants));
  renderChatList();
}

/**
 * Fetches a chat again (new, changed, or missed while away).
 * @param {string} chatId
 * @returns {Promise<ChatView | null>} null when it is not available
 */
export async function refreshChat(chatId) {
  try {
    /** @type {ChatView} */
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

/** @param {ChatView | undefined} chat */
export function chatName(chat) {
  if (!chat) return "";
  if (chat.isGroup) return chat.name || "Group";
  const other = chat.participants.find((p) => p !== S.me._id);
  return other ? nameOf(other) : "Just you";
}

/** @param {ChatView} chat */
function previewOf(chat) {
  const m = chat.lastMessage;
  if (!m) return "No messages yet";
  if (m.deleted) return "Message deleted";
  const who = m.sender === S.me._id ? "You: " : chat.isGroup ? `${nameOf(m.sender).split(" ")[0]}: ` : "";
  const body =
    m.type === "call" ? "Call" : m.type === "image" ? "Photo" : m.type === "file" ? `File ${m.content}` : m.type === "video" ? "Video" : m.type === "audio" ? "Audio" : m.content;
  return who + body;
}

/** @param {ChatView} chat */
function lastActivity(chat) {
  return new Date(chat.lastMessage?.createdAt ?? chat.updatedAt ?? chat.createdAt).getTime();
}

export function renderChatList() {
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
  const chats = [...S.chats.values()].sort((a, b) => (Number(b.pinned) - Number(a.pinned)) || lastActivity(b) - lastActivity(a));
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

/** @param {ChatView} chat */
async function togglePin(chat) {
  try {
    /** @type {ChatView} */
    const updated = await api("POST", `/api/v1/chats/${chat._id}/${chat.pinned ? "unpin" : "pin"}`);
    S.chats.set(updated._id, { ...chat, ...updated });
    renderChatList();
  } catch (e) {
    toast(e.message);
  }
}

// ---- creating a group ----

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
  /** @type {HTMLInputElement} */
  const nameInput = $("#group-name");
  const name = nameInput.value.trim();
  if (!name) return toast("Give the group a name.");
  const members = [...$("#group-members").querySelectorAll("input:checked")].map((i) => /** @type {HTMLInputElement} */ (i).value);
  try {
    /** @type {GroupView} */
    const group = await api("POST", "/api/v1/groups", { name, members });
    $("#group-form").hidden = true;
    nameInput.value = "";
    await refreshChat(group.chatId);
    openChat(group.chatId);
    announce(`Group ${name} created`);
  } catch (e) {
    toast(`Could not create the group: ${e.message}`);
  }
});
