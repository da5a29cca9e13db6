// @ts-check
// Everything the signed-in page knows: one object that every screen reads and updates.

/** @typedef {import("./views.js").UserView} UserView */
/** @typedef {import("./views.js").ChatView} ChatView */
/** @typedef {import("./views.js").MessageView} MessageView */
/** @typedef {import("./views.js").GroupView} GroupView */
/** @typedef {import("./views.js").NotificationView} NotificationView */
/** @typedef {import("./views.js").FriendRequests} FriendRequests */
/** @typedef {import("./views.js").CallView} CallView */
/** @typedef {import("./views.js").Presence} Presence */

/**
 * A reply or an edit being written in the composer.
 * @typedef {object} Compose
 * @property {"reply" | "edit"} mode
 * @property {MessageView} message the message replied to, or edited
 */

/**
 * @typedef {object} State
 * @property {UserView | null} me
 * @property {import("socket.io-client").Socket | null} socket
 * @property {Map<string, UserView>} users id → user
 * @property {Map<string, Promise<void>>} userLoads id → its load, once asked for
 * @property {Map<string, ChatView>} chats id → chat
 * @property {Map<string, UserView>} friends id → friend
 * @property {Map<string, Presence>} presence user id → presence
 * @property {FriendRequests} requests
 * @property {Map<string, GroupView>} groupInvites groupId → group
 * @property {NotificationView[]} notifications newest first
 * @property {string | null} openChatId a chat id, "ai", or null
 * @property {Map<string, Map<number, MessageView>>} messages chatId → seq → message
 * @property {Map<string, Map<string, number>>} readBy chatId → userId → seq read
 * @property {Map<string, Map<string, number>>} typing chatId → userId → timer
 * @property {Compose | null} compose
 * @property {number} typingSentAt when `typing:start` last went out (0: not typing)
 * @property {number | null} typingStopTimer
 * @property {import("./call.js").Call | null} call
 * @property {CallView | null} incoming the call ringing for us
 */

/** @type {State} */
export const S = {
  me: null,
  socket: null,
  users: new Map(),
  userLoads: new Map(),
  chats: new Map(),
  friends: new Map(),
  presence: new Map(),
  requests: { incoming: [], outgoing: [] },
  groupInvites: new Map(),
  notifications: [],
  openChatId: null,
  messages: new Map(),
  readBy: new Map(),
  typing: new Map(),
  compose: null,
  typingSentAt: 0,
  typingStopTimer: null,
  call: null,
  incoming: null,
};
