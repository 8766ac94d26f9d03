// The dashboard at /ui, driven in headless Chromium against the real binary on loopback.
//
//   node tests/browser/ui.mjs            (after `cargo build`; .ci/run does this after cargo test)
//
// LONGRUN_BIN (default target/debug/longrun), CHROMIUM (default /usr/bin/chromium) and UI_SHOTS
// (the folder of the screenshots, default target/ui-shots; .ci/run names the one CI keeps) change
// the defaults. Any failed check exits 1.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.LONGRUN_BIN || path.join(repo, "target/debug/longrun");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.UI_SHOTS || path.join(repo, "target/ui-shots");
fs.mkdirSync(shots, { recursive: true });
const screenshot = path.join(shots, "job-detail.png");
const narrowShot = path.join(shots, "jobs-360.png");
const KEY = "ui-test-key-7f3a";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "longrun-ui-"));
const cleanups = [];
const step = (text) => console.log(`ui: ${text}`);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The service on a loopback port (a free one unless given), on the test's SQLite database and
 *  object directory; `stop()` ends it with SIGTERM (graceful) and waits for it. */
async function startService(port, db = "ui.db") {
  port = port || (await freePort());
  const log = fs.openSync(path.join(tmp, "service.log"), "a");
  const child = spawn(bin, ["serve"], {
    env: {
      ...process.env,
      LONGRUN_BIND: `127.0.0.1:${port}`,
      LONGRUN_DATABASE_URL: `sqlite://${tmp}/${db}?mode=rwc`,
      LONGRUN_STORE_URL: `file://${tmp}/objects`,
      // One worker: a job that holds it keeps the next one QUEUED, so Cancel is always in time.
      LONGRUN_WORKERS: "1",
      // The holding job fetches its input from a server of this test on loopback.
      LONGRUN_CALLBACK_ALLOW_PRIVATE: "true",
      LONGRUN_SHUTDOWN_GRACE: "1s",
      RUST_LOG: "warn",
    },
    stdio: ["ignore", log, log],
  });
  let exited = null;
  const exit = new Promise((resolve) => child.on("exit", (code, signal) => { exited = { code, signal }; resolve(exited); }));
  const stop = async () => {
    if (exited) return exited;
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 20000);
    const how = await exit;
    clearTimeout(t);
    return how;
  };
  cleanups.push(stop);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i += 1) {
    if (exited) throw new Error(`longrun exited at start (${JSON.stringify(exited)})`);
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.ok) return { base, port, stop };
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error("longrun did not become ready");
}

/** A loopback server whose `/held/{name}.json` answers only once `release(name)` is called:
 *  a comparison fetching it holds the service's one worker for as long as the test wants. */
async function startHoldServer() {
  const holds = new Map();
  const hold = (name) => {
    if (!holds.has(name)) {
      const h = {};
      h.released = new Promise((r) => { h.release = r; });
      h.requested = new Promise((r) => { h.arrived = r; });
      holds.set(name, h);
    }
    return holds.get(name);
  };
  const server = http.createServer(async (req, res) => {
    const m = /^\/held\/(\w+)\.json$/.exec(req.url);
    if (m) {
      const h = hold(m[1]);
      h.arrived();
      await h.released;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ url: req.url }));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => {
    for (const h of holds.values()) h.release();
    server.close(() => r());
    server.closeAllConnections?.();
  }));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    /** Submit a comparison that waits for `name`; resolves with its job once the worker holds it. */
    async submit(serviceBase, name) {
      const r = await fetch(`${serviceBase}/api/v1/comparisons`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${KEY}` },
        body: JSON.stringify({ inputA: { uri: `${base}/held/${name}.json` }, inputB: { uri: `${base}/other.json` }, async: {} }),
      });
      assert.equal(r.status, 201, await r.clone().text());
      await hold(name).requested;
      return r.headers.get("location");
    },
    release: (name) => hold(name).release(),
  };
}

/** Long-poll a job (`Prefer: wait`, `If-None-Match`) until it has no `monitor` link. */
async function waitEnd(href) {
  let etag = "";
  for (let i = 0; i < 20; i += 1) {
    const headers = { accept: "application/json", prefer: "wait=30", authorization: `Bearer ${KEY}` };
    if (etag) headers["if-none-match"] = etag;
    const r = await fetch(href, { headers });
    if (r.status === 304) continue;
    assert.equal(r.status, 200);
    etag = r.headers.get("etag");
    const job = await r.json();
    if (!job.links.some((l) => l.rel === "monitor")) return job;
  }
  throw new Error(`${href} did not end`);
}

function writeFile(name, value) {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, JSON.stringify(value, null, 2));
  return p;
}

async function main() {
  assert.ok(fs.existsSync(bin), `${bin} is missing: build the service first (cargo build)`);
  assert.ok(fs.existsSync(chromiumPath), `${chromiumPath} is missing (apt-get install chromium)`);
  let service = await startService();
  const { base } = service;
  step(`service at ${base}`);
  const hold = await startHoldServer();

  const context = await chromium.launchPersistentContext(path.join(tmp, "profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    acceptDownloads: true,
    viewport: { width: 1400, height: 1000 },
  });
  cleanups.unshift(() => context.close());

  // What the page asks for: only the service, and the API always with the key once it is set.
  const offsite = [];
  const apiCalls = [];
  const pageErrors = [];
  context.on("request", (req) => {
    const u = new URL(req.url());
    if (u.protocol === "blob:" || u.protocol === "data:") return;
    if (u.origin !== base) offsite.push(req.url());
    if (u.pathname.startsWith("/api/") || u.pathname.startsWith("/downloads/") || u.pathname.startsWith("/datafilesets/")) {
      // A request still open when the browser closes has no headers to give: it is left out.
      apiCalls.push(req.allHeaders().then(
        (h) => ({ url: req.url(), auth: h.authorization, accept: h.accept, lastEventId: h["last-event-id"] }),
        () => null,
      ));
    }
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => pageErrors.push(`page error: ${e.message}`));
  // Failed answers are checked below from the network side; the console only repeats them.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${m.text()}`);
  });
  const failedAnswers = [];
  page.on("response", (r) => { if (r.status() >= 400) failedAnswers.push(`${r.request().method()} ${r.url()} ${r.status()}`); });
  page.setDefaultTimeout(30000);

  step("open /ui");
  await page.goto(`${base}/ui`);
  assert.equal(new URL(page.url()).pathname, "/ui/");
  await page.getByRole("heading", { name: "Jobs" }).waitFor();
  const docs = page.getByRole("link", { name: "API docs" });
  assert.equal(new URL(await docs.getAttribute("href"), page.url()).href, `${base}/docs`);
  const spec = page.getByRole("link", { name: "OpenAPI (JSON)" });
  assert.equal(new URL(await spec.getAttribute("href"), page.url()).href, `${base}/openapi.json`);

  step("set the API key");
  await page.getByLabel("API key").fill(KEY);
  await page.getByRole("button", { name: "Use key", exact: true }).click();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("longrun.apiKey")), KEY);
  const keyCallsFrom = apiCalls.length;

  // --- a comparison through the form, followed live to SUCCESS, and its result downloaded
  step("hold the worker, submit a comparison of two JSON files behind it");
  await hold.submit(base, "one");
  const a1 = writeFile("a.json", { tools: [{ id: 1, name: "scraper" }, { id: 2, name: "converter" }], version: 1 });
  const b1 = writeFile("b.json", { tools: [{ id: 1, name: "scraper" }, { id: 2, name: "currency converter" }], version: 2 });
  await page.getByLabel("Document A (old)").setInputFiles(a1);
  await page.getByLabel("Document B (new)").setInputFiles(b1);
  await page.getByRole("button", { name: "Compare", exact: true }).click();
  await page.locator("#job-heading", { hasText: "compare #2" }).waitFor();
  const detail = page.locator("#job-detail");
  const bar = detail.getByRole("progressbar", { name: "Job progress" });
  await detail.locator("#job-status", { hasText: "QUEUED" }).waitFor();
  await detail.locator("#job-live", { hasText: "Live" }).waitFor();
  assert.equal(await bar.getAttribute("aria-valuenow"), "0");
  // Every value the bar takes from here on comes from the job's event stream.
  await page.evaluate(() => {
    window.barValues = [];
    new MutationObserver((changes) => {
      for (const c of changes) if (c.target.id === "job-progress") window.barValues.push(Number(c.target.getAttribute("aria-valuenow")));
    }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["aria-valuenow"] });
  });
  step("release the worker; watch the bar reach 100 %");
  hold.release("one");
  await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();
  await page.waitForFunction(() => document.querySelector("#job-progress")?.getAttribute("aria-valuenow") === "100");
  const values = await page.evaluate(() => window.barValues);
  assert.equal(values.at(-1), 100, `bar values ${values}`);
  assert.ok(values.every((v, i) => i === 0 || v >= values[i - 1]), `the bar only moves forward: ${values}`);
  assert.equal(await bar.getAttribute("aria-valuemin"), "0");
  assert.equal(await bar.getAttribute("aria-valuemax"), "100");
  assert.match(await bar.getAttribute("aria-valuetext"), /^100 %/);
  const firstJobHash = decodeURIComponent(new URL(page.url()).hash.replace(/^#job=/, ""));
  assert.match(firstJobHash, /\/api\/v1\/jobs\/[0-9a-f-]{36}$/);
  // The stream was read with fetch (so it carried the key; checked below with every request).
  const calls = (await Promise.all(apiCalls)).filter(Boolean);
  const streams = calls.filter((c) => c.url === `${firstJobHash}/events`);
  assert.ok(streams.length >= 1, "the job's events link was followed");
  assert.ok(streams.every((c) => c.accept === "text/event-stream"), JSON.stringify(streams));
  // The timeline shows the job's messages up to its end.
  await detail.locator("#job-messages li", { hasText: "SUCCESS" }).first().waitFor();

  step("download the result");
  const fileLink = detail.getByRole("link", { name: "Download patch.json" });
  const href = new URL(await fileLink.getAttribute("href"), page.url()).href;
  const [download] = await Promise.all([page.waitForEvent("download"), fileLink.click()]);
  assert.equal(download.suggestedFilename(), "patch.json");
  const got = fs.readFileSync(await download.path());
  const direct = Buffer.from(await (await fetch(href, { headers: { authorization: `Bearer ${KEY}` } })).arrayBuffer());
  assert.ok(got.length > 0 && got.equals(direct), "the downloaded bytes are the file's bytes");
  const patch = JSON.parse(got.toString("utf8"));
  assert.ok(Array.isArray(patch) && patch.length >= 2, got.toString("utf8"));
  assert.ok(patch.some((op) => op.path === "/version" && op.value === 2), got.toString("utf8"));
  assert.ok(patch.some((op) => op.path === "/tools/1/name" && op.value === "currency converter"), got.toString("utf8"));

  // --- a second comparison, queued behind a job that holds the one worker, cancelled from the page
  step("hold the worker again");
  const heldJob = await hold.submit(base, "two");

  step("submit a second comparison and cancel it");
  const a2 = writeFile("a2.json", [1, 2, 3]);
  const b2 = writeFile("b2.json", [1, 2, 4]);
  await page.getByLabel("Document A (old)").setInputFiles(a2);
  await page.getByLabel("Document B (new)").setInputFiles(b2);
  await page.getByRole("button", { name: "Compare", exact: true }).click();
  await page.waitForFunction((first) => location.hash && decodeURIComponent(location.hash.slice(5)) !== first, firstJobHash);
  await detail.locator("#job-status", { hasText: "QUEUED" }).waitFor();
  assert.equal(await detail.getByRole("button", { name: "Restart", exact: true }).count(), 0, "no restart link while queued");
  await detail.getByRole("button", { name: "Cancel", exact: true }).click();
  await detail.locator("#job-status", { hasText: "CANCELLED" }).waitFor();
  await detail.getByRole("button", { name: "Restart", exact: true }).waitFor();
  assert.equal(await detail.getByRole("button", { name: "Cancel", exact: true }).count(), 0, "no cancel link once cancelled");
  await detail.locator("#job-messages li", { hasText: "CANCELLED" }).first().waitFor();

  // --- the collection: filters and the list rows
  step("filter the collection by status");
  await page.getByRole("checkbox", { name: "Cancelled" }).check();
  await page.getByRole("button", { name: "Apply filters", exact: true }).click();
  await page.locator("#list-count", { hasText: "1 matching job;" }).waitFor();
  assert.equal(await page.locator("#job-list li[data-job]").count(), 1);
  await page.locator("#job-list li", { hasText: "CANCELLED" }).waitFor();
  await page.getByRole("button", { name: "Clear", exact: true }).click();
  await page.locator("#list-count", { hasText: "4 matching jobs;" }).waitFor();
  await page.getByLabel("Page size").fill("1");
  await page.getByRole("button", { name: "Apply filters", exact: true }).click();
  await page.locator("#list-count", { hasText: "4 matching jobs; 1 on this page" }).waitFor();
  await page.getByRole("button", { name: "Next page", exact: true }).click();
  await page.getByRole("button", { name: "Previous page", exact: true }).waitFor({ state: "visible" });
  await page.waitForFunction(() => !document.querySelector("#page-prev").disabled);
  await page.getByLabel("Page size").fill("20");
  await page.getByRole("button", { name: "Apply filters", exact: true }).click();
  await page.locator("#list-count", { hasText: "4 matching jobs; 4 on this page" }).waitFor();

  // --- a problem document, shown readably
  step("a bad submission shows its problem document");
  await page.getByLabel(/Records as JSON/).fill("{\"data\": [ ");
  await page.getByRole("button", { name: "Import", exact: true }).click();
  const problem = page.getByRole("alert");
  await problem.locator(".problem-title", { hasText: "Bad Request (HTTP 400)" }).waitFor();
  assert.match(await problem.innerText(), /JSON/);
  await problem.getByRole("button", { name: "Dismiss", exact: true }).click();
  assert.deepEqual(failedAnswers, [`POST ${base}/api/v1/imports 400`], "failed answers");

  // --- the event stream survives a restart of the service: it resumes with Last-Event-ID
  step("follow the held job, restart the service under it");
  await page.getByRole("button", { name: "compare #3", exact: true }).click();
  await page.locator("#job-heading", { hasText: "compare #3" }).waitFor();
  await detail.locator("#job-status", { hasText: "PROCESSING" }).waitFor();
  await detail.locator("#job-live", { hasText: "Live" }).waitFor();
  const before = (await Promise.all(apiCalls)).filter(Boolean).length;
  const how = await service.stop();
  assert.equal(how.code, 0, `graceful stop: ${JSON.stringify(how)}`);
  await detail.locator("#job-live", { hasText: "reconnecting" }).waitFor();
  service = await startService(service.port);
  hold.release("two");
  step("the held job ends once its input arrives; the page sees it on the resumed stream");
  assert.equal((await waitEnd(heldJob)).jobStatus, "SUCCESS");
  await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();
  await page.waitForFunction(() => document.querySelector("#job-progress")?.getAttribute("aria-valuenow") === "100");
  const resumed = (await Promise.all(apiCalls)).filter(Boolean).slice(before).filter((c) => c.url === `${heldJob}/events`);
  assert.ok(resumed.length >= 1 && resumed.every((c) => /^\d+$/.test(c.lastEventId || "")), `resumed with Last-Event-ID: ${JSON.stringify(resumed)}`);
  assert.equal((await (await fetch(heldJob, { headers: { accept: "application/json" } })).json()).attempt, 2);
  await detail.getByRole("link", { name: "Download patch.json" }).waitFor();
  await detail.locator("#job-messages li", { hasText: "SUCCESS" }).first().waitFor();

  // --- an import pasted as JSON
  step("import pasted records");
  await page.getByLabel(/Records as JSON/).fill(JSON.stringify({ data: [{ tool_id: "T1", tool_name: "Scraper", category: "Data", url: "https://example.com/t1" }] }));
  await page.getByRole("button", { name: "Import", exact: true }).click();
  await page.locator("#job-heading", { hasText: "import #5" }).waitFor();
  await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();
  assert.match(await detail.locator("pre").innerText(), /"importedRecords": 1/);

  // --- every API request carried the key
  const all = (await Promise.all(apiCalls)).filter(Boolean);
  const withKey = all.slice(keyCallsFrom);
  assert.ok(withKey.length >= 10, `${withKey.length} API requests`);
  const bad = withKey.filter((c) => c.auth !== `Bearer ${KEY}`);
  assert.deepEqual(bad, [], "requests without the key");

  // --- the key survives a reload (sessionStorage); the open job comes back from the address
  step("reload");
  await page.reload();
  assert.equal(await page.getByLabel("API key").inputValue(), KEY);
  await page.locator("#job-heading", { hasText: "import #5" }).waitFor();
  await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();

  // --- deep links: the address the page writes, the job's id instead of its href, `/ui` without
  // the slash and `/ui/jobs/{id}` all open the job when pasted, and a reload keeps it open
  const importHref = decodeURIComponent(new URL(page.url()).hash.replace(/^#job=/, ""));
  const importId = importHref.split("/").pop();
  for (const url of [
    `${base}/ui/#job=${encodeURIComponent(importHref)}`,
    `${base}/ui/#job=${importId}`,
    `${base}/ui#job=${importId}`,
    `${base}/ui/jobs/${importId}`,
  ]) {
    step(`deep link ${url.slice(base.length)}`);
    await page.goto("about:blank");
    await page.goto(url);
    for (let i = 0; i < 2; i += 1) {
      await page.locator("#job-heading", { hasText: "import #5" }).waitFor();
      await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();
      assert.ok(await page.locator("#problem").isHidden(), `no problem after ${url}: ${await page.locator("#problem").innerText()}`);
      assert.equal(new URL(page.url()).pathname, "/ui/");
      assert.equal(await page.getByLabel("API key").inputValue(), KEY);
      if (i === 0) await page.reload();
    }
  }

  await page.screenshot({ path: screenshot, fullPage: true });

  // --- 1400×900: the filters and at least ten jobs fit on the screen together
  step("1400×900: ten jobs visible beside the filters");
  for (let i = 0; i < 7; i += 1) {
    const r = await fetch(`${base}/api/v1/imports`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ data: [{ tool_id: `L${i}`, tool_name: "Lister", category: "Data", url: `https://example.com/l${i}` }] }),
    });
    assert.ok(r.ok, `${r.status} ${await r.text()}`);
  }
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.reload();
  await page.locator("#list-count", { hasText: "12 matching jobs;" }).waitFor();
  const fits = await page.evaluate(() => {
    const inside = (el) => {
      const r = el.getBoundingClientRect();
      return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth;
    };
    return {
      jobs: [...document.querySelectorAll("#job-list li[data-job]")].filter(inside).length,
      filters: ["#filter-form legend", "#f-operation", "#f-sort", "#f-limit"].every((s) => inside(document.querySelector(s))),
    };
  });
  assert.ok(fits.filters, "the filters are on the screen");
  assert.ok(fits.jobs >= 10, `${fits.jobs} jobs wholly visible at 1400×900`);
  await page.screenshot({ path: path.join(shots, "jobs-1400x900.png") });

  // --- 360 px wide: nothing sticks out sideways
  step("360 px wide");
  await page.setViewportSize({ width: 360, height: 800 });
  await page.waitForFunction(() => window.innerWidth === 360);
  const overflow = await page.evaluate(() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll("body *")]
      .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 0.5)
      .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`);
    return { scroll: doc.scrollWidth, client: doc.clientWidth, wide: wide.slice(0, 10) };
  });
  assert.ok(overflow.scroll <= overflow.client, `horizontal overflow at 360 px: ${JSON.stringify(overflow)}`);
  assert.deepEqual(overflow.wide, [], "elements wider than 360 px");
  await page.screenshot({ path: narrowShot, fullPage: true });

  // --- keyboard: the controls are reachable and the focus is visible
  step("keyboard");
  await page.setViewportSize({ width: 1400, height: 1000 });
  await page.reload();
  await page.getByRole("heading", { name: "Jobs" }).waitFor();
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => {
    const el = document.activeElement;
    return { text: el.textContent, outline: getComputedStyle(el).outlineStyle };
  });
  assert.equal(first.text, "Skip to the jobs");
  assert.notEqual(first.outline, "none", "focus is visible");
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label"))
      .map((el) => el.id || el.name));
  assert.deepEqual(unlabelled, [], "controls without a label");

  assert.deepEqual(offsite, [], "requests that left the service");
  assert.deepEqual(pageErrors, [], "errors on the page");
  await keyedDashboard(context);
  await docsWithKey(context);
  await liveConsole(context);
  await overviewPage(context);
  step(`screenshots in ${shots}: ${fs.readdirSync(shots).join(", ")}`);
}

/** Submit a job from outside the page (as curl would), with the test's key. */
async function submitJob(base, body) {
  const r = await fetch(`${base}/api/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
  });
  assert.equal(r.status, 201, await r.clone().text());
  return r.json();
}

/** The live console: a job submitted from outside appears in the list without Refresh, and the
 *  open job's log shows the lines its operation writes while it runs, each once. */
async function liveConsole(context) {
  step("live list: a job submitted with curl appears without Refresh");
  const service = await startService(undefined, "live.db");
  const page = await context.newPage();
  const eventRequests = [];
  page.on("request", (r) => { if (new URL(r.url()).pathname === "/api/v1/events") eventRequests.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${service.base}/ui/`);
  await page.locator("#list-count", { hasText: /^0 matching jobs;/ }).waitFor();
  await page.locator("#list-live", { hasText: "Live" }).waitFor();
  const quick = await submitJob(service.base, { operation: "noop", correlationId: "smoke-check-1" });
  const row = page.locator(`#job-list li[data-job="${quick.jobId}"]`);
  await row.waitFor();
  await row.locator(".badge", { hasText: "SUCCESS" }).waitFor();

  step("live log: the lines an operation writes appear while it runs");
  const lines = ["reading the first part", "reading the second part", "reading the last part"];
  const slow = await submitJob(service.base, { operation: "noop", input: { log: lines, pauseMs: 1500 } });
  const slowRow = page.locator(`#job-list li[data-job="${slow.jobId}"]`);
  await slowRow.getByRole("button", { name: `noop #${slow.taskId}`, exact: true }).click();
  const detail = page.locator("#job-detail");
  await page.locator("#job-heading", { hasText: `noop #${slow.taskId}` }).waitFor();
  await detail.locator("#job-messages li", { hasText: lines[0] }).waitFor();
  const status = await detail.locator("#job-status").innerText();
  assert.ok(!/SUCCESS/.test(status), `the first line came while the job ran (${status})`);
  await detail.locator("#job-messages li", { hasText: lines[2] }).waitFor();
  await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();
  for (const line of lines) {
    assert.equal(await detail.locator("#job-messages li", { hasText: line }).count(), 1, `"${line}" once`);
  }
  // Both jobs, in one list, from one stream of the collection, and counted.
  assert.equal(await page.locator("#job-list li[data-job]").count(), 2);
  await page.locator("#list-count", { hasText: /^2 matching jobs; 2 on this page\./ }).waitFor();
  assert.equal(new Set(eventRequests).size, 1, `one collection stream: ${eventRequests}`);
  await page.screenshot({ path: path.join(shots, "live-log.png"), fullPage: true });

  step("find a job by the start of its correlation id, then of its id");
  await page.getByLabel("Find by id").fill("SMOKE-check");
  await page.getByRole("button", { name: "Apply filters", exact: true }).click();
  await page.locator("#list-count", { hasText: "1 matching job;" }).waitFor();
  assert.equal(await page.locator(`#job-list li[data-job="${quick.jobId}"]`).count(), 1);
  await page.getByLabel("Find by id").fill(slow.jobId.slice(0, 30));
  await page.getByRole("button", { name: "Apply filters", exact: true }).click();
  await page.locator(`#job-list li[data-job="${slow.jobId}"]`).waitFor();
  await page.locator("#list-count", { hasText: "1 matching job;" }).waitFor();

  step("bulk: cancel the 50 queued jobs behind a busy worker with one button");
  const holder = await submitJob(service.base, { operation: "noop", input: { log: ["hold 1", "hold 2", "hold 3"], pauseMs: 4000 } });
  const holderHref = holder.links.find((l) => l.rel === "self").href;
  for (let i = 0; i < 50; i += 1) {
    const r = await fetch(holderHref, { headers: { accept: "application/json", authorization: `Bearer ${KEY}` } });
    if ((await r.json()).jobStatus !== "QUEUED") break;
    await sleep(100);
  }
  const queued = [];
  for (let i = 0; i < 50; i += 1) queued.push((await submitJob(service.base, { operation: "noop", correlationId: `bulk-${i}` })).jobId);
  await page.getByLabel("Find by id").fill("");
  await page.getByRole("checkbox", { name: "Queued" }).check();
  await page.getByRole("button", { name: "Apply filters", exact: true }).click();
  await page.locator("#list-count", { hasText: /^50 matching jobs;/ }).waitFor();
  await page.getByRole("button", { name: "Cancel all", exact: true }).click();
  await page.locator("#confirm-text", { hasText: "Cancel the 50 jobs matching these filters?" }).waitFor();
  await page.locator("#confirm-yes").click();
  await page.locator("#job-heading", { hasText: "bulk #" }).waitFor();
  await detail.locator("#job-status", { hasText: "SUCCESS" }).waitFor();
  assert.match(await detail.locator("pre").innerText(), /"acted": 50/);
  // The live list saw each of them leave the QUEUED filter.
  await page.locator("#list-count", { hasText: /^0 matching jobs; 0 on this page/ }).waitFor();
  assert.equal(await page.locator("#job-list li[data-job]").count(), 0);
  const cancelled = await (await fetch(`${service.base}/api/v1/jobs?status=CANCELLED&search=bulk-`, { headers: { accept: "application/json", authorization: `Bearer ${KEY}` } })).json();
  assert.equal(cancelled.count, 50, JSON.stringify(cancelled).slice(0, 300));
  assert.deepEqual(new Set(cancelled.jobs.map((j) => j.jobId)), new Set(queued));
  const held = await (await fetch(holderHref, { headers: { accept: "application/json", authorization: `Bearer ${KEY}` } })).json();
  assert.notEqual(held.jobStatus, "CANCELLED", "the running job was not queued, so it was left alone");
  await page.screenshot({ path: path.join(shots, "bulk-cancel.png"), fullPage: true });
  assert.deepEqual(errors, [], "errors on the page");
  await page.close();
  await service.stop();
}

/** Wait until `href` (a job) is in one of `statuses`. */
async function waitStatus(href, statuses) {
  for (let i = 0; i < 300; i += 1) {
    const job = await (await fetch(href, { headers: { accept: "application/json", authorization: `Bearer ${KEY}` } })).json();
    if (statuses.includes(job.jobStatus)) return job;
    await sleep(100);
  }
  throw new Error(`${href} never reached ${statuses}`);
}

/** The Overview: counts per status, the ends chart, each operation's queue and the instances,
 *  kept current from the collection's stream; a status opens the list with that filter. */
async function overviewPage(context) {
  step("overview: counts, ends, queues and instances from /api/v1/stats, live");
  const service = await startService(undefined, "overview.db");
  const { base } = service;
  const self = (job) => job.links.find((l) => l.rel === "self").href;
  for (let i = 0; i < 3; i += 1) await waitStatus(self(await submitJob(base, { operation: "noop" })), ["SUCCESS"]);
  // One job holds the only worker, so the next four wait in the queue; one of them is cancelled.
  const holder = await submitJob(base, { operation: "noop", input: { log: ["hold 1", "hold 2", "hold 3", "hold 4"], pauseMs: 8000 } });
  await waitStatus(self(holder), ["PROCESSING", "STARTED"]);
  const waiting = [];
  for (let i = 0; i < 4; i += 1) waiting.push(await submitJob(base, { operation: "noop", correlationId: `ov-${i}` }));
  const cancel = waiting[0].links.find((l) => l.rel === "cancel");
  const r = await fetch(cancel.href, { method: cancel.method || "POST", headers: { accept: "application/json", authorization: `Bearer ${KEY}` } });
  assert.equal(r.status, 200, await r.text());

  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const streams = [];
  page.on("request", (req) => { if (new URL(req.url()).pathname === "/api/v1/events") streams.push(req.url()); });
  await page.goto(`${base}/ui/#overview`);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  assert.equal(await page.locator("#tab-overview").getAttribute("aria-current"), "page");
  assert.ok(await page.locator("#jobs-view").isHidden(), "the jobs view is hidden");
  const tile = (status) => page.locator(`#ov-tiles [data-status="${status}"] .n`);
  await page.locator("#ov-tiles .total .n", { hasText: /^8$/ }).waitFor();
  await tile("SUCCESS").filter({ hasText: /^3$/ }).waitFor();
  assert.equal(await tile("QUEUED").innerText(), "3");
  assert.equal(await tile("CANCELLED").innerText(), "1");
  // The open service covers every tenant: the field to pick one is there.
  assert.ok(await page.locator("#ov-tenant-form").isVisible());
  await page.locator("#ov-scope", { hasText: "All tenants" }).waitFor();

  const noop = page.locator('#ov-queues tr[data-operation="noop"] td');
  assert.equal(await noop.nth(0).innerText(), "3", "queued");
  assert.equal(await noop.nth(1).innerText(), "1", "running");
  assert.match(await noop.nth(3).innerText(), / ago$/, "the oldest queued job's wait");
  assert.match(await noop.nth(4).innerText(), /ms|s/, "run times of the last hour");
  const node = page.locator("#ov-nodes tbody tr");
  assert.equal(await node.count(), 1);
  assert.match(await node.innerText(), /all[\s\S]*alive/);

  // Ended jobs, per minute for the last hour: 3 completed and 1 cancelled, in the last bar.
  assert.equal(await page.locator("#ov-ends svg .period").count(), 60);
  await page.locator("#ov-ends-sum", { hasText: "3 completed, 0 failed, 1 cancelled" }).waitFor();
  assert.match(await page.locator("#ov-ends svg .period title").last().textContent(), /3 completed, 0 failed, 1 cancelled/);
  await page.getByRole("button", { name: "Last 48 hours", exact: true }).click();
  assert.equal(await page.locator("#ov-ends svg .period").count(), 48);
  assert.match(await page.locator("#ov-ends-sum").innerText(), /last 48 hours, per hour: 3 completed/);

  step("overview: a job submitted with curl is counted without a reload");
  await submitJob(base, { operation: "noop", correlationId: "ov-live" });
  await page.locator("#ov-tiles .total .n", { hasText: /^9$/ }).waitFor({ timeout: 5000 });
  await tile("QUEUED").filter({ hasText: /^4$/ }).waitFor({ timeout: 5000 });
  await page.locator("#ov-depth svg polyline.l-queued").waitFor({ timeout: 15000 });
  await page.screenshot({ path: path.join(shots, "overview.png"), fullPage: true });
  await page.setViewportSize({ width: 360, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the overview fits 360 px (${overflow} px too wide)`);
  await page.screenshot({ path: path.join(shots, "overview-360.png"), fullPage: true });
  await page.setViewportSize({ width: 1400, height: 1000 });

  step("overview: a status opens the jobs with that status");
  await page.locator('#ov-tiles [data-status="CANCELLED"]').click();
  await page.locator("#list-count", { hasText: /^1 matching job;/ }).waitFor();
  assert.equal(new URL(page.url()).hash, "#jobs");
  assert.ok(await page.getByRole("checkbox", { name: "Cancelled" }).isChecked());
  assert.equal(await page.locator(`#job-list li[data-job="${waiting[0].jobId}"]`).count(), 1);
  assert.ok(await page.locator("#overview").isHidden());
  assert.ok(streams.length >= 2, `the overview's stream, then the list's: ${streams}`);
  assert.deepEqual(errors, [], "errors on the page");
  await page.close();
  await service.stop();
}

/** The dashboard on a service with API keys: the 401 shown without a key goes away once a
 *  request with the given key succeeds, and the operation filter is filled with the key. */
async function keyedDashboard(context) {
  step("dashboard with API keys: a key clears the 401 and fills the operations");
  const dbUrl = `sqlite://${tmp}/keyed.db?mode=rwc`;
  const key = execFileSync(bin, ["keys", "create", "--tenant", "t", "--scope", "admin", "--database-url", dbUrl],
    { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  assert.match(key, /^lr_/);
  const service = await startService(undefined, "keyed.db");
  const page = await context.newPage();
  await page.goto(`${service.base}/ui/`);
  const problem = page.getByRole("alert");
  await problem.locator(".problem-title", { hasText: "HTTP 401" }).waitFor();
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Use key", exact: true }).click();
  await problem.waitFor({ state: "hidden" });
  await page.locator("#list-count", { hasText: "0 matching jobs;" }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll("#f-operation option").length > 1);
  const ops = await page.locator("#f-operation option").allTextContents();
  assert.ok(ops.includes("compare") && ops.includes("import"), `operations: ${ops}`);
  // The overview of a tenant's key is that tenant's, with no field to pick another.
  await page.getByRole("link", { name: "Overview", exact: true }).click();
  await page.locator("#ov-scope", { hasText: "Tenant t" }).waitFor();
  assert.ok(await page.locator("#ov-tenant-form").isHidden());
  await page.close();
  await service.stop();
}

/** /docs on a service with API keys: "Try it out" answers 401 until the key is given with
 *  Authorize, then 200, and the request carried the key as a bearer token. */
async function docsWithKey(context) {
  step("/docs: Authorize, then Try it out");
  const dbUrl = `sqlite://${tmp}/docs.db?mode=rwc`;
  const key = execFileSync(bin, ["keys", "create", "--tenant", "docs", "--scope", "read", "--database-url", dbUrl],
    { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  assert.match(key, /^lr_/);
  const service = await startService(undefined, "docs.db");
  const page = await context.newPage();
  const sent = [];
  const elsewhere = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== service.base && u.protocol !== "data:") elsewhere.push(r.url());
    if (u.pathname === "/api/v1/operations") sent.push(r.headers().authorization);
  });
  await page.goto(`${service.base}/docs`);
  const op = page.locator("#operations-Service-listOperations");
  await op.locator(".opblock-summary").first().click();
  await op.getByRole("button", { name: "Try it out" }).click();
  const execute = async () => {
    await op.getByRole("button", { name: "Execute" }).click();
    const status = op.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor();
    const text = (await status.textContent()).trim();
    await op.getByRole("button", { name: "Clear" }).click();
    return text;
  };
  assert.match(await execute(), /^401/, "without Authorize, the key is missing");
  await page.locator(".auth-wrapper button.authorize").click();
  const dialog = page.locator(".dialog-ux .modal-ux");
  await dialog.locator("input").first().fill(key);
  await dialog.locator("button.modal-btn.authorize").click();
  await dialog.locator("button.btn-done").click();
  assert.match(await execute(), /^200/, "with the key, Try it out works");
  assert.equal(sent.at(-1), `Bearer ${key}`);
  assert.deepEqual(elsewhere, [], "/docs loads nothing from elsewhere");
  await page.close();
  await service.stop();
}

let failed = false;
try {
  await main();
  console.log("ui: all checks passed");
} catch (e) {
  failed = true;
  console.error(`ui: FAILED: ${e.stack || e}`);
  const log = path.join(tmp, "service.log");
  if (fs.existsSync(log)) console.error(`--- service log (last lines)\n${fs.readFileSync(log, "utf8").split("\n").slice(-40).join("\n")}`);
} finally {
  for (const c of cleanups) {
    try { await c(); } catch { /* already gone */ }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
