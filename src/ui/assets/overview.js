// The Overview: the service at a glance, drawn from `GET /api/v1/stats` (the entry point's
// `stats` link): jobs per status, jobs ended per minute or per hour, the queue of each operation,
// and the service's instances with their heartbeats. While it is shown it reads the stats again
// when the collection's event stream says a job changed (at most every 2 s) and every 10 s (so
// heartbeats and ages move when nothing else does). Charts are plain SVG.

import { getJson, link, Problem } from "./api.js";
import { Follow } from "./events.js";
import { $, h, s } from "./dom.js";

const STATUSES = [
  ["QUEUED", "Queued"],
  ["STARTED", "Started"],
  ["PROCESSING", "Processing"],
  ["SAVING", "Saving"],
  ["SUCCESS", "Success"],
  ["FAILED", "Failed"],
  ["CANCELLED", "Cancelled"],
];
const RUNNING = new Set(["STARTED", "PROCESSING", "SAVING"]);
const ENDS = [
  ["completed", "Completed"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
];
const THROTTLE_MS = 2000;
const REFRESH_MS = 10000;
// Readings kept for the queue-depth line: 30 minutes at one reading every 10 s.
const SAMPLES = 180;

const countOf = (counts, status) => counts.find((c) => c.status === status)?.count ?? 0;

/** "4 s", "3 min", "2 h 5 min", "3 d 4 h": how long `ms` is, to the unit that matters. */
export function fmtAge(ms) {
  const sec = Math.max(0, Math.round(ms / 1000));
  if (sec < 60) return `${sec} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min} min`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return min % 60 ? `${hours} h ${min % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** A run time: "850 ms", "2.4 s", "3 min". */
export function fmtMs(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return fmtAge(ms);
}

/** The top of a chart's scale: 1, 2 or 5 times a power of ten, at least `v` (and at least 1). */
export function niceMax(v) {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((m) => m * p).find((m) => m >= v);
}

const clock = (t, withDay) =>
  new Date(t).toLocaleString([], withDay
    ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }
    : { hour: "2-digit", minute: "2-digit" });

export class Overview {
  /** `onProblem(err)` shows a problem; `onStatus(status)` opens the jobs list with that status. */
  constructor({ onProblem, onStatus }) {
    this.onProblem = onProblem;
    this.onStatus = onStatus;
    this.root = null;
    this.shown = false;
    this.span = "minute";
    this.tenant = "";
    this.stats = null;
    this.samples = [];
    this.seq = 0;
    this.lastRead = 0;
    this.pending = null;
    this.timer = null;
    this.feed = null;
    for (const b of document.querySelectorAll("#ov-span button")) {
      b.addEventListener("click", () => {
        this.span = b.dataset.span;
        for (const o of document.querySelectorAll("#ov-span button")) o.setAttribute("aria-pressed", String(o === b));
        if (this.stats) this.renderEnds(this.stats);
      });
    }
    $("#ov-tenant-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.tenant = $("#ov-tenant").value.trim();
      this.samples = [];
      this.read();
    });
  }

  /** Show the overview of the service whose entry point is `root`, and keep it current. */
  show(root) {
    this.root = root;
    if (this.shown) return;
    this.shown = true;
    this.read();
    this.follow();
    this.timer = setInterval(() => this.read(), REFRESH_MS);
  }

  /** Stop reading: the view is hidden. */
  hide() {
    this.shown = false;
    this.seq += 1;
    clearInterval(this.timer);
    clearTimeout(this.pending);
    this.pending = null;
    this.feed?.stop();
    this.feed = null;
  }

  /** The key changed: what was shown belongs to the old one. */
  reset(root) {
    const shown = this.shown;
    this.hide();
    this.samples = [];
    this.tenant = "";
    $("#ov-tenant").value = "";
    if (shown) this.show(root);
    else this.root = root;
  }

  /** The collection's stream: any change of a job the caller sees is a reason to read again. */
  follow() {
    const events = link(this.root, "events");
    if (!events) return;
    this.feed = new Follow(events.href, {
      onEvent: (ev) => {
        if (ev.type === "job" || ev.type === "removed") this.soon();
        return false;
      },
      onState: (st) => {
        $("#ov-live").textContent = {
          live: "Live: read again as jobs change, and every 10 s.",
          reconnecting: "The live stream dropped; reconnecting (read every 10 s meanwhile)…",
          failed: "The live stream was refused; read every 10 s.",
        }[st] ?? "";
      },
    });
  }

  /** Read again soon: at once, or 2 s after the last reading. */
  soon() {
    if (this.pending || !this.shown) return;
    const wait = Math.max(0, this.lastRead + THROTTLE_MS - Date.now());
    this.pending = setTimeout(() => {
      this.pending = null;
      this.read();
    }, wait);
  }

  async read() {
    const target = link(this.root, "stats");
    if (!target) {
      this.onProblem(new Problem({ title: "No stats link", detail: "The entry point has no `stats` link." }));
      return;
    }
    const url = new URL(target.href);
    if (this.tenant) url.searchParams.set("tenant", this.tenant);
    const seq = ++this.seq;
    this.lastRead = Date.now();
    try {
      const { body } = await getJson(url.href);
      if (seq !== this.seq || !this.shown) return;
      this.render(body);
    } catch (e) {
      if (seq === this.seq) this.onProblem(e);
    }
  }

  render(st) {
    this.stats = st;
    const now = Date.parse(st.generatedAt);
    // The answer names no tenant when it covers them all: the caller may then choose one.
    const seesAll = st.tenant === undefined || this.tenant !== "";
    $("#ov-tenant-form").hidden = !seesAll;
    $("#ov-scope").textContent = st.tenant ? `Tenant ${st.tenant}` : "All tenants";
    $("#ov-updated").replaceChildren("Read at ", h("time", { datetime: st.generatedAt }, new Date(now).toLocaleTimeString()));
    const running = st.counts.filter((c) => RUNNING.has(c.status)).reduce((a, c) => a + c.count, 0);
    this.samples.push({ t: now, queued: countOf(st.counts, "QUEUED"), running });
    if (this.samples.length > SAMPLES) this.samples.shift();
    this.renderTiles(st);
    this.renderEnds(st);
    this.renderQueues(st, now);
    this.renderDepth();
    this.renderNodes(st, now);
  }

  renderTiles(st) {
    $("#ov-tiles").replaceChildren(
      h("li", { class: "tile total" }, h("span", { class: "n" }, st.total.toLocaleString()), h("span", { class: "label" }, "All jobs")),
      ...STATUSES.map(([status, label]) => {
        const n = countOf(st.counts, status);
        return h("li", {},
          h("button", {
            type: "button",
            class: `tile s-${status.toLowerCase()}`,
            "data-status": status,
            "aria-label": `${label}: ${n}. Show them in the list`,
            onclick: () => this.onStatus(status),
          }, h("span", { class: "n" }, n.toLocaleString()), h("span", { class: "label" }, label)));
      }),
    );
  }

  /** Jobs ended per minute (last hour) or per hour (last 48 hours), stacked by how they ended. */
  renderEnds(st) {
    const hourly = this.span === "hour";
    const periods = hourly ? st.perHour : st.perMinute;
    const totals = Object.fromEntries(ENDS.map(([k]) => [k, periods.reduce((a, p) => a + p[k], 0)]));
    const what = hourly ? `the last ${periods.length} hours, per hour` : `the last ${periods.length} minutes, per minute`;
    const desc = `In ${what}: ${totals.completed} completed, ${totals.failed} failed, ${totals.cancelled} cancelled.`;
    const [W, H, L, B, T] = [640, 180, 40, 22, 8];
    const plotW = W - L - 4;
    const plotH = H - B - T;
    const top = niceMax(Math.max(0, ...periods.map((p) => p.completed + p.failed + p.cancelled)));
    const y = (v) => T + plotH - (v / top) * plotH;
    const bw = plotW / Math.max(1, periods.length);
    const grid = [0, top / 2, top].filter((v, i) => i !== 1 || Number.isInteger(v)).map((v) =>
      s("g", { class: "grid" },
        s("line", { x1: L, x2: W - 4, y1: y(v), y2: y(v) }),
        s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v))));
    const bars = periods.map((p, i) => {
      let base = 0;
      const rects = ENDS.filter(([k]) => p[k] > 0).map(([k]) => {
        const r = s("rect", { class: `c-${k}`, x: L + i * bw + bw * 0.1, width: Math.max(1, bw * 0.8), y: y(base + p[k]), height: y(base) - y(base + p[k]) });
        base += p[k];
        return r;
      });
      // A hover target the whole height of the plot, so an empty period says so too.
      return s("g", { class: "period" },
        s("title", {}, `${clock(p.start, hourly)}: ${p.completed} completed, ${p.failed} failed, ${p.cancelled} cancelled`),
        s("rect", { class: "hit", x: L + i * bw, width: bw, y: T, height: plotH }),
        rects);
    });
    const ticks = periods.length ? [0, Math.floor((periods.length - 1) / 2), periods.length - 1] : [];
    const labels = [...new Set(ticks)].map((i) =>
      s("text", { class: "tick", x: L + i * bw + bw / 2, y: H - 6, "text-anchor": i === 0 ? "start" : i === periods.length - 1 ? "end" : "middle" },
        clock(periods[i].start, hourly)));
    $("#ov-ends").replaceChildren(
      s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "ov-ends-t ov-ends-d", class: "chart", preserveAspectRatio: "none" },
        s("title", { id: "ov-ends-t" }, `Jobs ended in ${what}`),
        s("desc", { id: "ov-ends-d" }, desc),
        grid, bars, labels),
    );
    $("#ov-ends-sum").textContent = desc;
  }

  /** Each operation's queue: queued and running now, the oldest queued job's wait, run times. */
  renderQueues(st, now) {
    const body = $("#ov-queues tbody");
    if (st.operations.length === 0) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "hint" }, "No jobs yet.")));
      return;
    }
    const widest = Math.max(1, ...st.operations.map((o) => o.queued + o.running));
    body.replaceChildren(...st.operations.map((o) => {
      const W = 160;
      const qw = (o.queued / widest) * W;
      const rw = (o.running / widest) * W;
      const depth = s("svg", { viewBox: `0 0 ${W} 12`, class: "depth", role: "img", "aria-label": `${o.queued} queued, ${o.running} running` },
        s("rect", { class: "c-track", x: 0, y: 0, width: W, height: 12 }),
        s("rect", { class: "c-running", x: 0, y: 0, width: rw, height: 12 }),
        s("rect", { class: "c-queued", x: rw, y: 0, width: qw, height: 12 }));
      const rt = o.runTime;
      return h("tr", { "data-operation": o.operation },
        h("th", { scope: "row" }, o.operation),
        h("td", { class: "num" }, o.queued.toLocaleString()),
        h("td", { class: "num" }, o.running.toLocaleString()),
        h("td", {}, depth),
        h("td", {}, o.oldestQueuedAt
          ? h("time", { datetime: o.oldestQueuedAt, title: new Date(o.oldestQueuedAt).toLocaleString() }, `${fmtAge(now - Date.parse(o.oldestQueuedAt))} ago`)
          : "—"),
        h("td", {}, rt ? `${fmtMs(rt.p50Ms)} / ${fmtMs(rt.p95Ms)} (${rt.samples} run${rt.samples === 1 ? "" : "s"})` : "—"));
    }));
  }

  /** Queued and running jobs over the readings made while the page was open. */
  renderDepth() {
    const pts = this.samples;
    const [W, H, L, B, T] = [640, 120, 40, 20, 8];
    const plotW = W - L - 4;
    const plotH = H - B - T;
    const top = niceMax(Math.max(0, ...pts.map((p) => Math.max(p.queued, p.running))));
    const t0 = pts[0]?.t ?? 0;
    const span = Math.max(1, (pts.at(-1)?.t ?? 0) - t0);
    const x = (t) => L + ((t - t0) / span) * plotW;
    const y = (v) => T + plotH - (v / top) * plotH;
    const line = (k) => (pts.length < 2 ? null : s("polyline", { class: `l-${k}`, points: pts.map((p) => `${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ") }));
    const last = pts.at(-1);
    const desc = last ? `Now ${last.queued} queued and ${last.running} running; ${pts.length} reading${pts.length === 1 ? "" : "s"} since this page opened.` : "";
    $("#ov-depth").replaceChildren(
      s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "ov-depth-t ov-depth-d", class: "chart", preserveAspectRatio: "none" },
        s("title", { id: "ov-depth-t" }, "Queued and running jobs since this page opened"),
        s("desc", { id: "ov-depth-d" }, desc),
        [0, top].map((v) => s("g", { class: "grid" },
          s("line", { x1: L, x2: W - 4, y1: y(v), y2: y(v) }),
          s("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)))),
        line("queued"), line("running"),
        pts.length > 1 ? [
          s("text", { class: "tick", x: L, y: H - 4, "text-anchor": "start" }, new Date(t0).toLocaleTimeString()),
          s("text", { class: "tick", x: W - 4, y: H - 4, "text-anchor": "end" }, new Date(last.t).toLocaleTimeString()),
        ] : null),
    );
    $("#ov-depth-sum").textContent = pts.length < 2 ? `${desc} The line starts with the next reading.` : desc;
  }

  renderNodes(st, now) {
    const body = $("#ov-nodes tbody");
    if (st.nodes.length === 0) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "hint" }, "No instance has reported in the last hour.")));
      return;
    }
    body.replaceChildren(...st.nodes.map((n) =>
      h("tr", { "data-node": n.id },
        h("th", { scope: "row" }, h("code", {}, n.id)),
        h("td", {}, n.role),
        h("td", {}, h("time", { datetime: n.startedAt, title: new Date(n.startedAt).toLocaleString() }, `${fmtAge(now - Date.parse(n.startedAt))} ago`)),
        h("td", {}, h("time", { datetime: n.heartbeatAt, title: new Date(n.heartbeatAt).toLocaleString() }, `${fmtAge(now - Date.parse(n.heartbeatAt))} ago`)),
        h("td", {}, h("span", { class: `badge ${n.alive ? "s-success" : "s-failed"}` }, n.alive ? "alive" : "silent")),
        h("td", { class: "num" }, n.running.toLocaleString()))));
  }
}
