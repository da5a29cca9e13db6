// @ts-check
// The signed-in user in the top bar: name, avatar (and changing it), signing out.

import { $, clear, announce, toast } from "./dom.js";
import { api, auth, upload, updateUser } from "./api.js";
import { S } from "./state.js";
import { fullName, avatar, rememberUser } from "./users.js";

export function renderMe() {
  $("#me-name").textContent = `${fullName(S.me)} (@${S.me.username})`;
  clear($("#me-avatar")).append(avatar(S.me, "Your avatar"));
}

$("#avatar-input").addEventListener("change", async (ev) => {
  const input = /** @type {HTMLInputElement} */ (ev.target);
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  try {
    const media = await upload(file, "avatar");
    S.me = rememberUser(await api("PATCH", "/api/v1/users/me", { avatar: media._id }));
    updateUser(S.me);
    renderMe();
    announce("Avatar updated");
  } catch (e) {
    toast(`Could not change the avatar: ${e.message}`);
  }
});

$("#signout").addEventListener("click", async () => {
  await S.call?.close();
  S.socket?.disconnect();
  await auth.logout().catch(() => {});
  location.reload();
});
