// @ts-check
// Writing in the open chat: the composer (replies, edits, attachments, typing notices),
// sending with retries, and the actions on one message (star, delete).

import { $, announce, toast, newClientId } from "./dom.js";
import { upload } from "./api.js";
import { request } from "./request.js";
import { S } from "./state.js";
import { nameOf } from "./users.js";
import { onMessage, onMessageUpdated } from "./conversation.js";
import { placeMessage } from "./message-view.js";

/** @typedef {import("./views.js").MessageView} MessageView */

/**
 * What `message:send` takes.
 * @typedef {object} SendPayload
 * @property {string} chatId
 * @property {string} clientMsgId
 * @property {import("./views.js").MessageType} type
 * @property {string} content
 * @property {string[]} [attachments]
 * @property {string} [replyTo]
 */

/** @returns {HTMLTextAreaElement} */
const messageInput = () => $("#message-input");

// ---- typing notices ----

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

/** @param {string} chatId */
function stopTyping(chatId) {
  clearTimeout(S.typingStopTimer);
  if (!S.typingSentAt) return;
  S.typingSentAt = 0;
  request(S.socket, "typing:stop", { chatId }).catch(() => {});
}

// ---- composing ----

/**
 * @param {"reply" | "edit"} mode
 * @param {MessageView} m
 */
export function startCompose(mode, m) {
  S.compose = { mode, message: m };
  $("#compose-banner").hidden = false;
  $("#compose-banner-text").textContent =
    mode === "edit" ? "Editing your message" : `Replying to ${nameOf(m.sender)}: ${(m.content || m.type).slice(0, 80)}`;
  if (mode === "edit") messageInput().value = m.content;
  messageInput().focus();
}

export function resetCompose() {
  if (S.compose?.mode === "edit") messageInput().value = "";
  S.compose = null;
  $("#compose-banner").hidden = true;
}

$("#compose-banner-cancel").addEventListener("click", () => {
  resetCompose();
  messageInput().focus();
});

messageInput().addEventListener("input", typingTick);
messageInput().addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    /** @type {HTMLFormElement} */ ($("#composer")).requestSubmit();
  } else if (ev.key === "Escape" && S.compose) {
    resetCompose();
  }
});

$("#composer").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const chatId = S.openChatId;
  const input = messageInput();
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
    /** @type {SendPayload} */
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
 * @param {SendPayload} payload
 * @returns {Promise<MessageView>}
 */
async function sendMessage(payload) {
  /** @type {MessageView} */
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
  const picker = /** @type {HTMLInputElement} */ (ev.target);
  const files = [...picker.files];
  picker.value = "";
  const chatId = S.openChatId;
  if (!chatId || chatId === "ai") return;
  for (const file of files) {
    try {
      announce(`Uploading ${file.name}`);
      const media = await upload(file, "attachment", chatId);
      const type = ["image", "video", "audio"].includes(media.type) ? media.type : "file";
      const caption = messageInput().value.trim();
      const content = type === "file" ? media.name : caption && files.length === 1 ? caption : "";
      if (content === caption && caption) messageInput().value = "";
      await sendMessage({ chatId, clientMsgId: newClientId(), type, content, attachments: [media._id] });
    } catch (e) {
      toast(`Could not send ${file.name}: ${e.message}`);
    }
  }
});

// ---- a message's actions ----

/** @param {MessageView} m */
export async function star(m) {
  try {
    /** @type {MessageView} */
    const updated = await request(S.socket, "message:star", { messageId: m._id, starred: !m.starred });
    const msgs = S.messages.get(updated.chatId);
    msgs?.set(updated.seq, updated);
    placeMessage(updated);
    $(`#message-list li[data-seq="${updated.seq}"] [data-action=star]`)?.focus();
  } catch (e) {
    toast(e.message);
  }
}

/** @param {MessageView} m */
export async function deleteMessage(m) {
  if (!confirm("Delete this message for everyone?")) return;
  try {
    const tomb = await request(S.socket, "message:delete", { messageId: m._id });
    onMessageUpdated(tomb);
  } catch (e) {
    toast(e.message);
  }
}
