"""schemathesis over `/api`: every operation the document declares, reads and writes (with an admin key),
sent to a real server on a throwaway loaded database. No response is a 5xx, and every one is what the
document says: a documented status code and content type, and a body that matches the documented schema;
a request the document does not allow is refused."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from geo_service.analysis.openapi import openapi_paths
from geo_service.analysis.processes import build_processes
from geo_service.app import create_app
from geo_service.catalog import Catalog, load_catalog
from geo_service.editing.keys import add_key
from geo_service.ogc.openapi import openapi_document
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import Writable, running_server
from tests.hostile import FUZZ

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 30  # per operation, generated from a fixed seed
LAYER = "rail_stations"  # editable: where the valid writes go
# schemathesis sends file parts without a file name, and an import needs the name's suffix to pick the
# reader (415 otherwise): imports that succeed are tested in tests/editing/test_import.py
NO_SUCCESS = {"POST /collections/{collectionId}/import"}


def _labels() -> list[str]:
    """Every operation of the document, as schemathesis names them (`GET /collections`)."""
    catalog = load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps")
    doc = openapi_document(catalog, Settings(), "", "", "", openapi_paths(build_processes(catalog)))
    return [f"{method.upper()} {path}" for path, item in doc["paths"].items() for method in item]


LABELS = _labels()


@dataclass
class Api:
    """The served document, where it is served, an admin key (an editor's may do all but read the audit
    log) and valid inputs to start writes from."""

    schema: Any
    base: str
    token: str
    ids: dict[int, str]  # a few real features and their layers
    feature: dict[str, Any]  # one real feature of LAYER, as GeoJSON without links
    jobs: dict[str, str]  # a real job for each method of /jobs/{jobId} (one to read, one to dismiss)


@pytest.fixture(scope="module")
def api(writable: Writable, settings: Settings, catalog: Catalog) -> Iterator[Api]:
    """The module's private database served on a real socket, and its OpenAPI document as served."""
    private = settings.model_copy(update={"database_url": writable.engine.url.render_as_string(False)})
    token = add_key(writable.engine, "模糊测试 fuzzer", "admin")
    auth = {"Authorization": f"Bearer {token}"}
    with writable.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT DISTINCT ON (layer_id) id, layer_id FROM features ORDER BY layer_id, id DESC")
        )
        ids = {row.id: row.layer_id for row in rows}
    with running_server(create_app(private, catalog)) as base:
        fid = next(i for i, layer in ids.items() if layer == LAYER)
        feature = httpx.get(f"{base}/collections/{LAYER}/items/{fid}").json()
        del feature["links"]
        jobs = {}
        for method in ("GET", "DELETE"):
            accepted = httpx.post(
                f"{base}/processes/county-summary/execution",
                json={"inputs": {}},
                headers={"Prefer": "respond-async", **auth},
            )
            jobs[method] = accepted.json()["jobID"]
        schema = schemathesis.openapi.from_url(f"{base}/api?f=json")
        paths = schema.raw_schema["paths"]
        assert [f"{method.upper()} {path}" for path, item in paths.items() for method in item] == LABELS
        yield Api(schema, base, token, ids, feature, jobs)


def _valid_inputs(api: Api, method: str, path: str) -> list[dict[str, Any]]:
    """Fixed parts of requests that can succeed (real ids, valid bodies); the rest is generated."""
    if "{featureId}" in path:
        targets = [{"collectionId": layer, "featureId": str(fid)} for fid, layer in api.ids.items()]
        if method == "PUT":
            feature = api.feature | {"id": None}
            del feature["id"]
            return [{"path_parameters": t, "body": feature} for t in targets if t["collectionId"] == LAYER]
        if method == "PATCH":
            return [{"path_parameters": t, "body": {"properties": {"note": "模糊 fuzz"}}} for t in targets]
        return [{"path_parameters": t} for t in targets]
    if "{jobId}" in path:
        return [{"path_parameters": {"jobId": api.jobs[method]}}]
    if method == "POST" and path.endswith("/execution"):
        point = {"type": "Point", "coordinates": [120.7925, 30.6954]}
        inputs = {} if "county-summary" in path else {"site": point}
        return [{"body": {"inputs": inputs}}]
    if method == "POST" and path.endswith("/items"):
        created = {k: v for k, v in api.feature.items() if k != "id"}
        created["properties"] = created["properties"] | {"code": "fuzz_created"}
        return [{"path_parameters": {"collectionId": LAYER}, "body": created}]
    return []


@pytest.mark.parametrize("label", LABELS)
def test_operation(api: Api, label: str) -> None:
    """Positive and negative cases of one operation: no 5xx, each response as documented, and at least one
    answered with success (the fuzzing reaches past the refusals)."""
    method, path = label.split(" ", 1)
    operation = api.schema[path][method]
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    strategies += [operation.as_strategy(**fixed) for fixed in _valid_inputs(api, method, path)]
    statuses: Counter[int] = Counter()
    auth = {"Authorization": f"Bearer {api.token}"}

    @given(case=st.one_of(strategies))
    @settings(FUZZ, max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=api.base, headers=auth, checks=CHECKS)
        statuses[response.status_code] += 1

    run()
    if label not in NO_SUCCESS:
        assert any(status < 400 for status in statuses), f"no success among {dict(statuses)}"
