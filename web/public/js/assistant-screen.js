// @ts-check
// The assistant's view in the main area, and the summary panel of an open chat; the
// assistant itself is ai.js.

import { $ } from "./dom.js";
import { Assistant } from "./ai.js";
import { S } from "./state.js";
import { showView } from "./layout.js";
import { renderChatList } from "./chat-list.js";
import { resetCompose } from "./composer.js";

export const assistant = new Assistant({ getSocket: () => S.socket });

export async function openAi() {
  S.openChatId = "ai";
  resetCompose();
  showView("ai");
  renderChatList();
  await assistant.open();
}

$("#ai-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  /** @type {HTMLTextAreaElement} */
  const input = $("#ai-input");
  /** @type {HTMLButtonElement} */
  const send = $("#ai-send");
  const content = input.value.trim();
  if (!content) return;
  send.disabled = true;
  try {
    await assistant.ask(content);
    input.value = "";
  } catch {
    /* shown by the assistant */
  } finally {
    send.disabled = false;
  }
});
$("#ai-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) {
    ev.preventDefault();
    /** @type {HTMLFormElement} */ ($("#ai-form")).requestSubmit();
  }
});
$("#ai-stop").addEventListener("click", () => assistant.stop());

$("#summarize").addEventListener("click", () => {
  if (S.openChatId && S.openChatId !== "ai") assistant.summarize(S.openChatId);
});
$("#summary-close").addEventListener("click", () => {
  $("#summary-panel").hidden = true;
});
