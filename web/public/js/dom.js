// @ts-check
// Small DOM helpers. Text always goes in as text nodes, never as HTML.

/**
 * The first element under `root` that `sel` matches. Every element the client looks up is
 * an HTML element; the result takes the type the caller expects (`HTMLElement` otherwise).
 * @template {HTMLElement} [E=HTMLElement]
 * @param {string} sel
 * @param {ParentNode} [root]
 * @returns {E}
 */
export const $ = (sel, root = document) => /** @type {E} */ (root.querySelector(sel));

/** @typedef {string | number | boolean | null | undefined | EventListener} AttrValue */
/** @typedef {Node | string | number | boolean | null | undefined} Child */

/**
 * Creates an element: `h("button", { type: "button", class: "x", onclick }, "Label")`.
 * Attributes starting with "on" become listeners; `dataset`-style keys are written as
 * `data-*` attributes; `false`/`null` attributes are skipped.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, AttrValue>} [attrs]
 * @param {...(Child | Child[])} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = String(value);
    else if (key in el && typeof value !== "string") /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (el))[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {HTMLElement} el
 * @param {(Child | Child[])[]} children
 */
function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * @template {Element} E
 * @param {E} el
 * @returns {E}
 */
export function clear(el) {
  el.replaceChildren();
  return el;
}

/**
 * Re-renders a list without losing keyboard focus: remembers which row (by its data-* id)
 * and which control in it had focus, and focuses the same control afterwards.
 * @param {HTMLElement} container
 * @param {() => void} render
 */
export function keepFocus(container, render) {
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const row = active && container.contains(active) ? active.closest("li") : null;
  const key = row && ["data-chat-id", "data-user-id", "data-group-id"].find((a) => row.hasAttribute(a));
  const rowSel = key ? `li[${key}="${row.getAttribute(key)}"]${row.dataset.kind ? `[data-kind="${row.dataset.kind}"]` : ""}` : null;
  const ctrlSel = active?.dataset?.testid ? `[data-testid="${active.dataset.testid}"]` : active?.className ? "." + active.className.split(" ")[0] : null;
  render();
  if (rowSel && ctrlSel) $(`${rowSel} ${ctrlSel}`, container)?.focus();
}

/**
 * Announces text to screen readers through the page's polite live region.
 * @param {string} text
 */
export function announce(text) {
  const region = $("#live-region");
  if (!region) return;
  const item = h("p", {}, text);
  region.append(item);
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

/** @type {number | null} */
let toastTimer = null;

/**
 * Shows a short message (errors, notices) visibly and to screen readers.
 * @param {string} text
 */
export function toast(text) {
  console.info("[toast]", text);
  const el = $("#toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    el.hidden = true;
  }, 5000);
}

/** @param {string} iso */
export function formatTime(iso) {
  const d = new Date(iso);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { month: "short", day: "numeric" }) + " " +
        d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** A fresh id for idempotent sends: letters, digits and "-" only. */
export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
}
