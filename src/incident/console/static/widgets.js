// Pieces the dispatcher's view and the command board share: delivery progress bars and SLA clocks.

import { now } from "./api.js";
import { h } from "./dom.js";
import { duration, label, number, t, time } from "./i18n.js";

const DONE = new Set(["delivered", "completed", "confirmed"]);
const FAILED = new Set(["failed", "undelivered", "no_answer", "busy", "cancelled"]);
const WAITING = new Set(["planned"]);
export const CHANNELS = ["sms", "voice", "push"];

/** Counts of one channel (state -> n) in four groups; drafts (unapproved notices) left out. */
export function groupCounts(states = {}) {
  const g = { done: 0, flight: 0, failed: 0, waiting: 0, total: 0 };
  for (const [state, n] of Object.entries(states)) {
    if (state === "draft") continue;
    if (DONE.has(state)) g.done += n;
    else if (FAILED.has(state)) g.failed += n;
    else if (WAITING.has(state)) g.waiting += n;
    else g.flight += n;
    g.total += n;
  }
  return g;
}

/** One progress bar per channel: delivered / on the way / failed, in numbers and colour. */
export function deliveryBars(counts) {
  const channels = CHANNELS.filter((c) => groupCounts(counts[c]).total > 0);
  if (!channels.length) return h("p", { class: "muted" }, t("deliveries.none"));
  return h("div", { class: "deliveries" }, channels.map((channel) => {
    const g = groupCounts(counts[channel]);
    const pct = (n) => `${((100 * n) / g.total).toFixed(2)}%`;
    const seg = (cls, n) => (n ? h("span", { class: `seg ${cls}`, style: { width: pct(n) } }) : null);
    return h("div", { class: "channel", dataset: { channel } },
      h("div", { class: "channel-head" },
        h("span", { class: "channel-name" }, label("channel", channel)),
        h("span", { class: "channel-nums" },
          h("span", { class: "num done", dataset: { count: "done" } }, number(g.done)), " ", t("deliveries.done"), " · ",
          h("span", { class: "num flight", dataset: { count: "flight" } }, number(g.flight + g.waiting)), " ", t("deliveries.flight"), " · ",
          h("span", { class: "num failed", dataset: { count: "failed" } }, number(g.failed)), " ", t("deliveries.failed"), " / ",
          h("span", { class: "num total", dataset: { count: "total" } }, number(g.total)))),
      h("div", {
        class: "bar", role: "img",
        "aria-label": t("deliveries.summary", { done: number(g.done), flight: number(g.flight + g.waiting), failed: number(g.failed), total: number(g.total) }),
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
