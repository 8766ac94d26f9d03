// An import walked with openapi-fetch over the types openapi-typescript generates from
// openapi/openapi.yaml, used as generated: submit typed records (one good, one with a bad url),
// follow the absolute Location and the job's `monitor` link until it is gone (each request held
// with `Prefer: wait=30` and `If-None-Match`), read the result, download the file it names and
// find the bad record's reason in it. `.ci/run` generates the types, checks this program with
// `tsc --strict` and runs it:
//
//     LONGRUN_API_KEY=… node generated/js/typescript/walk.js http://127.0.0.1:8080
import createClient from "openapi-fetch";

import type { components, paths } from "../generated/openapi-typescript/schema";

type JobDoc = components["schemas"]["JobDoc"];
type LinkDoc = components["schemas"]["LinkDoc"];
type ToolRecord = components["schemas"]["ToolRecord"];

const base = process.argv[2] ?? "http://127.0.0.1:8080";
const key = process.env.LONGRUN_API_KEY;
const auth: Record<string, string> = key ? { Authorization: `Bearer ${key}` } : {};

function fail(message: string): never {
  throw new Error(message);
}

function isLink(v: unknown): v is LinkDoc {
  return (
    typeof v === "object" && v !== null &&
    "rel" in v && typeof v.rel === "string" &&
    "href" in v && typeof v.href === "string" &&
    "method" in v && typeof v.method === "string"
  );
}

// A job document read from a link (links are followed with fetch, as they come).
function isJobDoc(v: unknown): v is JobDoc {
  return (
    typeof v === "object" && v !== null &&
    "jobId" in v && typeof v.jobId === "string" &&
    "jobStatus" in v && typeof v.jobStatus === "string" &&
    "links" in v && Array.isArray(v.links) && v.links.every(isLink)
  );
}

function href(links: LinkDoc[], rel: string): string | undefined {
  return links.find((l) => l.rel === rel)?.href;
}

async function main(): Promise<void> {
  const client = createClient<paths>({ baseUrl: base, headers: auth });

  // Submit: records typed as ToolRecord; the bad url fails on its own.
  const records: ToolRecord[] = [
    { tool_id: "TS1", tool_name: "Typed", category: "Clients", features: ["typed"], url: "https://example.com/ts" },
    { tool_id: "TS2", tool_name: "Broken", category: "Clients", url: "not a url" },
  ];
  const submitted = await client.POST("/api/v1/imports", { body: { data: records } });
  if (submitted.response.status !== 201 || !submitted.data) {
    fail(`submit answered ${submitted.response.status}: ${JSON.stringify(submitted.error)}`);
  }
  const location = submitted.response.headers.get("location") ?? fail("no Location");
  if (!/^https?:\/\//.test(location)) fail(`Location is not absolute: ${location}`);

  // Follow Location, then `monitor` while there is one, each as it comes.
  let next: string | undefined = location;
  let etag: string | null = null;
  let job: JobDoc = submitted.data;
  const deadline = Date.now() + 120_000;
  while (next !== undefined) {
    if (Date.now() > deadline) fail("the job did not end");
    const headers: Record<string, string> = { ...auth, Accept: "application/json", Prefer: "wait=30" };
    if (etag) headers["If-None-Match"] = etag;
    const r = await fetch(next, { headers });
    if (r.status === 304) continue;
    if (r.status !== 200) fail(`${next} answered ${r.status}: ${await r.text()}`);
    const doc: unknown = await r.json();
    if (!isJobDoc(doc)) fail(`not a job: ${JSON.stringify(doc)}`);
    job = doc;
    etag = r.headers.get("etag");
    console.log(`${job.jobStatus} stage ${job.currentStage}/${job.totalNumberOfStages}`);
    next = href(job.links, "monitor");
  }
  if (job.jobStatus !== "SUCCESS") fail(`the job ended ${job.jobStatus}`);

  // The result, then the file it names, through the generated paths.
  const result = await client.GET("/api/v1/jobs/{id}/result", { params: { path: { id: job.jobId } } });
  if (!result.data) fail(`result answered ${result.response.status}`);
  const summary = result.data.summary;
  if (
    typeof summary !== "object" || summary === null ||
    !("importedRecords" in summary) || summary.importedRecords !== 1 ||
    !("failedRecords" in summary) || summary.failedRecords !== 1
  ) {
    fail(`unexpected summary ${JSON.stringify(summary)}`);
  }
  const file = result.data.files[0] ?? fail("the result names no file");
  const downloaded = await client.GET("/downloads/{file_id}", {
    params: { path: { file_id: file.fileId } },
    parseAs: "text",
  });
  if (downloaded.response.status !== 200 || downloaded.data === undefined) {
    fail(`download answered ${downloaded.response.status}`);
  }
  const report: unknown = JSON.parse(downloaded.data);
  if (!Array.isArray(report) || report.length !== 1) fail(`unexpected report ${downloaded.data}`);
  const failed: unknown = report[0];
  if (
    typeof failed !== "object" || failed === null ||
    !("tool_id" in failed) || failed.tool_id !== "TS2" ||
    !("reason" in failed) || typeof failed.reason !== "string" || !failed.reason.includes("url")
  ) {
    fail(`the report does not give the bad record's reason: ${downloaded.data}`);
  }
  console.log(`openapi-typescript + openapi-fetch: job ${job.jobId} SUCCESS; ${file.name}: ${failed.reason}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
