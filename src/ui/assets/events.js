// Server-sent event streams (a job's events, the collection's changes, a job's log), read with
// fetch() so the Authorization header can be sent (EventSource cannot send headers). A stream is
// parsed here line by line as the text/event-stream format says; when it drops before its end it
// is opened again with Last-Event-ID, so only newer events arrive.

import { authHeaders, problemOf } from "./api.js";

export const END_STATES = new Set(["SUCCESS", "FAILED", "CANCELLED", "DELETED"]);

/** Incremental parser of text/event-stream: push decoded text, get events. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.lastId = "";
    this.retry = null;
    this.started = false;
  }

  push(text) {
    if (!this.started) {
      text = text.replace(/^\uFEFF/, "");
      this.started = true;
    }
    this.buffer += text;
    for (;;) {
      const i = this.buffer.search(/[\r\n]/);
      if (i < 0) return;
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (this.buffer[i] === "\r" && i === this.buffer.length - 1) return;
      const width = this.buffer.startsWith("\r\n", i) ? 2 : 1;
      const line = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + width);
      this.line(line);
    }
  }

  line(line) {
    if (line === "") {
      if (this.data.length > 0) {
        this.onEvent({ type: this.type || "message", data: this.data.join("\n"), id: this.lastId });
      }
      this.data = [];
      this.type = "";
      return;
    }
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.type = value;
        break;
      case "id":
        if (!value.includes("\0")) this.lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break; // unknown fields are ignored
    }
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });

/**
 * Follow a server-sent event stream at `href` until `stop()`: `onEvent(ev)` gets every event
 * ({type, data, id}) and returns true when it was the last one wanted; `onState(state, problem)`
 * gets "live" | "reconnecting" | "ended" | "failed" | "stopped". A stream that drops is opened
 * again with Last-Event-ID, so only newer events arrive; with `endOnClose`, a stream the service
 * closes cleanly has ended (a job's log closes after the job's end).
 */
export class Follow {
  constructor(href, { onEvent, onState = () => {}, endOnClose = false }) {
    this.href = href;
    this.onEvent = onEvent;
    this.onState = onState;
    this.endOnClose = endOnClose;
    this.lastId = "";
    this.controller = new AbortController();
    this.done = this.run();
  }

  stop() {
    if (!this.controller.signal.aborted) {
      this.controller.abort();
      this.onState("stopped");
    }
  }

  async run() {
    const signal = this.controller.signal;
    let wait = 500;
    while (!signal.aborted) {
      let ended = false;
      try {
        const headers = authHeaders({ Accept: "text/event-stream" });
        if (this.lastId) headers.set("Last-Event-ID", this.lastId);
        const response = await fetch(this.href, { headers, signal, cache: "no-store" });
        if (!response.ok) {
          const problem = await problemOf(response);
          // The job is gone, or the request is refused: asking again will not help.
          if (response.status < 500 && response.status !== 429) {
            this.onState("failed", problem);
            return;
          }
          throw problem;
        }
        this.onState("live");
        const parser = new SseParser((ev) => {
          if (ev.id) this.lastId = ev.id;
          if (this.onEvent(ev)) ended = true;
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
          wait = parser.retry ?? 500;
        }
        // An event left unfinished when the stream ends is dropped, as the format says.
        if (this.endOnClose) ended = true;
      } catch (e) {
        if (signal.aborted) return;
        this.onState("reconnecting", e);
      }
      if (ended) {
        this.onState("ended");
        return;
      }
      // The stream closed before its end: open it again after a pause.
      this.onState("reconnecting");
      await sleep(wait, signal);
      wait = Math.min(wait * 2, 15000);
    }
  }
}

/**
 * Follow a job's `events` link until its end state or `stop()`.
 * `onJob(job)` gets every job document; `onState(state, problem)` as for `Follow`.
 */
export class JobStream extends Follow {
  constructor(href, { onJob, onState = () => {} }) {
    super(href, {
      onState,
      onEvent: (ev) => {
        if (ev.type !== "job") return false;
        const job = JSON.parse(ev.data);
        onJob(job);
        return END_STATES.has(job.jobStatus);
      },
    });
  }
}
