// Small DOM helpers. Text always goes in as text nodes, never as HTML.

export const $ = (sel, root = document) => root.querySelector(sel);

/**
 * Creates an element: `h("button", { type: "button", class: "x", onclick }, "Label")`.
 * Attributes starting with "on" become listeners; `dataset`-style keys are written as
 * `data-*` attributes; `false`/`null` attributes are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Announces text to screen readers through the page's polite live region. */
export function announce(text) {
  const region = $("#live-region");
  if (!region) return;
  const item = h("p", {}, text);
  region.append(item);
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

let toastTimer = null;

/** Shows a short message (errors, notices) visibly and to screen readers. */
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
