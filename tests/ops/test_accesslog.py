"""The access log (one record per request, with its fields), `X-Request-Id` (accepted when sane, else made;
echoed; in problem bodies; on `request.state`) and the log formats (JSON with `extra=` fields, text)."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest
from fastapi import Request, Response
from fastapi.testclient import TestClient

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.ops.logformat import JsonFormatter, TextFormatter, configure_logging
from geo_service.settings import Settings
from tests.ops.conftest import Records, kept_records

ACCESS_FIELDS = {
    "request_id",
    "method",
    "path",
    "route",
    "status",
    "duration_ms",
    "bytes",
    "client",
    "user_agent",
}


@pytest.fixture
def access() -> Iterator[Records]:
    """The records of `geo_service.access`, at INFO, for the duration of a test."""
    with kept_records("geo_service.access", logging.INFO) as handler:
        yield handler


async def _echo_state(request: Request) -> Response:
    return Response(request.state.request_id, media_type="text/plain")


async def _fail(request: Request) -> Response:
    raise RuntimeError("a bug in a handler")


def _app_client(settings: Settings, catalog: Catalog, **changes: object) -> TestClient:
    app = create_app(settings.model_copy(update=changes), catalog)
    app.add_route("/test/state", _echo_state)
    app.add_route("/test/fail", _fail)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(settings: Settings, catalog: Catalog) -> Iterator[TestClient]:
    """An app with two probe routes, on the shared database."""
    with _app_client(settings, catalog) as test_client:
        yield test_client


def test_one_line_per_request_with_its_fields(client: TestClient, access: Records) -> None:
    """A feature request gives exactly one record with every field: template, status, the body's bytes, a
    duration, the client and user agent; a credential in the query string is not logged."""
    feature_id = client.get("/collections/rail_stations/items", params={"limit": 1}).json()["features"][0][
        "id"
    ]
    access.records.clear()
    response = client.get(
        f"/collections/rail_stations/items/{feature_id}",
        headers={"User-Agent": "QGIS/33400", "Accept-Encoding": "identity"},
    )
    assert response.status_code == 200
    (record,) = access.records
    fields = {k: getattr(record, k) for k in ACCESS_FIELDS}
    assert fields["method"] == "GET"
    assert fields["path"] == f"/collections/rail_stations/items/{feature_id}"
    assert fields["route"] == "/collections/{collectionId}/items/{featureId}"
    assert fields["status"] == 200
    assert fields["bytes"] == len(response.content) > 0
    assert fields["duration_ms"] > 0
    assert fields["client"] == "testclient" and fields["user_agent"] == "QGIS/33400"
    assert fields["request_id"] == response.headers["x-request-id"]

    access.records.clear()
    client.get("/collections", params={"f": "json", "token": "jxp_Secret1", "API_KEY": "k2"})
    (record,) = access.records
    assert record.path == "/collections?f=json&token=REDACTED&API_KEY=REDACTED"  # type: ignore[attr-defined]


def test_request_id_accepted_made_and_echoed(client: TestClient) -> None:
    """A sane id comes back as sent; one too long or with other characters is replaced by a new id (32 hex
    digits), as is a missing one; every response carries it, and other code reads it on `request.state`."""
    sane = "qgis-1:req.42_A"
    assert client.get("/test/state", headers={"X-Request-Id": sane}).headers["x-request-id"] == sane
    for insane in ("x" * 129, "two words", "<script>", "id\u00e9"):
        response = client.get("/test/state", headers={"X-Request-Id": insane.encode()})
        made = response.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made) and response.text == made
    first, second = client.get("/health"), client.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_problems_quote_the_request_id(client: TestClient, access: Records) -> None:
    """A 404 problem and a 500 (a bug) carry `requestId`, the same as the header and the logged line."""
    missing = client.get("/collections/nowhere", headers={"X-Request-Id": "ticket-7"})
    assert missing.status_code == 404 and missing.json()["requestId"] == "ticket-7"
    assert missing.headers["x-request-id"] == "ticket-7"
    access.records.clear()
    bug = client.get("/test/fail", headers={"X-Request-Id": "ticket-8"})
    assert bug.status_code == 500 and bug.json()["requestId"] == "ticket-8"
    assert bug.headers["x-request-id"] == "ticket-8"
    (record,) = access.records
    assert record.status == 500 and record.request_id == "ticket-8"  # type: ignore[attr-defined]


def test_access_log_can_be_turned_off(settings: Settings, catalog: Catalog, access: Records) -> None:
    """JXPLAN_ACCESS_LOG=false: no access record (the request id is still echoed)."""
    with _app_client(settings, catalog, access_log=False) as quiet:
        assert quiet.get("/health").headers["x-request-id"]
    assert access.records == []


def _record(name: str, message: str, **extra: object) -> logging.LogRecord:
    return logging.getLogger(name).makeRecord(name, logging.INFO, __file__, 1, message, (), None, extra=extra)


def test_json_lines_render_extra_fields_and_exceptions() -> None:
    """The JSON formatter writes one object per record, with another logger's `extra=` fields (an audit
    line), and an exception's traceback as one field."""
    line = JsonFormatter().format(
        _record("geo_service.audit", "write", key_name="王工", collection="rail_lines")
    )
    doc = json.loads(line)
    assert doc["logger"] == "geo_service.audit" and doc["level"] == "info" and doc["message"] == "write"
    assert doc["key_name"] == "王工" and doc["collection"] == "rail_lines"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["time"])
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    doc = json.loads(JsonFormatter().format(failed))
    assert "\n" not in JsonFormatter().format(failed) and "ValueError: boom" in doc["exception"]


def test_formats_mask_credentials() -> None:
    """Whoever logs a database URL with its password, a Bearer header or an API key, the line masks it."""
    message = (
        "url postgresql://jxplan:pa55word@db:5432/x, Authorization: Bearer jxp_abcdefghijklmnop"
        " password=hunter2"
    )
    for formatter in (JsonFormatter(), TextFormatter()):
        line = formatter.format(_record("sqlalchemy", message))
        for secret in ("pa55word", "abcdefghijklmnop", "hunter2"):
            assert secret not in line
        assert "postgresql://jxplan:***@db:5432/x" in line


def test_configure_logging_text_and_json(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`configure_logging` (called by `jxplan serve`) sends every logger to stderr in the chosen format, at
    the chosen level, SQLAlchemy's statements only at debug."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("sqlalchemy").level
    try:
        configure_logging(settings.model_copy(update={"log_format": "text", "log_level": "info"}))
        logging.getLogger("uvicorn.error").info("started")
        logging.getLogger("geo_service").debug("not shown")
        assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() == logging.WARNING
        text = capsys.readouterr().err
        assert "INFO uvicorn.error: started" in text and "not shown" not in text
        configure_logging(settings.model_copy(update={"log_format": "json", "log_level": "debug"}))
        logging.getLogger("geo_service.access").info("hit", extra={"status": 200})
        (line,) = capsys.readouterr().err.splitlines()
        assert json.loads(line)["status"] == 200
        assert logging.getLogger("sqlalchemy.engine").getEffectiveLevel() == logging.DEBUG
    finally:
        root.handlers[:], level, sqlalchemy = saved
        root.setLevel(level)
        logging.getLogger("sqlalchemy").setLevel(sqlalchemy)
