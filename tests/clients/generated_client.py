"""An import walked with the Python client that openapi-python-client generates from
openapi/openapi.yaml, used as generated: submit, poll the job until it ends, read the result,
download the file. `.ci/run` generates the client, installs it and runs this against the service.

    python tests/clients/generated_client.py http://127.0.0.1:8080
"""

import json
import sys
import time

from longrun_client import Client
from longrun_client.api.downloads import download
from longrun_client.api.imports import submit_import
from longrun_client.api.jobs import get_job, get_job_result, list_jobs
from longrun_client.models import (
    ImportRequest,
    ImportRequestDataItem,
    JobDoc,
    JobStatusDoc,
    ResultDoc,
)
from longrun_client.types import File


def main(base_url: str) -> None:
    client = Client(base_url=base_url)

    # Submit: 201 with the job and its Location.
    # Records are free-form objects in the document (a record that does not fit fails on its
    # own, with its reason), so the generated item type takes them as a mapping.
    body = ImportRequest(
        data=[
            ImportRequestDataItem.from_dict({"tool_id": "G1", "tool_name": "Generated",
                                             "category": "Clients", "features": [],
                                             "url": "https://example.com/generated"}),
            ImportRequestDataItem.from_dict({"tool_id": "G2", "tool_name": "Broken",
                                             "category": "Clients", "features": [],
                                             "url": "not a url"}),
        ]
    )
    answer = submit_import.sync_detailed(client=client, body=body)
    assert answer.status_code == 201, (answer.status_code, answer.content)
    job = answer.parsed
    assert isinstance(job, JobDoc), job
    assert answer.headers["location"].endswith(str(job.job_id)), answer.headers
    etag = answer.headers.get("etag")

    # Poll the job while it has a monitor link, each request held until it changes.
    deadline = time.monotonic() + 120
    while any(link.rel == "monitor" for link in job.links):
        assert time.monotonic() < deadline, "the job did not end"
        answer = get_job.sync_detailed(str(job.job_id), client=client, prefer="wait=30",
                                       if_none_match=etag)
        if answer.status_code == 304:
            continue
        assert answer.status_code == 200, (answer.status_code, answer.content)
        job = answer.parsed
        etag = answer.headers.get("etag")
        print(f"{job.job_status.value} stage {job.current_stage}/{job.total_number_of_stages}")
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
    # The audit collection, with no filter at all: every parameter is optional.
    listed = list_jobs.sync_detailed(client=client)
    assert listed.status_code == 200, (listed.status_code, listed.content)
    ids = [j["jobId"] for j in json.loads(listed.content)["jobs"]]
    assert str(job.job_id) in ids, ids
    print(f"generated client: job {job.job_id} SUCCESS, report of {len(report)} failed record(s)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
