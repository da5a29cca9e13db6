// @ts-check
// Users and their names: loading the users the page shows, display names and avatars.

import { h } from "./dom.js";
import { api, mediaUrl } from "./api.js";
import { S } from "./state.js";
import { renderChatList } from "./chat-list.js";
import { renderPeople } from "./people.js";
import { renderChatHeader, renderAllMessages } from "./conversation.js";

/** @typedef {import("./views.js").UserView} UserView */

/**
 * @param {Partial<UserView> | undefined} u
 * @returns {string}
 */
export function fullName(u) {
  return u ? `${u.firstName} ${u.lastName}`.trim() || u.username : "…";
}

/**
 * The name to show for a user ("You" for me); an unknown one is loaded, and shown when known.
 * @param {string} id
 * @returns {string}
 */
export function nameOf(id) {
  if (id === S.me?._id) return "You";
  const u = S.users.get(id);
  if (!u) loadUsers([id]);
  return u ? fullName(u) : "Someone";
}

/**
 * @param {UserView} u
 * @returns {UserView}
 */
export function rememberUser(u) {
  if (u?._id) S.users.set(u._id, u);
  return u;
}

/**
 * Fetches unknown users; resolves once all are known (or failed).
 * @param {string[]} ids
 */
export function loadUsers(ids) {
  const work = [];
  for (const id of new Set(ids)) {
    if (!id || S.users.has(id)) continue;
    if (!S.userLoads.has(id)) {
      S.userLoads.set(
        id,
        api("GET", `/api/v1/users/${id}`)
          .then((u) => {
            rememberUser(u);
            scheduleRender();
          })
          .catch(() => {}),
      );
    }
    work.push(S.userLoads.get(id));
  }
  return Promise.all(work);
}

/**
 * An avatar: the user's picture, or their initials.
 * @param {Partial<UserView> | undefined} user a user, or only the id of one not loaded yet
 * @param {string} [label] the picture's alt text (default: "<name>'s avatar")
 */
export function avatar(user, label) {
  const initials = user ? ((user.firstName?.[0] ?? "") + (user.lastName?.[0] ?? "")).toUpperCase() : "?";
  const el = h("span", { class: "avatar", "aria-hidden": "true" }, initials || "?");
  if (user?.avatarUrl) {
    mediaUrl(user.avatarUrl)
      .then((url) => {
        el.replaceWith(h("img", { class: "avatar", src: url, alt: label ?? `${fullName(user)}'s avatar` }));
      })
      .catch(() => {});
  }
  return el;
}

let renderQueued = false;
/** Re-renders the name-bearing parts once, after a batch of user loads. */
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderChatList();
    renderPeople();
    if (S.openChatId && S.openChatId !== "ai") {
      renderChatHeader();
      renderAllMessages();
    }
  });
}
