"""The processes' part of the OpenAPI document at /api (added by the landing route to the OGC one)."""

from __future__ import annotations

from typing import Any

from geo_service.analysis.processes import CSV, JSON, Process

STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def _responses(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    known = {
        "400": {"$ref": "#/components/responses/InvalidParameter"},
        "404": {"$ref": "#/components/responses/NotFound"},
        "413": {"description": "The site has over 100,000 vertices, or the body is over 5 MB.", **PROBLEM},
        "415": {"description": "The body is not sent as application/json.", **PROBLEM},
        "429": {
            "description": "This address has as many jobs waiting or running as it may: wait Retry-After s.",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
            **PROBLEM,
        },
        "500": {"$ref": "#/components/responses/ServerError"},
    }
    return ok | {code: known[code] for code in (*codes, "500")}


def _status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["jobID", "status", "type"],
        "properties": {
            "jobID": {"type": "string", "format": "uuid"},
            "processID": {"type": "string"},
            "type": {"type": "string", "enum": ["process"]},
            "status": {"type": "string", "enum": list(STATUSES)},
            "message": {"type": "string"},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "created": {"type": "string", "format": "date-time"},
            "started": {"type": "string", "format": "date-time", "nullable": True},
            "finished": {"type": "string", "format": "date-time", "nullable": True},
            "updated": {"type": "string", "format": "date-time"},
            "links": {"type": "array", "items": {"type": "object"}},
        },
    }


def _execute_body(process: Process) -> dict[str, Any]:
    """The execute request of a process, its inputs described as OpenAPI 3.0 reads them."""
    properties = {}
    for name, spec in process.inputs.items():
        schema = dict(spec["schema"])
        schema.pop("contentMediaType", None)
        if "oneOf" in schema:  # a site: a geometry, a Feature or a reference; 3.0 has no const
            schema = {"type": "object", "description": spec.get("description", "")}
        if "exclusiveMinimum" in schema:  # JSON Schema 2020-12's number form; 3.0 wants a flag
            schema["minimum"] = schema.pop("exclusiveMinimum")
            schema["exclusiveMinimum"] = True
        properties[name] = schema
    required = [n for n, s in process.inputs.items() if s.get("minOccurs", 1) > 0]
    inputs: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        inputs["required"] = required
    return {
        "type": "object",
        "properties": {
            "inputs": inputs,
            "outputs": {"type": "object"},
            "response": {"type": "string", "enum": ["raw", "document"], "default": "raw"},
        },
        "additionalProperties": False,
    }


def openapi_paths(processes: dict[str, Process]) -> dict[str, Any]:
    """The paths of /processes and /jobs."""
    job_id = {
        "name": "jobId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
        "description": "A job's id, from the Location of its 201.",
    }
    json_ok = {"description": "JSON.", "content": {JSON: {"schema": {"type": "object"}}}}
    status_ok = {"content": {JSON: {"schema": _status_schema()}}}
    paths: dict[str, Any] = {
        "/processes": {
            "get": {
                "operationId": "getProcesses",
                "summary": "The processes 分析过程列表",
                "tags": ["Processes"],
                "responses": _responses({"200": json_ok}, "400"),
            }
        },
        "/jobs": {
            "get": {
                "operationId": "getJobs",
                "summary": "This address's jobs 任务列表",
                "tags": ["Processes"],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "At most this many jobs, newest first (more than 1000: 1000).",
                        "schema": {"type": "integer", "minimum": 1, "default": 100},
                    }
                ],
                "responses": _responses({"200": json_ok}, "400"),
            }
        },
        "/jobs/{jobId}": {
            "get": {
                "operationId": "getStatus",
                "summary": "A job's status 任务状态",
                "tags": ["Processes"],
                "parameters": [job_id],
                "responses": _responses({"200": {"description": "The status.", **status_ok}}, "404"),
            },
            "delete": {
                "operationId": "dismiss",
                "summary": "Dismiss a job 撤销任务",
                "tags": ["Processes"],
                "parameters": [job_id],
                "responses": _responses({"200": {"description": "Dismissed.", **status_ok}}, "404"),
            },
        },
        "/jobs/{jobId}/results": {
            "get": {
                "operationId": "getResult",
                "summary": "A job's results 任务结果",
                "tags": ["Processes"],
                "parameters": [job_id],
                "responses": _responses(
                    {"200": json_ok | {"description": "The results document {outputId: value}."}},
                    "400",
                    "404",
                ),
            }
        },
    }
    for process in processes.values():
        outputs = {JSON: {"schema": {"type": "object"}}}
        if process.id == "county-summary":
            outputs[CSV] = {"schema": {"type": "string"}}
        paths[f"/processes/{process.id}"] = {
            "get": {
                "operationId": f"describe_{process.id.replace('-', '_')}",
                "summary": f"{process.title}: description",
                "tags": ["Processes"],
                "responses": _responses({"200": json_ok}, "400"),
            }
        }
        paths[f"/processes/{process.id}/execution"] = {
            "post": {
                "operationId": f"execute_{process.id.replace('-', '_')}",
                "summary": process.title,
                "description": process.description,
                "tags": ["Processes"],
                "parameters": [
                    {
                        "name": "Prefer",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "respond-async: run as a job (201 with the job's Location); "
                        "without it (or with respond-sync) the answer comes in the response.",
                    }
                ],
                "requestBody": {"required": True, "content": {JSON: {"schema": _execute_body(process)}}},
                "responses": _responses(
                    {
                        "200": {
                            "description": "The answer (raw), or the results document.",
                            "content": outputs,
                        },
                        "201": {
                            "description": "Accepted as a job (Prefer: respond-async).",
                            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
                            **status_ok,
                        },
                    },
                    "400",
                    "404",
                    "413",
                    "415",
                    "429",
                ),
            }
        }
    return paths
