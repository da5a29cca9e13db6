// @ts-check
// The signed-in page's frame: the sidebar's tabs and which view fills the main area.

import { $ } from "./dom.js";
import { loadRequests } from "./people.js";

/** @typedef {"chats" | "people" | "notifications"} Tab */

/** @type {Tab[]} */
const TABS = ["chats", "people", "notifications"];

/** @param {Tab} name */
export function selectTab(name) {
  for (const t of TABS) {
    $(`#tab-${t}`).setAttribute("aria-selected", String(t === name));
    $(`#panel-${t}`).hidden = t !== name;
  }
  if (name === "people") loadRequests();
}
for (const t of TABS) $(`#tab-${t}`).addEventListener("click", () => selectTab(t));
$(".tabs").addEventListener("keydown", (ev) => {
  if (ev.key !== "ArrowRight" && ev.key !== "ArrowLeft") return;
  const i = TABS.findIndex((t) => $(`#tab-${t}`).getAttribute("aria-selected") === "true");
  const next = TABS[(i + (ev.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
  selectTab(next);
  $(`#tab-${next}`).focus();
});

/** @param {"empty" | "chat" | "ai"} name */
export function showView(name) {
  $("#empty-view").hidden = name !== "empty";
  $("#chat-view").hidden = name !== "chat";
  $("#ai-view").hidden = name !== "ai";
}
