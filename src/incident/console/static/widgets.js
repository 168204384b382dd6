// Pieces the dispatcher's view and the command board share: delivery progress bars and SLA clocks.

import { now } from "./api.js";
import { h } from "./dom.js";
import { duration, label, number, t, time } from "./i18n.js";

// The delivery states as the server decides them (incident.notify.states: FINAL, REACHED,
// NO_RECEIPTS; tests/unit/test_console_i18n.py keeps these in step). App push has no delivery
// receipt: for push, `sent` (the gateway took it) is final, so it counts as finished here.
export const FINAL = new Set(["delivered", "undelivered", "failed", "completed", "no_answer", "busy", "cancelled", "confirmed"]);
export const REACHED = new Set(["delivered", "completed", "confirmed", "answered"]);
export const NO_RECEIPTS = "push";
const WAITING = new Set(["planned"]);
export const CHANNELS = ["sms", "voice", "push", "email"];

/** Whether nothing more will happen to a delivery in `state` on `channel`. */
export function isFinal(channel, state) {
  return FINAL.has(state) || (channel === NO_RECEIPTS && state === "sent");
}

/** Counts of one channel (state -> n) in four groups; drafts (unapproved notices) left out.
 * done: finished and reached (push: handed to the gateway); failed: finished otherwise. */
export function groupCounts(states = {}, channel = "") {
  const g = { done: 0, flight: 0, failed: 0, waiting: 0, total: 0 };
  for (const [state, n] of Object.entries(states)) {
    if (state === "draft") continue;
    if (isFinal(channel, state)) {
      if (REACHED.has(state) || channel === NO_RECEIPTS && state === "sent") g.done += n;
      else g.failed += n;
    } else if (WAITING.has(state)) g.waiting += n;
    else g.flight += n;
    g.total += n;
  }
  return g;
}

/** What "done" means on a channel: delivered (SMS), answered (calls), sent without receipt (push). */
export function doneLabel(channel) {
  if (channel === "push") return t("deliveries.done.push");
  if (channel === "voice") return t("deliveries.done.voice");
  return t("deliveries.done");
}

/** One progress bar per channel: finished / on the way / failed, in numbers and colour, each labelled. */
export function deliveryBars(counts) {
  const channels = CHANNELS.filter((c) => groupCounts(counts[c], c).total > 0);
  if (!channels.length) return h("p", { class: "muted" }, t("deliveries.none"));
  return h("div", { class: "deliveries" }, channels.map((channel) => {
    const g = groupCounts(counts[channel], channel);
    const pct = (n) => `${((100 * n) / g.total).toFixed(2)}%`;
    const seg = (cls, n) => (n ? h("span", { class: `seg ${cls}`, style: { width: pct(n) } }) : null);
    const done = doneLabel(channel);
    return h("div", { class: "channel", dataset: { channel }, title: channel === NO_RECEIPTS ? t("deliveries.push.note") : false },
      h("div", { class: "channel-head" },
        h("span", { class: "channel-name" }, label("channel", channel)),
        h("span", { class: "channel-nums" },
          h("span", { class: "num done", dataset: { count: "done" } }, number(g.done)), " ", done, " · ",
          h("span", { class: "num flight", dataset: { count: "flight" } }, number(g.flight + g.waiting)), " ", t("deliveries.flight"), " · ",
          h("span", { class: "num failed", dataset: { count: "failed" } }, number(g.failed)), " ", t("deliveries.failed"), " · ",
          h("span", { class: "total", dataset: { count: "total", value: String(g.total) } }, t("deliveries.of", { total: g.total })))),
      h("div", {
        class: "bar", role: "img",
        "aria-label": t("deliveries.summary", { done: g.done, outcome: done, flight: g.flight + g.waiting, failed: g.failed, total: g.total }),
      }, seg("done", g.done), seg("flight", g.flight), seg("waiting", g.waiting), seg("failed", g.failed)));
  }));
}

/** SLA clocks; the countdown text is refreshed by tickSlas() every second. */
export function slaList(slas) {
  if (!slas || !slas.length) return null;
  return h("ul", { class: "slas" }, slas.map((s) =>
    h("li", { class: `sla sla-${s.state}`, dataset: { sla: s.sla, state: s.state, due: s.due_at || "", met: s.met_at || "" } },
      h("span", { class: "sla-title" }, s.title || s.sla),
      h("span", { class: "sla-clock" }, slaText(s.state, s.due_at, s.met_at)))));
}

function slaText(state, due, met) {
  if (state === "met") return t("sla.met", { time: time(met) });
  if (state === "pending" || !due) return t("sla.pending");
  const left = new Date(due).getTime() - now();
  if (state === "breached" || left < 0) return t("sla.over", { time: duration(left) });
  return t("sla.left", { time: duration(left) });
}

/** Every second: count down, and turn a clock that ran out into a breach without waiting for the server. */
export function tickSlas(root) {
  for (const li of root.querySelectorAll("li.sla")) {
    const { state, due, met } = li.dataset;
    let shown = state;
    if (state === "running" && due) {
      const left = new Date(due).getTime() - now();
      if (left < 0) shown = "breached";
      else if (left < 5 * 60_000) shown = "soon";
    }
    li.className = `sla sla-${shown}`;
    const clock = li.querySelector(".sla-clock");
    const text = slaText(shown === "soon" ? "running" : shown, due, met);
    if (clock.textContent !== text) clock.textContent = text;
  }
}

export function severityBadge(severity) {
  return h("span", { class: `badge sev-${severity}` }, label("severity", severity));
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, label("status", status));
}

/** The drill marker, wherever an incident appears (cards, lists, headers). */
export function drillBadge(incident) {
  if (!incident || !incident.drill) return null;
  return h("span", { class: "badge drill", dataset: { drill: "true" }, title: t("common.drill.title") }, t("incident.drill"));
}
