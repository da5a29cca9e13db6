// @ts-check
// The page's Socket.IO connection: authentication, catching up after (re)connecting, and
// which screen each server event goes to (docs/socket-events.md).

import { io } from "../vendor/socket.io.esm.min.js";
import { announce } from "./dom.js";
import { currentSession, freshToken, refreshTokens } from "./api.js";
import { request } from "./request.js";
import { S } from "./state.js";
import { nameOf } from "./users.js";
import { showAuth } from "./auth-screen.js";
import { showView } from "./layout.js";
import { refreshChat, renderChatList } from "./chat-list.js";
import { renderChatHeader, renderAllMessages, onMessage, onMessageUpdated, onReadReceipt, onTyping } from "./conversation.js";
import { storeMessage } from "./message-view.js";
import { loadFriends, loadRequests, renderPeople } from "./people.js";
import { renderNotifications, renderGroupInvites } from "./notifications.js";
import { onIncomingCall, hideIncoming } from "./call-ui.js";
import { assistant } from "./assistant-screen.js";

/** @typedef {import("./views.js").GroupView} GroupView */
/** @typedef {import("./views.js").SyncedChat} SyncedChat */

export function connectSocket() {
  const socket = io({
    auth: (cb) => {
      freshToken()
        .catch(() => {})
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
  socket.on("group:invited", (/** @type {GroupView} */ g) => {
    S.groupInvites.set(g._id, g);
    renderGroupInvites();
    announce(`You were invited to the group ${g.name}`);
  });
  socket.on("group:updated", (/** @type {GroupView} */ g) => {
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
      /** @type {{ chats: SyncedChat[] }} */
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

/**
 * The highest seq we hold every message up to (for chats whose history we loaded).
 * @param {string} chatId
 */
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
