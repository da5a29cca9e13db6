// @ts-check
// Huddle's browser client: sign-up and sign-in, people and friends, chats over Socket.IO,
// the assistant, and calls. Plain ES modules, no framework: this entry point starts the
// page, and each screen's module registers its own listeners as it loads.
//
//   state.js          the shared state `S`       views.js          the server's JSON, as types
//   auth-screen.js    sign in, sign up, verify   profile.js        my name, avatar, sign out
//   layout.js         sidebar tabs, main views   socket.js         the socket and its events
//   chat-list.js      chats, pins, new groups    people.js         search, requests, friends
//   notifications.js  alerts, group invites      users.js          names and avatars
//   conversation.js   the open chat, live        message-view.js   one message on screen
//   composer.js       writing, sending           assistant-screen.js  the AI view, summaries
//   call-ui.js        starting, answering calls  call.js, call-media.js  the call itself
//   ai.js the assistant, api.js REST, request.js socket requests, dom.js DOM helpers

import { $, toast } from "./dom.js";
import { api, currentSession, clearSession, updateUser } from "./api.js";
import { S } from "./state.js";
import { rememberUser } from "./users.js";
import { showAuth } from "./auth-screen.js";
import { renderMe } from "./profile.js";
import { connectSocket } from "./socket.js";
import { loadChats } from "./chat-list.js";
import { loadFriends, loadRequests } from "./people.js";
import { loadGroups, loadNotifications } from "./notifications.js";
// Screens that only listen: nothing here calls them.
import "./layout.js";
import "./conversation.js";
import "./composer.js";
import "./assistant-screen.js";
import "./call-ui.js";

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

/** Shows the signed-in page and loads what it shows. */
export async function startApp() {
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
