"""The service walked with the Python client that openapi-python-client generates from
openapi/openapi.yaml, used as generated: an import of typed records (one good, one with a bad
url) followed from its absolute Location through the job's `monitor` link to the result and the
file it names; a synchronous XML comparison whose delta comes back as bytes; the audit list with
no arguments. `.ci/run` generates the client (with the settings in openapi-python-client.yaml),
installs it and runs this against the service, with the key in LONGRUN_API_KEY when the service
requires one:

    LONGRUN_API_KEY=… python tests/clients/generated_client.py http://127.0.0.1:8080
"""

import json
import os
import sys
import time

from longrun_client import AuthenticatedClient, Client
from longrun_client.api.comparisons import compare
from longrun_client.api.downloads import download
from longrun_client.api.imports import submit_import
from longrun_client.api.jobs import get_job_result, list_jobs
from longrun_client.models import (
    CompareInput,
    CompareRequest,
    ImportRequest,
    JobDoc,
    JobListDoc,
    JobStatusDoc,
    ResultDoc,
    ToolRecord,
)
from longrun_client.types import File


def link(links, rel):
    return next((l.href for l in links if l.rel == rel), None)


def main(base_url: str) -> None:
    key = os.environ.get("LONGRUN_API_KEY")
    client = AuthenticatedClient(base_url=base_url, token=key) if key else Client(base_url=base_url)

    # Submit: 201 with the job and its Location. The records are typed; the bad url fails on
    # its own, with its reason, and the import goes on.
    body = ImportRequest(
        data=[
            ToolRecord(tool_id="G1", tool_name="Generated", category="Clients", features=[],
                       url="https://example.com/generated"),
            ToolRecord(tool_id="G2", tool_name="Broken", category="Clients", url="not a url"),
        ]
    )
    answer = submit_import.sync_detailed(client=client, body=body)
    assert answer.status_code == 201, (answer.status_code, answer.content)
    job = answer.parsed
    assert isinstance(job, JobDoc), job
    location = answer.headers["location"]
    assert location.startswith(("http://", "https://")), location

    # Follow Location, then the job's monitor link while it has one, each href as it comes: the
    # client's own httpx client (base URL and key included) takes an absolute URL. Each request
    # is held until the job changes (Prefer: wait) or answers 304 when it has not.
    http = client.get_httpx_client()
    deadline = time.monotonic() + 120
    href, etag = location, None
    while href is not None:
        assert time.monotonic() < deadline, "the job did not end"
        headers = {"Accept": "application/json", "Prefer": "wait=30"}
        if etag:
            headers["If-None-Match"] = etag
        r = http.get(href, headers=headers)
        if r.status_code == 304:
            continue
        assert r.status_code == 200, (href, r.status_code, r.text)
        job = JobDoc.from_dict(r.json())
        etag = r.headers.get("etag")
        print(f"{job.job_status.value} stage {job.current_stage}/{job.total_number_of_stages}")
        href = link(job.links, "monitor")
    assert job.job_status == JobStatusDoc.SUCCESS, job

    # The result and its file.
    result = get_job_result.sync(str(job.job_id), client=client)
    assert isinstance(result, ResultDoc), result
    assert result.summary["importedRecords"] == 1, result.summary
    assert result.summary["failedRecords"] == 1, result.summary
    assert len(result.files) == 1, result.files
    file = download.sync(str(result.files[0].file_id), client=client)
    assert isinstance(file, File), file
    report = json.loads(file.payload.read())
    assert [r["tool_id"] for r in report] == ["G2"], report
    assert "url" in report[0]["reason"], report
    print(f"generated client: job {job.job_id} SUCCESS, {report[0]['tool_id']}: {report[0]['reason']}")

    # A synchronous comparison of two XML documents: without `async` the answer is the delta
    # document itself (200, application/xml), handed back as bytes.
    compared = compare.sync_detailed(
        client=client,
        body=CompareRequest(
            input_a=CompareInput(content='<catalog><item id="1" price="5">Pen</item></catalog>'),
            input_b=CompareInput(content='<catalog><item id="1" price="6">Pen</item></catalog>'),
        ),
    )
    assert compared.status_code == 200, (compared.status_code, compared.content)
    assert compared.headers["content-type"].startswith("application/xml"), compared.headers
    delta = compared.parsed
    assert isinstance(delta, File), delta
    xml = delta.payload.read()
    assert isinstance(xml, bytes) and xml.startswith(b"<d:delta"), xml
    assert b'old="5"' in xml and b'new="6"' in xml, xml
    print(f"generated client: synchronous comparison, a delta of {len(xml)} bytes")

    # The audit collection, with no filter at all: every parameter is optional.
    listed = list_jobs.sync(client=client)
    assert isinstance(listed, JobListDoc), listed
    ids = [str(j.job_id) for j in listed.jobs]
    assert str(job.job_id) in ids, ids
    print(f"generated client: list_jobs() lists {len(ids)} job(s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
