// Tiny DOM helpers. Text always goes in as text (never as HTML): reports, notes and notice
// texts come from outside and must not become markup.

import { t } from "./i18n.js";

/**
 * h('button', {class: 'primary', onclick: fn, 'aria-label': 'x'}, 'text', child, [more])
 * Attributes: `class`, `text`, `on<event>` handlers, `dataset` object, booleans (true: set,
 * false/null/undefined: left out), anything else as an attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value); // CSSOM: allowed by the page's CSP
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "selected" || key === "disabled" || key === "hidden") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/**
 * Content for Leaflet's bindTooltip / bindPopup. Leaflet puts a string in as HTML, so incident
 * titles, report summaries and zone names must never be passed as strings: this hands Leaflet
 * a function that builds a fresh text-only node each time the tooltip opens.
 */
export function leafletText(text) {
  return () => h("span", {}, String(text ?? ""));
}

export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

/** A group of buttons acting as tabs (arrow keys move between them). */
export function tabs(label, items, selected, onSelect) {
  const list = h("div", { role: "tablist", "aria-label": label, class: "tabs" });
  const buttons = items.map(([id, text]) =>
    h("button", {
      type: "button", role: "tab", id: `tab-${id}`, "aria-selected": String(id === selected),
      tabindex: id === selected ? "0" : "-1", dataset: { tab: id }, onclick: () => onSelect(id),
    }, text),
  );
  list.addEventListener("keydown", (ev) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (ev.key === "ArrowRight") j = (i + 1) % buttons.length;
    else if (ev.key === "ArrowLeft") j = (i - 1 + buttons.length) % buttons.length;
    else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = buttons.length - 1;
    if (j === null) return;
    ev.preventDefault();
    buttons[j].focus();
    onSelect(items[j][0]);
  });
  append(list, buttons);
  return list;
}

/**
 * A modal dialog; resolves with the value of the button pressed (or null on Escape).
 * `body` is a node; `buttons` are [value, text, className]. The first non-primary button
 * has the focus, so Enter at 3 a.m. never sends anything by accident.
 */
export function ask(title, body, buttons) {
  return new Promise((resolve) => {
    const returnFocus = document.activeElement;
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" });
    const form = h("form", { method: "dialog" },
      h("h2", { id: "dialog-title" }, title),
      h("div", { class: "dialog-body" }, body),
      h("div", { class: "dialog-buttons" },
        buttons.map(([value, text, cls]) =>
          h("button", { value, class: cls || "", type: "submit", formnovalidate: !/primary|danger/.test(cls || "") }, text))),
    );
    dialog.append(form);
    document.body.append(dialog);
    dialog.addEventListener("close", () => {
      const value = dialog.returnValue || null;
      dialog.remove();
      if (returnFocus && returnFocus.isConnected) returnFocus.focus();
      resolve(value === "" ? null : value);
    });
    dialog.showModal();
    const safe = [...form.querySelectorAll(".dialog-buttons button")].find((b) => !b.classList.contains("primary") && !b.classList.contains("danger"));
    const firstField = form.querySelector(".dialog-body input, .dialog-body textarea, .dialog-body select");
    (firstField || safe || form.querySelector("button")).focus();
  });
}

const MAX_TOASTS = 3;

/**
 * Announce a short message (a toast that screen readers read too). The toasts take a strip
 * at the bottom of the page's own layout (the view above shrinks), so they never cover the
 * rows a dispatcher is reading; each can be dismissed, and goes by itself after a while.
 */
export function toast(message, kind = "info") {
  const root = document.getElementById("app") || document.body;
  let region = document.getElementById("toasts");
  if (!region || region.parentElement !== root) {
    if (region) region.remove();
    region = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    root.append(region);
  }
  const item = h("div", { class: `toast ${kind}` },
    h("span", { class: "toast-text" }, message),
    h("button", { type: "button", class: "small toast-close", "aria-label": t("common.dismiss"), onclick: () => item.remove() }, "×"));
  region.append(item);
  // A burst (a flood of reports on a wall display) shows the newest few, not a growing column.
  while (region.childElementCount > MAX_TOASTS) region.firstElementChild.remove();
  setTimeout(() => item.remove(), kind === "error" ? 9000 : 5000);
}

