// @ts-check
// Messages in memory and on screen: one message's list item (quote, attachments, actions),
// and keeping the open chat's list in seq order.

import { $, h, formatTime } from "./dom.js";
import { mediaUrl } from "./api.js";
import { S } from "./state.js";
import { nameOf } from "./users.js";
import { updateReceipts } from "./conversation.js";
import { startCompose, star, deleteMessage } from "./composer.js";

/** @typedef {import("./views.js").MessageView} MessageView */

/**
 * @param {string} chatId
 * @param {string} id
 * @returns {MessageView | null}
 */
function messageById(chatId, id) {
  for (const m of S.messages.get(chatId)?.values() ?? []) if (m._id === id) return m;
  return null;
}

/** @param {MessageView} m a call record */
function callSummary(m) {
  const c = m.call;
  if (!c) return "Call";
  const kind = c.type === "video" ? "Video call" : "Audio call";
  if (c.status === "missed") return `Missed ${kind.toLowerCase()}`;
  const mins = Math.floor(c.durationSecs / 60);
  const secs = String(c.durationSecs % 60).padStart(2, "0");
  return `${kind} · ${mins}:${secs}`;
}

/** @param {MessageView} m */
export function renderMessage(m) {
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

/**
 * An attachment's box: filled with the image, player or download link once its URL is known.
 * @param {MessageView} m
 * @param {string} id the media id
 */
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

/**
 * Stores a message of a chat whose history is loaded (others are fetched when opened). The
 * server's message carries the caller's own `starred`.
 * @param {MessageView} m
 */
export function storeMessage(m) {
  S.messages.get(m.chatId)?.set(m.seq, m);
}

/**
 * Puts one message into the open list, in seq order.
 * @param {MessageView} m
 */
export function placeMessage(m) {
  if (S.openChatId !== m.chatId) return;
  const list = $("#message-list");
  list.querySelector(".empty-note")?.remove();
  const li = renderMessage(m);
  const existing = list.querySelector(`li[data-seq="${m.seq}"]`);
  if (existing) {
    existing.replaceWith(li);
  } else {
    const after = [...list.children].find((el) => Number(/** @type {HTMLElement} */ (el).dataset.seq) > m.seq);
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    list.insertBefore(li, after ?? null);
    if (atBottom || m.sender === S.me._id) list.scrollTop = list.scrollHeight;
  }
  updateReceipts();
}
