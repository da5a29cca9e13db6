// @ts-check
// Calls on the page: starting or joining one from a chat, the call view's controls, and
// the incoming-call dialog. The call itself (media, negotiation, tiles) is call.js.

import { $, announce, toast } from "./dom.js";
import { api } from "./api.js";
import { Call } from "./call.js";
import { request } from "./request.js";
import { S } from "./state.js";
import { nameOf, loadUsers } from "./users.js";
import { refreshChat, chatName } from "./chat-list.js";
import { openChat } from "./conversation.js";

/** @typedef {import("./views.js").CallView} CallView */
/** @typedef {import("./views.js").CallType} CallType */

/** @param {boolean} on */
function showCall(on) {
  $("#call-view").hidden = !on;
  if (!on) {
    for (const id of ["call-mute", "call-camera", "call-screen"]) $("#" + id).setAttribute("aria-pressed", "false");
    $("#call-mute").textContent = "Mute";
    $("#call-camera").textContent = "Camera off";
    $("#call-screen").textContent = "Share screen";
  }
}

/**
 * Enters a call (leaving any other first) and shows it.
 * @param {string} callId
 * @param {CallType} type
 * @param {string} chatId
 * @param {boolean} [alreadyJoined] the initiator, a participant since `call:start`
 */
async function enterCall(callId, type, chatId, alreadyJoined = false) {
  if (S.call) await S.call.close();
  const call = new Call({
    socket: S.socket,
    me: S.me._id,
    chatId,
    nameOf,
    onClosed: () => {
      if (S.call === call) S.call = null;
      document.body.dataset.inCall = "false";
      showCall(false);
    },
  });
  S.call = call;
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

/** @param {CallType} type */
async function startCall(type) {
  const chatId = S.openChatId;
  if (!chatId || chatId === "ai") return;
  try {
    /** @type {CallView} */
    const call = await request(S.socket, "call:start", { chatId, type });
    // The initiator is a participant from the start.
    await enterCall(call._id, call.type, chatId, true);
  } catch (e) {
    if (e.code === "call_in_progress") {
      // Join the call already going on in this chat.
      /** @type {import("./views.js").Page<CallView>} */
      const page = await api("GET", "/api/v1/calls?limit=20").catch(() => ({ data: /** @type {CallView[]} */ ([]) }));
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
  const btn = /** @type {HTMLElement} */ (ev.currentTarget);
  if (!S.call) return;
  const muted = await S.call.toggleMute();
  btn.setAttribute("aria-pressed", String(muted));
  btn.textContent = muted ? "Unmute" : "Mute";
});
$("#call-camera").addEventListener("click", async (ev) => {
  const btn = /** @type {HTMLElement} */ (ev.currentTarget);
  if (!S.call) return;
  const off = await S.call.toggleCamera();
  btn.setAttribute("aria-pressed", String(off));
  btn.textContent = off ? "Camera on" : "Camera off";
});
$("#call-screen").addEventListener("click", async (ev) => {
  const btn = /** @type {HTMLElement} */ (ev.currentTarget);
  if (!S.call) return;
  try {
    const sharing = await S.call.toggleScreen();
    btn.setAttribute("aria-pressed", String(sharing));
    btn.textContent = sharing ? "Stop sharing" : "Share screen";
  } catch (e) {
    toast(`Screen sharing failed: ${e.message}`);
  }
});

/**
 * `call:incoming`: shows who is calling, with Accept and Decline.
 * @param {CallView} call
 */
export async function onIncomingCall(call) {
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

export function hideIncoming() {
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
