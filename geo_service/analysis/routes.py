"""OGC API – Processes – Part 1: Core, over HTTP: `/processes`, execution (sync, or async with
`Prefer: respond-async`), `/jobs`, a job's status, results and dismissal."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response

from geo_service.analysis.inputs import InvalidInput
from geo_service.analysis.jobs import EXCEPTIONS, JobQueue
from geo_service.analysis.processes import CSV, JSON, Answer, Process, check_site, prepare, run
from geo_service.catalog import Catalog
from geo_service.db.replicas import reads_for
from geo_service.editing.body import read_json
from geo_service.errors import NotFound, Problem
from geo_service.ogc.links import base_url, link
from geo_service.ogc.negotiation import negotiate
from geo_service.ogc.parameters import parse_limit, reject_unknown
from geo_service.ogc.responses import etag_for, json_response, not_modified
from geo_service.security.address import client_address
from geo_service.settings import Settings

router = APIRouter(tags=["processes 分析"])

EXECUTE_KEYS = ("inputs", "outputs", "response", "subscriber")


def _processes(request: Request) -> dict[str, Process]:
    processes: dict[str, Process] = request.app.state.processes
    return processes


def _process(request: Request, process_id: str) -> Process:
    process = _processes(request).get(process_id)
    if process is None:
        raise NotFound(
            f"No process {process_id[:80]!r}. Processes: {', '.join(_processes(request))} "
            "(listed at /processes).",
            type=EXCEPTIONS + "no-such-process",
        )
    return process


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _base(request: Request) -> str:
    return base_url(request, _settings(request))


def _static_json(request: Request, doc: dict[str, Any]) -> Response:
    """A document that changes only with the service (its catalogue): revalidated by ETag."""
    etag = etag_for("processes", request.url.path, doc)
    if (cached := not_modified(request, etag, None)) is not None:
        return cached
    return json_response(doc, JSON, headers={"ETag": etag})


@router.get("/processes", summary="过程列表 Processes")
async def process_list(request: Request) -> Response:
    """The processes this service offers."""
    reject_unknown(request.query_params, ["f"])
    negotiate(request, [JSON])
    base = _base(request)
    doc = {
        "processes": [p.summary(base) for p in _processes(request).values()],
        "links": [link(f"{base}/processes", "self", JSON, "过程列表 Processes")],
    }
    return _static_json(request, doc)


@router.get("/processes/{process_id}", summary="过程描述 Process description")
async def process_description(process_id: str, request: Request) -> Response:
    """One process: its inputs and outputs as JSON Schema."""
    reject_unknown(request.query_params, ["f"])
    negotiate(request, [JSON])
    return _static_json(request, _process(request, process_id).description_document(_base(request)))


def _execute_request(process: Process, body: Any) -> tuple[dict[str, Any], bool]:
    """The inputs of an execute request, and whether it asks for a results document (`response: document`)."""
    if not isinstance(body, dict):
        raise InvalidInput('Send an execute request: a JSON object {"inputs": {…}}.')
    if unknown := sorted(set(body) - set(EXECUTE_KEYS)):
        raise InvalidInput(
            f"An execute request has no member {unknown[0]!r}; it has {', '.join(EXECUTE_KEYS)}.",
        )
    if "subscriber" in body:
        raise InvalidInput(
            "Callbacks (subscriber) are not offered; ask /jobs/{jobId} for the status instead."
        )
    response = body.get("response", "raw")
    if response not in ("raw", "document"):
        raise InvalidInput(f'"response" is "raw" (the default) or "document"; got {response!r}.')
    outputs = body.get("outputs", {})
    if not isinstance(outputs, dict):
        raise InvalidInput('"outputs" is an object of output ids, e.g. {"report": {}}.')
    for output_id, spec in outputs.items():
        if output_id not in process.outputs:
            raise InvalidInput(
                f"{process.id} has no output {output_id!r}; its output is {', '.join(process.outputs)}."
            )
        mode = spec.get("transmissionMode", "value") if isinstance(spec, dict) else "value"
        if mode != "value":
            raise InvalidInput(
                f'Outputs are sent by value only; "transmissionMode": {mode!r} is not offered.'
            )
    inputs = body.get("inputs", {})
    if not isinstance(inputs, dict):
        raise InvalidInput('"inputs" is an object of input names and values, e.g. {"site": {…}}.')
    return inputs, response == "document"


def _wants_async(request: Request) -> bool:
    prefer = ",".join(request.headers.getlist("prefer")).lower()
    return any(part.strip().split(";")[0].strip() == "respond-async" for part in prefer.split(","))


def _answer_response(answer: Answer, document: bool) -> Response:
    if document:
        return Response(answer.document_bytes(), media_type=JSON)
    headers = {}
    if answer.media_type == CSV:
        headers["Content-Disposition"] = f'attachment; filename="{answer.output_id}.csv"'
    media = f"{CSV}; charset=utf-8" if answer.media_type == CSV else answer.media_type
    return Response(answer.body, media_type=media, headers=headers)


@router.post("/processes/{process_id}/execution", summary="执行 Execute", status_code=200)
async def execute(process_id: str, request: Request) -> Response:
    """Run a process: synchronously (the answer in the response), or as a job with `Prefer: respond-async`."""
    process = _process(request, process_id)
    reject_unknown(request.query_params, [])
    catalog: Catalog = request.app.state.catalog
    base = _base(request)
    body = await read_json(request, ("application/json",), invalid=InvalidInput)
    inputs, document = _execute_request(process, body)
    metrics = request.app.state.metrics
    started = time.perf_counter()
    try:
        prepared = prepare(process, inputs, catalog, base)  # every input checked before anything runs
        if _wants_async(request):
            await check_site(prepared, request.app.state.reads)  # the job's rows are on the primary
            client = client_address(request, _settings(request).trusted_proxies)
            status = await _jobs(request).submit(process.id, inputs, client, base)
            location = f"{base}/jobs/{status['jobID']}"
            metrics.observe_process(process.id, "async", "accepted", time.perf_counter() - started)
            return json_response(
                status,
                JSON,
                status_code=201,
                headers={"Location": location, "Preference-Applied": "respond-async"},
            )
        answer = await run(prepared, await reads_for(request), request.app.state.answers)
    except Problem:
        metrics.observe_process(process.id, "sync", "failed", time.perf_counter() - started)
        raise
    metrics.observe_process(process.id, "sync", "successful", time.perf_counter() - started)
    return _answer_response(answer, document)


def _jobs(request: Request) -> JobQueue:
    jobs: JobQueue = request.app.state.jobs
    return jobs


@router.get("/jobs", summary="任务列表 Jobs")
async def job_list(request: Request) -> Response:
    """The jobs of the calling client's address, newest first."""
    reject_unknown(request.query_params, ["f", "limit"])
    negotiate(request, [JSON])
    limit = parse_limit(request.query_params.get("limit"), 100, 1000)
    base = _base(request)
    client = client_address(request, _settings(request).trusted_proxies)
    doc = {
        "jobs": await _jobs(request).list_jobs(client, base, limit),
        "links": [link(f"{base}/jobs", "self", JSON, "任务列表 Jobs")],
    }
    return json_response(doc, JSON)


@router.get("/jobs/{job_id}", summary="任务状态 Job status")
async def job_status(job_id: str, request: Request) -> Response:
    """A job's status and progress."""
    reject_unknown(request.query_params, ["f"])
    negotiate(request, [JSON])
    return json_response(await _jobs(request).status(job_id, _base(request)), JSON)


@router.get("/jobs/{job_id}/results", summary="任务结果 Job results")
async def job_results(job_id: str, request: Request) -> Response:
    """The results document of a successful job."""
    reject_unknown(request.query_params, ["f"])
    negotiate(request, [JSON])
    return Response(await _jobs(request).results(job_id), media_type=JSON)


@router.delete("/jobs/{job_id}", summary="撤销任务 Dismiss a job")
async def job_dismiss(job_id: str, request: Request) -> Response:
    """Dismiss a job: it will not run, and its results are deleted."""
    reject_unknown(request.query_params, [])
    return json_response(await _jobs(request).dismiss(job_id, _base(request)), JSON)
