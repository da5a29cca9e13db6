// @ts-check
// The assistant: its chat (pinned at the top of the chat list), streamed answers over the
// socket (`ai:ask`, `ai:delta`, `ai:done`, `ai:error`, `ai:cancel`) and chat summaries.

import { $, h, clear, announce, toast, formatTime, newClientId } from "./dom.js";
import { api } from "./api.js";
import { request } from "./request.js";

/** @typedef {import("./views.js").AiChatView} AiChatView */
/** @typedef {import("./views.js").AiMessageView} AiMessageView */
/** @typedef {import("./views.js").AiError} AiError */
/** @typedef {{ done: AiMessageView, error?: undefined } | { done?: undefined, error: AiError }} Ending */

/** @type {Record<string, string>} */
const NOT_AVAILABLE = {
  not_found: "The assistant is not available on this server.",
  http_404: "The assistant is not available on this server.",
  ai_not_configured: "The assistant is not configured on this server yet.",
};

export class Assistant {
  /**
   * @param {object} opts
   * @param {() => import("socket.io-client").Socket} opts.getSocket the page's socket
   */
  constructor({ getSocket }) {
    this.getSocket = getSocket;
    /** @type {AiChatView | null} */
    this.chat = null;
    this.loaded = false;
    /**
     * null until known; false when the server has no assistant.
     * @type {boolean | null}
     */
    this.available = null;
    this.unavailable = "";
    /**
     * seq-less store of shown messages by _id.
     * @type {Map<string, AiMessageView>}
     */
    this.messages = new Map();
    /**
     * messageId → text streamed so far (answers and summaries).
     * @type {Map<string, string>}
     */
    this.streams = new Map();
    /**
     * messageId of the answer being streamed for our question, if any.
     * @type {string | null}
     */
    this.pendingAnswer = null;
    /**
     * While a summary is requested: { chatId, messageId? }.
     * @type {{ chatId: string, messageId?: string } | null}
     */
    this.summary = null;
    /**
     * messageId → { done } | { error } that arrived before we knew the id.
     * @type {Map<string, Ending>}
     */
    this.finished = new Map();
  }

  /**
   * Registers the socket listeners (call once per socket).
   * @param {import("socket.io-client").Socket} socket
   */
  listen(socket) {
    socket.on("ai:delta", (d) => this.onDelta(d));
    socket.on("ai:done", (m) => this.onDone(m));
    socket.on("ai:error", (e) => this.onError(e));
  }

  /**
   * Loads the AI chat once; false (with a notice) when this server has no assistant.
   * @returns {Promise<boolean>}
   */
  async load() {
    if (this.available !== null) return this.available;
    try {
      this.chat = await api("GET", "/api/v1/chats/ai");
      $("#ai-model").textContent = this.chat.model ? `Model: ${this.chat.model}` : "";
      if (this.chat.configured === false) this.notice(NOT_AVAILABLE.ai_not_configured);
      /** @type {{ messages: AiMessageView[] }} */
      const page = await api("GET", "/api/v1/chats/ai/messages?limit=50");
      clear($("#ai-messages"));
      for (const m of page.messages ?? []) this.upsert(m);
      this.loaded = true;
      this.available = true;
    } catch (e) {
      // A server without the assistant answers 404, or 400 for "ai" read as a chat id.
      const missing = e.status === 404 || e.status === 400 || NOT_AVAILABLE[e.code];
      this.unavailable = missing ? NOT_AVAILABLE[e.code] ?? NOT_AVAILABLE.not_found : `The assistant could not be loaded: ${e.message}`;
      this.notice(this.unavailable);
      if (!missing) return false; // try again next time
      this.available = false;
      /** @type {HTMLButtonElement} */ ($("#ai-send")).disabled = true;
      /** @type {HTMLTextAreaElement} */ ($("#ai-input")).disabled = true;
    }
    return this.available;
  }

  async open() {
    await this.load();
    this.scroll();
    /** @type {HTMLTextAreaElement} */
    const input = $("#ai-input");
    if (!input.disabled) input.focus();
  }

  /** @param {string} text */
  notice(text) {
    const el = $("#ai-notice");
    el.textContent = text;
    el.hidden = false;
  }

  /**
   * Asks `content`; `clientMsgId` again for a question whose answer failed (it is kept).
   * @param {string} content
   * @param {string} [clientMsgId]
   */
  async ask(content, clientMsgId = newClientId()) {
    const socket = this.getSocket();
    try {
      const data = await request(socket, "ai:ask", { clientMsgId, content }, 30_000);
      this.upsert(data.question);
      if (data.answer) {
        // Asked before (same clientMsgId): the stored answer comes back at once.
        this.upsert(data.answer);
        return;
      }
      this.pendingAnswer = data.messageId;
      $("#ai-stop").hidden = false;
      this.showStreaming(data.messageId);
      this.replayFinished(data.messageId);
    } catch (e) {
      if (NOT_AVAILABLE[e.code]) this.notice(NOT_AVAILABLE[e.code]);
      else toast(`The assistant could not answer: ${e.message}`);
      throw e;
    }
  }

  stop() {
    if (!this.pendingAnswer) return;
    request(this.getSocket(), "ai:cancel", { messageId: this.pendingAnswer }).catch((e) => toast(e.message));
  }

  /**
   * `ai:done` / `ai:error` can overtake the ack that names the answer: apply them now.
   * @param {string} messageId
   */
  replayFinished(messageId) {
    const end = this.finished.get(messageId);
    if (!end) return;
    this.finished.delete(messageId);
    if (end.done) this.onDone(end.done);
    else this.onError(end.error);
  }

  /**
   * @param {string} messageId
   * @param {Ending} end
   */
  remember(messageId, end) {
    this.finished.set(messageId, end);
    if (this.finished.size > 20) this.finished.delete(this.finished.keys().next().value);
  }

  /**
   * Whether a streamed piece belongs to the summary being requested.
   * @param {string} messageId
   */
  isSummary(messageId) {
    if (!this.summary) return false;
    if (this.summary.messageId) return this.summary.messageId === messageId;
    return messageId !== this.pendingAnswer; // before the ack names it
  }

  /** @param {{ messageId: string, text?: string }} delta `ai:delta` */
  onDelta({ messageId, text }) {
    const so = (this.streams.get(messageId) ?? "") + (text ?? "");
    this.streams.set(messageId, so);
    if (this.isSummary(messageId)) {
      $("#summary-text").textContent = so;
      return;
    }
    this.showStreaming(messageId);
  }

  /**
   * The bubble of an answer still being written.
   * @param {string} messageId
   */
  showStreaming(messageId) {
    if (messageId !== this.pendingAnswer) return;
    let li = $(`#ai-messages li[data-message-id="${messageId}"]`);
    if (!li) {
      li = this.bubble({ _id: messageId, role: "assistant", content: "", createdAt: new Date().toISOString() });
      li.classList.add("streaming");
      $("#ai-messages").append(li);
    }
    li.querySelector(".message-content").textContent = this.streams.get(messageId) ?? "";
    this.scroll();
  }

  /** @param {AiMessageView} m `ai:done` */
  onDone(m) {
    this.streams.delete(m._id);
    const known = m._id === this.pendingAnswer || this.summary?.messageId === m._id;
    if (!known) this.remember(m._id, { done: m });
    if (this.summary?.messageId === m._id) {
      $("#summary-text").textContent = m.content || "(empty summary)";
      this.summary = null;
    }
    if (m._id === this.pendingAnswer) {
      this.pendingAnswer = null;
      $("#ai-stop").hidden = true;
      announce(m.status === "cancelled" ? "Answer stopped" : "The assistant answered");
    }
    if (this.loaded) this.upsert(m);
  }

  /** @param {AiError} e `ai:error` */
  onError(e) {
    const { messageId, code, message } = e;
    this.streams.delete(messageId);
    const text = NOT_AVAILABLE[code] ?? `Assistant error: ${message || code}`;
    if (messageId === this.pendingAnswer) {
      this.pendingAnswer = null;
      $("#ai-stop").hidden = true;
      $(`#ai-messages li[data-message-id="${messageId}"]`)?.remove();
      this.notice(text);
      this.offerRetry(e);
    } else if (this.summary?.messageId === messageId) {
      $("#summary-text").textContent = `Summary failed: ${NOT_AVAILABLE[code] ?? message ?? code}`;
      this.summary = null;
    } else {
      this.remember(messageId, { error: e });
      return;
    }
    toast(text);
  }

  /**
   * A failed answer can be asked for again: the server kept the question.
   * @param {AiError} e
   */
  offerRetry({ questionId, clientMsgId, code }) {
    if (code === "ai_not_configured" || !questionId || !clientMsgId) return;
    const li = $(`#ai-messages li[data-message-id="${questionId}"]`);
    const content = this.messages.get(questionId)?.content;
    if (!li || content === undefined || li.querySelector("[data-testid=ai-retry]")) return;
    const retry = h(
      "button",
      {
        type: "button",
        class: "link",
        "data-testid": "ai-retry",
        onclick: () => {
          retry.remove();
          $("#ai-notice").hidden = true;
          this.ask(content, clientMsgId).catch(() => {});
        },
      },
      "Try again",
    );
    li.append(retry);
  }

  /**
   * Asks for a summary of a chat's unread messages (`ai:summarize`; REST as a fallback);
   * the pieces stream into the summary panel, the stored summary lands in the AI chat.
   * @param {string} chatId
   */
  async summarize(chatId) {
    $("#summary-panel").hidden = false;
    $("#summary-text").textContent = "Summarizing…";
    if (!(await this.load())) {
      $("#summary-text").textContent = this.unavailable;
      return;
    }
    this.summary = { chatId };
    try {
      /** @type {{ unread: number, messageId?: string, message?: AiMessageView }} */
      let data;
      try {
        data = await request(this.getSocket(), "ai:summarize", { chatId }, 15_000);
      } catch (e) {
        if (e.code) throw e;
        // No ack (a server without the socket event): the REST twin.
        data = await api("POST", `/api/v1/chats/${chatId}/summarize`);
        if (data.message) {
          $("#summary-text").textContent = data.message.content;
          if (this.loaded) this.upsert(data.message);
        }
      }
      if (!data.unread) {
        $("#summary-text").textContent = "No unread messages to summarize.";
        this.summary = null;
      } else if (data.messageId) {
        this.summary.messageId = data.messageId;
        if (this.streams.has(data.messageId)) $("#summary-text").textContent = this.streams.get(data.messageId);
        this.replayFinished(data.messageId);
      } else {
        this.summary = null;
      }
    } catch (e) {
      $("#summary-text").textContent = NOT_AVAILABLE[e.code] ?? `Summary failed: ${e.message}`;
      this.summary = null;
    }
  }

  /** @param {AiMessageView} m */
  upsert(m) {
    if (!m?._id) return;
    this.messages.set(m._id, m);
    const li = this.bubble(m);
    const old = $(`#ai-messages li[data-message-id="${m._id}"]`);
    if (old) old.replaceWith(li);
    else $("#ai-messages").append(li);
    this.scroll();
  }

  /**
   * @param {Pick<AiMessageView, "_id" | "role" | "content" | "createdAt"> & Partial<AiMessageView>} m
   * @returns {HTMLLIElement}
   */
  bubble(m) {
    const mine = m.role === "user";
    return h(
      "li",
      { class: `message ${mine ? "mine" : "assistant"}`, "data-message-id": m._id, "data-role": m.role, "data-testid": "ai-message" },
      h("div", { class: "meta" },
        h("span", { class: "sender" }, mine ? "You" : "Assistant"),
        h("time", { datetime: m.createdAt }, formatTime(m.createdAt)),
        m.status === "cancelled" ? h("span", {}, "(stopped)") : null,
        m.sourceChatId ? h("span", {}, "(summary)") : null),
      h("div", { class: "message-content" }, m.content),
    );
  }

  scroll() {
    const list = $("#ai-messages");
    list.scrollTop = list.scrollHeight;
  }
}
