// The dashboard. It speaks only the public HTTP API: it reads the entry point (`GET /`) and follows
// its links (jobs, operations, imports, comparisons), then each job's own links.

import { apiKey, setApiKey, send, getJson, link, links, onAnswered, Problem } from "./api.js";
import { Follow, JobStream, END_STATES } from "./events.js";
import { $, h } from "./dom.js";
import { Overview } from "./overview.js";

const state = {
  root: null, // the entry point document
  listUrl: null, // the collection page shown
  listSeq: 0,
  pageLinks: null, // the page's prev and next links
  feed: null, // the collection's event stream, with the list's filters
  feedHref: "",
  streams: new Map(), // jobId -> { stream, listeners }
  open: null, // the job shown in detail
  refreshTimer: null,
  newKey: null, // a key just given (or "" when forgotten): its first answer clears the problem shown
};

// ---------------------------------------------------------------- problems

function showProblem(err) {
  if (err?.name === "AbortError") return;
  const p = err instanceof Problem ? err : new Problem({ title: "Unexpected error", detail: String(err?.message || err) });
  const box = $("#problem");
  box.replaceChildren(
    h("p", { class: "problem-title" }, p.status ? `${p.title} (HTTP ${p.status})` : p.title),
    p.detail ? h("p", {}, p.detail) : null,
    p.type ? h("p", { class: "hint" }, `Problem type: ${p.type}`) : null,
    h("button", { type: "button", onclick: () => { box.hidden = true; } }, "Dismiss"),
  );
  box.hidden = false;
}

function clearProblem() {
  $("#problem").hidden = true;
}

// ---------------------------------------------------------------- formatting

const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "");
const timeEl = (t) => (t ? h("time", { datetime: t }, fmtTime(t)) : "—");

function fmtSize(n) {
  if (n === undefined || n === null) return "";
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${units[i]}`;
}

function stageText(job) {
  const stage = job.totalNumberOfStages ? `Stage ${job.currentStage} of ${job.totalNumberOfStages}` : "";
  return [stage, job.phaseDescription].filter(Boolean).join(" — ");
}

/** Progress over the whole job: finished stages plus the share of the current one. */
function overall(job) {
  if (job.jobStatus === "SUCCESS") return 100;
  const n = job.totalNumberOfStages || 0;
  const s = job.currentStage || 0;
  if (!n || !s) return 0;
  const inStage = job.progress?.percent ?? 0;
  return Math.max(0, Math.min(100, Math.floor(((s - 1 + inStage / 100) / n) * 100)));
}

function progressText(job) {
  const p = job.progress || {};
  const parts = [`${overall(job)} %`];
  if (p.total !== undefined) parts.push(`this stage: ${p.amount} of ${p.total}${p.unit ? ` ${p.unit}` : ""}`);
  else if (p.amount) parts.push(`this stage: ${p.amount}${p.unit ? ` ${p.unit}` : ""}`);
  return parts.join(" · ");
}

function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge s-${status.toLowerCase()}`, ...attrs }, status);
}

function progressBar(label) {
  return h("div", { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100" }, h("div", { class: "fill" }));
}

function setProgress(bar, job) {
  const v = overall(job);
  bar.setAttribute("aria-valuenow", String(v));
  bar.setAttribute("aria-valuetext", `${v} %${stageText(job) ? `, ${stageText(job)}` : ""}`);
  bar.dataset.status = job.jobStatus;
  bar.firstChild.style.width = `${v}%`;
}

// ---------------------------------------------------------------- live streams

/** Follow a job's `events` link; streams are shared between the list row and the detail view. */
function watch(job, listener) {
  const events = link(job, "events");
  if (!events) return () => {};
  let w = state.streams.get(job.jobId);
  if (!w) {
    const entry = { listeners: new Set() };
    entry.stream = new JobStream(events.href, {
      onJob: (j) => { for (const l of [...entry.listeners]) l.onJob?.(j); },
      onState: (s, problem) => {
        entry.state = [s, problem];
        for (const l of [...entry.listeners]) l.onState?.(s, problem);
        if ((s === "ended" || s === "failed") && state.streams.get(job.jobId) === entry) state.streams.delete(job.jobId);
      },
    });
    state.streams.set(job.jobId, entry);
    w = entry;
  }
  w.listeners.add(listener);
  // A stream shared with the list may be live already: say so to the newcomer.
  if (w.state) listener.onState?.(...w.state);
  return () => {
    w.listeners.delete(listener);
    if (w.listeners.size === 0) {
      w.stream.stop();
      if (state.streams.get(job.jobId) === w) state.streams.delete(job.jobId);
    }
  };
}

// ---------------------------------------------------------------- the collection

function listUrlFromForm() {
  const jobs = link(state.root, "jobs");
  if (!jobs) throw new Problem({ title: "No jobs link", detail: "The entry point has no `jobs` link." });
  const form = new FormData($("#filter-form"));
  const q = new URLSearchParams();
  for (const s of form.getAll("status")) q.append("status", s);
  for (const name of ["operation", "search", "sort", "limit"]) {
    const v = String(form.get(name) || "").trim();
    if (v) q.set(name, v);
  }
  for (const name of ["createdAfter", "createdBefore", "finishedAfter", "finishedBefore"]) {
    const v = form.get(name);
    if (!v) continue;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new Problem({ title: "Not a time", detail: `${name}: ${v}` });
    q.set(name, d.toISOString());
  }
  const url = new URL(jobs.href);
  url.search = q.toString();
  return url.href;
}

async function loadList(url = state.listUrl) {
  if (!url) return;
  // The newest request wins; a later refresh reads the page asked for last.
  const seq = ++state.listSeq;
  state.listUrl = url;
  try {
    const { body } = await getJson(url);
    if (seq !== state.listSeq) return;
    renderList(body);
  } catch (e) {
    if (seq === state.listSeq) showProblem(e);
  }
}

function scheduleListRefresh() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(() => loadList(), 300);
}

/** The count line: matching jobs (when the service counted them) and those on the page. */
function showCount() {
  const n = state.count;
  const here = $("#job-list").querySelectorAll("li[data-job]").length;
  $("#list-count").textContent = n !== undefined
    ? `${n} matching job${n === 1 ? "" : "s"}; ${here} on this page.`
    : `${here} job${here === 1 ? "" : "s"} on this page.`;
}

function renderList(page) {
  state.count = page.count;
  const ul = $("#job-list");
  ul.replaceChildren(...page.jobs.map((job) => h("li", { "data-job": job.jobId }, jobRow(job))));
  if (page.jobs.length === 0) ul.append(h("li", { class: "hint" }, "No jobs match these filters."));
  showCount();
  state.pageLinks = { prev: link(page, "prev"), next: link(page, "next") };
  $("#page-prev").disabled = !state.pageLinks.prev;
  $("#page-next").disabled = !state.pageLinks.next;
  followCollection();
}

/** The list's filters as query parameters (no order, page size or cursor). */
function listFilters() {
  const q = new URL(state.listUrl).searchParams;
  for (const name of ["sort", "limit", "cursor"]) q.delete(name);
  return q;
}

// The filters a job can move in or out of as it changes; the list applies them to the stream's
// events itself, so that a row whose job leaves them is dropped (the stream would not send its
// change: it never sent that job).
const MOVING = ["status", "finishedAfter", "finishedBefore"];

/** One stream of the collection's changes, with the filters of the list shown that never change
 *  for a job (operation, correlation id, search, creation window): rows change as their jobs do,
 *  and new jobs appear on the page where they belong. */
function followCollection() {
  const events = link(state.root, "events");
  if (!events || !state.listUrl) return;
  const url = new URL(events.href);
  const q = listFilters();
  for (const name of MOVING) q.delete(name);
  url.search = q.toString();
  if (state.feed && state.feedHref === url.href) return;
  state.feed?.stop();
  state.feedHref = url.href;
  state.feed = new Follow(url.href, {
    onEvent: (ev) => {
      if (ev.type === "job") onListJob(JSON.parse(ev.data));
      else if (ev.type === "removed") dropRow(JSON.parse(ev.data).id);
      return false;
    },
    onState: (s, problem) => {
      $("#list-live").textContent = {
        live: "Live: jobs appear and change here as they do.",
        reconnecting: "The live list dropped; reconnecting…",
        failed: "The live list was refused; use Refresh.",
      }[s] ?? "";
      if (s === "failed" && problem) showProblem(problem);
    },
  });
}

function rowOf(jobId) {
  return $(`#job-list li[data-job="${CSS.escape(jobId)}"]`);
}

function dropRow(jobId) {
  const li = rowOf(jobId);
  if (!li) return;
  li.remove();
  if (state.count !== undefined) state.count = Math.max(0, state.count - 1);
  showCount();
}

/** Whether `job` is in the list's filters that change with a job (see `MOVING`). */
function inMovingFilters(job) {
  const q = listFilters();
  const statuses = q.getAll("status").flatMap((s) => s.split(","));
  if (statuses.length > 0 && !statuses.includes(job.jobStatus)) return false;
  const finished = job.finishedTime ? Date.parse(job.finishedTime) : null;
  const after = q.get("finishedAfter");
  const before = q.get("finishedBefore");
  if ((after || before) && finished === null) return false;
  if (after && !(finished > Date.parse(after))) return false;
  if (before && !(finished < Date.parse(before))) return false;
  return true;
}

/** A change from the collection's stream. */
function onListJob(job) {
  if (!inMovingFilters(job)) {
    // Not (or no longer) in the list.
    dropRow(job.jobId);
    return;
  }
  if (rowOf(job.jobId)) {
    updateRow(job);
    return;
  }
  // A job new to this page: on top of the first page when newest come first, at the bottom of
  // the last page when oldest do; elsewhere the count says there is more.
  const q = new URL(state.listUrl).searchParams;
  const newestFirst = q.get("sort") === "-createdTime";
  const ul = $("#job-list");
  const li = h("li", { "data-job": job.jobId, class: "arrived" }, jobRow(job));
  ul.querySelector("li.hint")?.remove();
  if (state.count !== undefined) state.count += 1;
  if (newestFirst && !state.pageLinks?.prev) {
    ul.prepend(li);
    const limit = Number(q.get("limit") || 100);
    while (ul.querySelectorAll("li[data-job]").length > limit) ul.lastElementChild.remove();
  } else if (!newestFirst && !state.pageLinks?.next) {
    ul.append(li);
  } else {
    $("#list-live").textContent = "New jobs match these filters: Refresh to see them.";
  }
  showCount();
}

function jobRow(job) {
  const self = link(job, "self")?.href;
  const current = state.open && state.open.jobId === job.jobId;
  const bar = progressBar(`Progress of ${job.operation} job ${job.taskId}`);
  setProgress(bar, job);
  // Two short lines (name, stage and status; then the bar and when it was created), so a page of
  // jobs fits beside the filters.
  return h("div", { class: `job-row${current ? " current" : ""}` },
    h("div", { class: "row-head" },
      h("button", { type: "button", class: "linkish", "aria-current": current ? "true" : null, onclick: () => self && openJob(self) },
        `${job.operation} #${job.taskId}`),
      h("span", { class: "phase" }, stageText(job)),
      statusBadge(job.jobStatus)),
    h("div", { class: "row-foot" },
      bar,
      h("span", { class: "hint", title: job.jobId }, "Created ", timeEl(job.createdTime), ` · ${job.jobId}`)));
}

function updateRow(job) {
  const li = rowOf(job.jobId);
  if (!li) return;
  const focused = li.contains(document.activeElement);
  li.replaceChildren(jobRow(job));
  if (focused) li.querySelector("button").focus();
}

// ---------------------------------------------------------------- one job

function closeDetail() {
  const o = state.open;
  if (o) {
    o.unwatch();
    o.log?.stop();
  }
  state.open = null;
}

async function openJob(href, { focus = true } = {}) {
  closeDetail();
  const o = { href, jobId: null, job: null, unwatch: () => {}, watching: false, els: null, filesKey: "", actionsKey: "", log: null, logBusy: false, lastSeq: 0, ended: null };
  state.open = o;
  history.replaceState(null, "", `#job=${encodeURIComponent(href)}`);
  try {
    const { body } = await getJson(href);
    if (state.open !== o) return;
    showJob(o, body);
    for (const li of document.querySelectorAll("#job-list li[data-job]")) {
      const row = li.firstChild;
      const mine = li.dataset.job === body.jobId;
      row?.classList.toggle("current", mine);
      const btn = li.querySelector("button");
      if (mine) btn?.setAttribute("aria-current", "true"); else btn?.removeAttribute("aria-current");
    }
    if (focus) $("#job-heading").focus();
  } catch (e) {
    if (state.open === o) showProblem(e);
  }
}

function skeleton() {
  const els = {
    status: h("span", { id: "job-status", "aria-live": "polite" }),
    stage: h("span", { class: "stage" }),
    bar: progressBar("Job progress"),
    progress: h("p", { class: "hint", id: "job-progress-text" }),
    live: h("p", { class: "hint", id: "job-live", "aria-live": "polite" }),
    actions: h("div", { class: "row actions" }),
    facts: h("dl", { class: "facts" }),
    error: h("section", { class: "error", hidden: true, "aria-labelledby": "job-error-h" }),
    summary: h("section", { hidden: true, "aria-labelledby": "job-summary-h" }),
    files: h("section", { hidden: true, "aria-labelledby": "job-files-h" }),
    messages: h("ol", { class: "timeline", id: "job-messages" }),
  };
  els.bar.id = "job-progress";
  $("#job-body").replaceChildren(
    h("p", { class: "status-line" }, els.status, " ", els.stage),
    els.bar, els.progress, els.live, els.actions, els.facts, els.error, els.summary, els.files,
    h("section", { "aria-labelledby": "job-messages-h" }, h("h3", { id: "job-messages-h" }, "Messages"), els.messages),
  );
  $("#job-empty").hidden = true;
  $("#job-body").hidden = false;
  return els;
}

/** Show a job document (first read, a live event, or the answer to an action). */
function showJob(o, job) {
  if (!o.els) o.els = skeleton();
  o.jobId = job.jobId;
  o.job = job;
  const els = o.els;
  $("#job-heading").textContent = `Job: ${job.operation} #${job.taskId}`;
  els.status.replaceChildren(statusBadge(job.jobStatus));
  els.stage.textContent = stageText(job);
  setProgress(els.bar, job);
  els.progress.textContent = progressText(job);
  renderActions(o, job);
  renderFacts(els.facts, job);
  renderError(els.error, job.error);
  renderSummary(els.summary, job.summary);
  updateRow(job);

  if (link(job, "events") && !o.watching) {
    o.watching = true;
    o.unwatch = watch(job, {
      onJob: (j) => { if (state.open === o) showJob(o, j); },
      onState: (s, problem) => { if (state.open === o) liveState(o, s, problem); },
    });
  } else if (!link(job, "events")) {
    els.live.textContent = END_STATES.has(job.jobStatus) ? "The job has ended." : "";
  }
  if (END_STATES.has(job.jobStatus) && o.watching) {
    o.watching = false;
    o.unwatch();
    o.unwatch = () => {};
    scheduleListRefresh();
  }
  // The log: read once, then followed live while the job runs (again after a restart).
  const ended = END_STATES.has(job.jobStatus);
  if (job.jobStatus !== "DELETED" && (o.ended === null || (o.ended && !ended))) loadLog(o);
  o.ended = ended;
  const filesKey = links(job, "file").map((l) => l.href).join(" ") + (link(job, "datafileset")?.href || "");
  if (filesKey !== o.filesKey) {
    o.filesKey = filesKey;
    renderFiles(o, job);
  }
}

function liveState(o, s, problem) {
  const text = {
    live: "Live: following the job's events.",
    reconnecting: "The event stream dropped; reconnecting from the last event…",
    ended: "The job has ended.",
    failed: "The event stream was refused.",
    stopped: "",
  }[s];
  o.els.live.textContent = text ?? "";
  if (s === "failed" && problem) showProblem(problem);
}

const ACTIONS = [
  ["cancel", "Cancel"],
  ["operator:restart", "Restart"],
  ["delete", "Delete"],
];

function renderActions(o, job) {
  const present = ACTIONS.filter(([rel]) => link(job, rel));
  const key = present.map(([rel]) => rel).join(" ");
  if (key === o.actionsKey) return;
  o.actionsKey = key;
  const hadFocus = o.els.actions.contains(document.activeElement);
  o.els.actions.replaceChildren(...present.map(([rel, label]) => {
    const l = link(job, rel);
    const btn = h("button", { type: "button", class: rel === "delete" ? "danger" : "", "data-rel": rel }, label);
    btn.addEventListener("click", () => act(o, rel, l, btn));
    return btn;
  }));
  if (hadFocus) (o.els.actions.querySelector("button") || $("#job-heading")).focus();
}

function confirmDelete(job) {
  return confirmAction(`Delete ${job.operation} job #${job.taskId} and its files? It is cancelled first if it runs.`, "Delete");
}

/** Ask before an action: `text`, answered by a button named `yes` or "Keep it". */
function confirmAction(text, yes) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-yes").textContent = yes;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

async function act(o, rel, l, btn) {
  if (rel === "delete" && !(await confirmDelete(o.job))) return;
  btn.disabled = true;
  try {
    const { body } = await getJson(l.href, { method: l.method || "POST" });
    clearProblem();
    if (state.open === o) {
      showJob(o, body);
      if (body.jobStatus === "DELETED") {
        o.els.live.textContent = "The job was deleted; its id now answers 410 Gone.";
        o.log?.stop();
        o.els.messages.replaceChildren();
        history.replaceState(null, "", "#");
      }
    }
    scheduleListRefresh();
  } catch (e) {
    showProblem(e);
  } finally {
    btn.disabled = false;
  }
}

function renderFacts(dl, job) {
  const rows = [
    ["Job id", job.jobId],
    ["Operation", job.operation],
    ["Task number", job.taskId],
    ["Correlation id", job.correlationId],
    ["Attempt", job.attempt],
    ["Priority", job.priority],
    ["Created", timeEl(job.createdTime)],
    ["Started", timeEl(job.startTime)],
    ["Finished", timeEl(job.finishedTime)],
  ];
  if (job.timeout) rows.splice(rows.length - 3, 0, ["Time limit", job.timeout]);
  if (job.notBefore) rows.splice(rows.length - 2, 0, ["Not before", timeEl(job.notBefore)]);
  if (job.output) rows.push(["Output", `${job.output.contentType}, ${fmtSize(job.output.size)}`]);
  dl.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function renderError(section, error) {
  section.hidden = !error;
  if (!error) return;
  section.replaceChildren(
    h("h3", { id: "job-error-h" }, "Error"),
    h("p", { class: "problem-title" }, error.title || "The job failed"),
    error.detail ? h("p", {}, error.detail) : null,
    error.type ? h("p", { class: "hint" }, `Problem type: ${error.type}`) : null,
  );
}

function renderSummary(section, summary) {
  section.hidden = !summary;
  if (!summary) return;
  section.replaceChildren(h("h3", { id: "job-summary-h" }, "Summary"), h("pre", { tabindex: "0" }, JSON.stringify(summary, null, 2)));
}

async function renderFiles(o, job) {
  const section = o.els.files;
  const set = link(job, "datafileset");
  let files = links(job, "file").map((l) => ({ href: l.href, name: l.href.split("/").pop(), contentType: l.type }));
  if (set) {
    try {
      const { body } = await getJson(set.href);
      files = body.files;
    } catch (e) {
      if (state.open === o) showProblem(e);
    }
  }
  if (state.open !== o) return;
  section.hidden = files.length === 0;
  section.replaceChildren(
    h("h3", { id: "job-files-h" }, "Files"),
    h("ul", { class: "files" }, files.map((f) =>
      h("li", {},
        h("a", { href: f.href, download: f.name, onclick: (ev) => download(ev, f) }, `Download ${f.name}`),
        h("span", { class: "hint" }, [f.contentType, fmtSize(f.size), f.rows !== undefined ? `${f.rows} rows` : null].filter(Boolean).join(", "))))),
  );
}

/** With a key, a plain link would go without it: fetch the file with the header instead. */
async function download(ev, file) {
  if (!apiKey()) return;
  ev.preventDefault();
  try {
    const response = await send(file.href, { accept: "" });
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: file.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (e) {
    showProblem(e);
  }
}

/** Read the job's log, then follow it (its `follow` link) while the job runs. */
async function loadLog(o) {
  if (o.logBusy) return;
  const l = link(o.job, "operator:messages");
  if (!l) return;
  o.logBusy = true;
  o.log?.stop();
  o.log = null;
  try {
    const { body } = await getJson(l.href);
    if (state.open !== o || o.job.jobStatus === "DELETED") return;
    o.els.messages.replaceChildren();
    o.lastSeq = 0;
    for (const m of body.messages) appendLine(o, m);
    const follow = link(body, "follow");
    if (follow && !END_STATES.has(o.job.jobStatus)) {
      const f = new Follow(follow.href, {
        endOnClose: true,
        onEvent: (ev) => {
          if (ev.type === "message" && state.open === o) appendLine(o, JSON.parse(ev.data));
          return false;
        },
        onState: (s) => {
          o.els.messages.dataset.live = s === "live" ? "true" : "false";
          if (["ended", "failed", "stopped"].includes(s) && o.log === f) o.log = null;
        },
      });
      o.log = f;
    }
  } catch (e) {
    if (state.open === o && e.status !== 410) showProblem(e);
  } finally {
    o.logBusy = false;
  }
}

/** One line of the log, once (a resumed stream may repeat none, but a reload and a stream meet). */
function appendLine(o, m) {
  if (m.seq <= o.lastSeq) return;
  o.lastSeq = m.seq;
  o.els.messages.append(
    h("li", { class: `msg l-${String(m.level).toLowerCase()}`, "data-seq": m.seq },
      h("span", { class: "msg-meta" }, timeEl(m.time), ` · ${m.level} · ${m.kind} · attempt ${m.attempt}`),
      h("span", { class: "msg-text" }, m.text)));
}

// ---------------------------------------------------------------- bulk actions

const BULK = {
  cancel: ["Cancel", "cancelled"],
  restart: ["Restart", "run again (those that ended before now)"],
  delete: ["Delete", "deleted with their files"],
};

/** The list's filters as a bulk action's `filter`. */
function bulkFilter() {
  const q = listFilters();
  const filter = {};
  const statuses = q.getAll("status").flatMap((s) => s.split(","));
  if (statuses.length > 0) filter.status = statuses;
  for (const name of ["operation", "correlationId", "search", "createdAfter", "createdBefore", "finishedAfter", "finishedBefore"]) {
    const v = q.get(name);
    if (v) filter[name] = v;
  }
  return filter;
}

/** Act on every job the list's filters match: a bulk action, which is a job of its own, opened
 *  in the detail with its progress and log. */
async function bulkAction(action, button) {
  const target = link(state.root, "actions");
  if (!target) { showProblem(new Problem({ title: "No actions link", detail: "The entry point has no `actions` link." })); return; }
  const [verb, done] = BULK[action];
  const n = state.count;
  const what = n !== undefined ? `the ${n} job${n === 1 ? "" : "s"}` : "every job";
  if (!(await confirmAction(`${verb} ${what} matching these filters? They will be ${done}.`, `${verb} all`))) return;
  button.disabled = true;
  try {
    const body = JSON.stringify({ action, filter: bulkFilter() });
    const response = await send(target.href, { method: "POST", body, headers: { "Content-Type": "application/json" } });
    const location = response.headers.get("Location");
    const job = await response.json();
    clearProblem();
    await openJob(location ? new URL(location, target.href).href : link(job, "self").href);
  } catch (e) {
    showProblem(e);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- submissions

function bodyType(file) {
  const name = file.name.toLowerCase();
  if (name.endsWith(".xml") || file.type.includes("xml")) return "application/xml";
  if (name.endsWith(".ndjson") || name.endsWith(".jsonl") || file.type === "application/x-ndjson") return "application/x-ndjson";
  return "application/json";
}

/** POST a submission, then open the new job from the answer's Location. */
async function submitTo(rel, body, contentType, button) {
  const target = link(state.root, rel);
  if (!target) { showProblem(new Problem({ title: `No ${rel} link`, detail: `The entry point has no \`${rel}\` link.` })); return; }
  button.disabled = true;
  try {
    const headers = contentType ? { "Content-Type": contentType } : {};
    const response = await send(target.href, { method: "POST", body, headers });
    const location = response.headers.get("Location");
    const job = await response.json();
    clearProblem();
    await openJob(location ? new URL(location, target.href).href : link(job, "self").href);
    scheduleListRefresh();
  } catch (e) {
    showProblem(e);
  } finally {
    button.disabled = false;
  }
}

function onCompare(ev) {
  ev.preventDefault();
  const a = $("#compare-a").files[0];
  const b = $("#compare-b").files[0];
  if (!a || !b) {
    showProblem(new Problem({ title: "Two documents are needed", detail: "Choose a file for document A and one for document B." }));
    return;
  }
  const form = new FormData();
  form.append("inputA", a, a.name);
  form.append("inputB", b, b.name);
  form.append("async", "true");
  const format = $("#compare-format").value;
  if (format) form.append("format", format);
  const keys = $("#compare-keys").value.trim();
  if (keys) {
    form.append("keyAttributes", keys);
    form.append("keyFields", keys);
  }
  submitTo("comparisons", form, null, ev.submitter || ev.target.querySelector("button"));
}

function onImport(ev) {
  ev.preventDefault();
  const file = $("#import-file").files[0];
  const text = $("#import-text").value.trim();
  const button = ev.submitter || ev.target.querySelector("button");
  if (file && text) {
    showProblem(new Problem({ title: "Two sets of records", detail: "Give the records as text or as a file, not both." }));
  } else if (file) {
    submitTo("imports", file, bodyType(file), button);
  } else if (text) {
    submitTo("imports", text, text.startsWith("<") ? "application/xml" : "application/json", button);
  } else {
    showProblem(new Problem({ title: "No records", detail: "Paste records as JSON, or choose a file." }));
  }
}

// ---------------------------------------------------------------- key and start

function showKeyState() {
  $("#key-state").textContent = apiKey()
    ? "Requests carry this key as Authorization: Bearer (kept for this tab only)."
    : "No key: requests are sent without Authorization.";
}

async function loadOperations() {
  const ops = link(state.root, "operations");
  if (!ops) return;
  const { body } = await getJson(ops.href);
  const select = $("#f-operation");
  const chosen = select.value;
  select.replaceChildren(h("option", { value: "" }, "Any"), ...body.operations.map((op) => h("option", { value: op.name }, op.name)));
  select.value = chosen;
}

/** The href of a job named in a deep link: its href (absolute or from this origin) or its id. */
function jobHref(named) {
  if (named.includes("/")) return new URL(named, location.href).href;
  const jobs = link(state.root, "jobs");
  return jobs ? `${jobs.href.replace(/\/$/, "")}/${encodeURIComponent(named)}` : null;
}

/** The job a deep link names: `#job=<href or id>`. */
function linkedJob() {
  const m = /^#job=(.+)$/.exec(location.hash);
  return m ? jobHref(decodeURIComponent(m[1])) : null;
}

// ---------------------------------------------------------------- views

const overview = new Overview({
  onProblem: showProblem,
  onStatus: (status) => {
    // The jobs with that status: the list's filters become just that status.
    const form = $("#filter-form");
    for (const box of form.querySelectorAll('input[name="status"]')) box.checked = box.value === status;
    $("#f-search").value = "";
    location.hash = "#jobs";
    try { loadList(listUrlFromForm()); } catch (e) { showProblem(e); }
  },
});

/** The view the address names: `#overview`, or the jobs (with `#job=…`, one of them open). */
const viewOfHash = () => (location.hash === "#overview" ? "overview" : "jobs");

/** Show one view. A hidden view reads nothing: the overview stops, and the list's stream closes
 *  while the overview is shown (one stream of the collection per page). */
function showView(name) {
  const onOverview = name === "overview";
  $("#jobs-view").hidden = onOverview;
  $("#overview").hidden = !onOverview;
  for (const [id, view] of [["#tab-jobs", "jobs"], ["#tab-overview", "overview"]]) {
    if (view === name) $(id).setAttribute("aria-current", "page");
    else $(id).removeAttribute("aria-current");
  }
  if (!state.root) return;
  if (onOverview) {
    state.feed?.stop();
    state.feed = null;
    state.feedHref = "";
    overview.show(state.root);
    return;
  }
  overview.hide();
  if (!state.listUrl) {
    try { loadList(listUrlFromForm()); } catch (e) { showProblem(e); }
  } else if (!state.feed) {
    loadList();
  }
}

async function start() {
  try {
    const { body } = await getJson(new URL("../", location.href).href);
    state.root = body;
    clearProblem();
  } catch (e) {
    showProblem(e);
    return;
  }
  loadOperations().catch(showProblem);
  showView(viewOfHash());
  const linked = linkedJob();
  if (linked) openJob(linked, { focus: false });
}

function reloadAll() {
  if (!state.root) { start(); return; }
  const open = state.open?.href;
  // Streams opened with the old key are closed; the list and the job open new ones.
  for (const entry of state.streams.values()) entry.stream.stop();
  state.streams.clear();
  state.feed?.stop();
  state.feed = null;
  state.feedHref = "";
  loadOperations().catch(showProblem);
  overview.reset(state.root);
  if (viewOfHash() === "jobs") loadList();
  if (open) openJob(open, { focus: false });
}

/** A key was given or forgotten: the next answer to a request with it clears the problem shown
 *  (typically the 401 the old key had). */
function keyChanged() {
  state.newKey = apiKey();
  showKeyState();
  reloadAll();
}

function init() {
  // `/ui/jobs/{id}` is a deep link too: the address becomes `/ui/#job={id}`, against which the
  // page's relative links (and the API's entry point, `../`) resolve.
  const deep = /\/jobs\/([^/]+)$/.exec(location.pathname);
  if (deep) history.replaceState(null, "", new URL(`../#job=${deep[1]}`, location.href).href);
  onAnswered((key) => {
    if (state.newKey !== null && key === state.newKey) {
      state.newKey = null;
      clearProblem();
    }
  });
  window.addEventListener("hashchange", () => {
    showView(viewOfHash());
    if (viewOfHash() === "overview") $("#ov-heading").focus();
    const linked = state.root && linkedJob();
    if (linked && linked !== state.open?.href) openJob(linked);
  });
  const keyInput = $("#api-key");
  keyInput.value = apiKey();
  showKeyState();
  $("#key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setApiKey(keyInput.value.trim());
    keyChanged();
  });
  $("#key-forget").addEventListener("click", () => {
    setApiKey("");
    keyInput.value = "";
    keyChanged();
  });
  $("#filter-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    try { loadList(listUrlFromForm()); } catch (e) { showProblem(e); }
  });
  $("#filter-form").addEventListener("reset", () => {
    setTimeout(() => { try { loadList(listUrlFromForm()); } catch (e) { showProblem(e); } });
  });
  $("#list-refresh").addEventListener("click", () => loadList());
  $("#page-prev").addEventListener("click", () => state.pageLinks?.prev && loadList(state.pageLinks.prev.href));
  $("#page-next").addEventListener("click", () => state.pageLinks?.next && loadList(state.pageLinks.next.href));
  for (const b of document.querySelectorAll(".bulk button[data-action]")) {
    b.addEventListener("click", () => bulkAction(b.dataset.action, b));
  }
  $("#compare-form").addEventListener("submit", onCompare);
  $("#import-form").addEventListener("submit", onImport);
  showView(viewOfHash());
  start();
}

init();
