// @ts-check
// One open chat: opening it, its header, its message list kept live from the server's
// events (new, updated, read receipts, typing), and marking it read.

import { $, h, clear, announce, toast } from "./dom.js";
import { api } from "./api.js";
import { request } from "./request.js";
import { S } from "./state.js";
import { nameOf, loadUsers } from "./users.js";
import { showView } from "./layout.js";
import { refreshChat, chatName, renderChatList } from "./chat-list.js";
import { renderMessage, storeMessage, placeMessage } from "./message-view.js";
import { resetCompose } from "./composer.js";

/** @typedef {import("./views.js").MessageView} MessageView */

/** @param {string} chatId */
export async function openChat(chatId) {
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
      /** @type {import("./views.js").Page<MessageView>} */
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

export function renderChatHeader() {
  const chat = S.chats.get(S.openChatId);
  if (!chat) return;
  $("#chat-title").textContent = chatName(chat);
  $("#chat-subtitle").textContent = chat.isGroup ? chat.participants.map(nameOf).join(", ") : "";
  $("#message-list").dataset.chatId = chat._id;
}

export function renderAllMessages() {
  const list = clear($("#message-list"));
  const msgs = [...(S.messages.get(S.openChatId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
  if (!msgs.length) list.append(h("li", { class: "muted empty-note" }, "No messages yet. Say hello!"));
  for (const m of msgs) list.append(renderMessage(m));
  updateReceipts();
  list.scrollTop = list.scrollHeight;
}

/**
 * `message:new`, and my own sends once acknowledged.
 * @param {MessageView} m
 */
export function onMessage(m) {
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

/**
 * `message:updated` (edits and star changes), and tombstones of deleted messages.
 * @param {MessageView} m
 */
export function onMessageUpdated(m) {
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

/** @param {import("./views.js").ReadReceipt} receipt */
export function onReadReceipt({ chatId, userId, seq }) {
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
export function updateReceipts() {
  const chatId = S.openChatId;
  const readers = S.readBy.get(chatId) ?? new Map();
  const chat = S.chats.get(chatId);
  for (const el of $("#message-list").querySelectorAll("li.mine")) {
    const seq = Number(/** @type {HTMLElement} */ (el).dataset.seq);
    const seenBy = [...readers].filter(([, s]) => s >= seq).map(([u]) => u);
    const receipt = $(".receipt", el);
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

/** @param {string} chatId */
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

$("#show-starred").addEventListener("click", (ev) => {
  const button = /** @type {HTMLElement} */ (ev.currentTarget);
  const on = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(on));
  $("#message-list").classList.toggle("only-starred", on);
});

// ---- who is typing ----

/** @param {{ chatId: string, userId: string, typing: boolean }} event `typing` */
export function onTyping({ chatId, userId, typing }) {
  let map = S.typing.get(chatId);
  if (!map) S.typing.set(chatId, (map = new Map()));
  clearTimeout(map.get(userId));
  if (typing) map.set(userId, setTimeout(() => clearTyping(chatId, userId), 6000));
  else map.delete(userId);
  if (S.openChatId === chatId) renderTyping();
}

/**
 * @param {string} chatId
 * @param {string} userId
 */
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
