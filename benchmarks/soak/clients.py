"""The soak's clients: editors and readers as asyncio tasks sharing one httpx client, in a process of their
own (several such processes share the load, so that the clients do not starve themselves of CPU).

Every request loop runs until the end time and each request has a timeout, so a process always ends. An
editor works on features it created itself (it alone changes them, so it knows every version) and on a few
hot features shared by every editor (read, then changed with `If-Match`: a 412 there is expected, and the
editor reads again and retries). Each write the service answers 2xx is recorded as an `Ack`, to be checked
in the database afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvloop  # the service's own event loop (uvicorn[standard]): less client CPU per request

from benchmarks.loadgen import nearest_rank
from benchmarks.soak.checks import MARK, Ack

ETAG_VERSION = re.compile(r'^(?:W/)?"f(\d+)v(\d+)-')  # a feature ETag names its id and version in clear
GEOJSON = "application/geo+json"
MERGE_PATCH = "application/merge-patch+json"
SERVER_ERROR_SAMPLES = 20  # 5xx bodies (and requests without an answer) kept per process; all are counted
HOT_ATTEMPTS = 8  # a hot write read-and-retried at most this often after 412s
MAX_OWN = 40  # features an editor creates at most
STATUSES = ("planned", "under_construction", "completed", "existing")
# where editors draw their features: well inside the Jiaxing region the service accepts
AREA = (120.55, 30.55, 121.05, 30.95)
READ_WEIGHTS = {
    "page": 18,
    "bbox": 14,
    "filter": 10,
    "feature": 20,
    "tile": 20,
    "queryables": 5,
    "collections": 8,
    "map": 5,
}


@dataclass(frozen=True)
class EditorPlan:
    """One editor: its key, and the layer (and geometry type) of the features it creates."""

    index: int
    token: str
    layer: str
    geometry_type: str


@dataclass(frozen=True)
class ClientPlan:
    """What one client process does."""

    base_url: str
    end_at: float  # time.time() at which every loop stops
    tag: str  # names this run in codes and marks
    seed: int
    editors: list[EditorPlan]
    readers: int
    read_paths: dict[str, list[str]]
    hot: list[tuple[str, int]]  # (layer, feature id) shared by every editor
    timeout: float = 60.0


@dataclass
class KindStats:
    """Requests of one kind: latency of each (seconds) and how many got each status."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    def add(self, other: KindStats) -> None:
        """Merge another process's requests of this kind."""
        self.latencies += other.latencies
        self.statuses.update(other.statuses)

    def percentile(self, p: float) -> float:
        """The latency (seconds) at percentile p, nearest rank."""
        return nearest_rank(self.latencies, p)


@dataclass
class ClientResult:
    """What one client process saw."""

    stats: dict[str, KindStats] = field(default_factory=dict)
    server_errors: int = 0
    server_error_samples: list[str] = field(default_factory=list)
    unanswered_samples: list[str] = field(default_factory=list)  # requests that got no response
    acks: list[Ack] = field(default_factory=list)
    unsure: set[int] = field(default_factory=set)  # features a write without an answer went to
    surprises: list[str] = field(default_factory=list)  # answers that contradict what the editor knows
    cpu_s: float = 0.0
    wall_s: float = 0.0


@dataclass
class Own:
    """A feature an editor created: the mark of each of its versions, its current one, whether deleted."""

    properties: dict[str, Any]
    geometry: dict[str, Any]
    etag: str
    version: int = 1
    marks: dict[int, str] = field(default_factory=dict)
    deleted: bool = False


class Answer:
    """A response as a client uses it: status, headers, and the body when it was asked for."""

    def __init__(self, status: int, headers: httpx.Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def version(self) -> int | None:
        """The feature version its ETag names."""
        found = ETAG_VERSION.match(self.headers.get("etag", ""))
        return int(found.group(2)) if found else None


class Session:
    """Requests through one httpx client, each timed and counted under its kind."""

    def __init__(self, client: httpx.AsyncClient, result: ClientResult) -> None:
        self.client = client
        self.result = result

    async def call(
        self, kind: str, method: str, path: str, *, need_body: bool = False, **kwargs: Any
    ) -> Answer | None:
        """One request; None when it got no answer (counted under the exception's name)."""
        stats = self.result.stats.setdefault(kind, KindStats())
        began = time.perf_counter()
        try:
            async with self.client.stream(method, path, **kwargs) as response:
                if need_body or response.status_code >= 500:
                    body = await response.aread()
                else:  # read to the end as it comes, compressed or not: no decoding cost in the client
                    async for _ in response.aiter_raw():
                        pass
                    body = b""
        except httpx.HTTPError as exc:
            stats.latencies.append(time.perf_counter() - began)
            stats.statuses[exc.__class__.__name__] += 1
            if len(self.result.unanswered_samples) < SERVER_ERROR_SAMPLES:
                self.result.unanswered_samples.append(
                    f"{method} {path} after {time.perf_counter() - began:.1f} s: {exc.__class__.__name__}"
                    f" {exc!r}"
                )
            return None
        stats.latencies.append(time.perf_counter() - began)
        stats.statuses[str(response.status_code)] += 1
        if response.status_code >= 500:
            self.result.server_errors += 1
            if len(self.result.server_error_samples) < SERVER_ERROR_SAMPLES:
                text = body.decode("utf-8", "replace")[:2000]
                self.result.server_error_samples.append(f"{method} {path} → {response.status_code}: {text}")
        return Answer(response.status_code, response.headers, body)


def _geometry(kind: str, rng: random.Random) -> dict[str, Any]:
    """A small valid geometry of the layer's type somewhere in AREA."""
    west, south, east, north = AREA
    lon, lat = round(rng.uniform(west, east), 6), round(rng.uniform(south, north), 6)
    d = 0.001
    if kind == "Point":
        return {"type": "Point", "coordinates": [lon, lat]}
    if kind == "MultiLineString":
        return {
            "type": "MultiLineString",
            "coordinates": [[[lon, lat], [lon + d, lat + d], [lon + 2 * d, lat]]],
        }
    ring = [[lon, lat], [lon + d, lat], [lon + d, lat + d], [lon, lat + d], [lon, lat]]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


class Editor:
    """One planner with an editor key: creates, changes, deletes, reverts and restores."""

    def __init__(self, plan: ClientPlan, me: EditorPlan, session: Session) -> None:
        self.plan = plan
        self.me = me
        self.session = session
        self.rng = random.Random(plan.seed * 1000 + me.index)
        self.own: dict[int, Own] = {}
        self.count = 0
        self.headers = {"Authorization": f"Bearer {me.token}"}

    def _mark(self) -> str:
        self.count += 1
        return f"soak {self.plan.tag} e{self.me.index} #{self.count}"

    def _items(self, fid: int | None = None, layer: str | None = None) -> str:
        base = f"/collections/{layer or self.me.layer}/items"
        return base if fid is None else f"{base}/{fid}"

    def _ack(self, fid: int, version: int, operation: str, mark: str, layer: str | None = None) -> None:
        self.session.result.acks.append(Ack(layer or self.me.layer, fid, version, operation, mark))

    def _surprise(self, what: str) -> None:
        self.session.result.surprises.append(f"editor {self.me.index}: {what}")

    async def _write(
        self, kind: str, method: str, path: str, fid: int | None, **kwargs: Any
    ) -> Answer | None:
        answer = await self.session.call(
            kind, method, path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs
        )
        if answer is None and fid is not None:
            self.session.result.unsure.add(fid)
            self.own.pop(fid, None)  # its version is unknown now: leave it alone
        return answer

    async def create(self) -> None:
        """POST a new feature of the editor's layer."""
        mark = self._mark()
        properties = {
            "code": f"soak-{self.plan.tag}-e{self.me.index:02d}-{self.count}",
            "name_zh": f"浸泡测试要素 {self.me.index}-{self.count}",
            "name_en": f"Soak test feature {self.me.index}-{self.count}",
            "category": "soak_test",
            "status": self.rng.choice(STATUSES),
            "accuracy": "schematic",
            MARK: mark,
        }
        geometry = _geometry(self.me.geometry_type, self.rng)
        body = {"type": "Feature", "properties": properties, "geometry": geometry}
        answer = await self._write(
            "create", "POST", self._items(), None, json=body, headers={"Content-Type": GEOJSON}
        )
        if answer is None or answer.status != 201:
            return
        fid = int(urlsplit(answer.headers["location"]).path.rsplit("/", 1)[-1])
        if answer.version() != 1:
            self._surprise(f"create of {fid} answered ETag {answer.headers.get('etag')!r}, not version 1")
        self.own[fid] = Own(properties, geometry, answer.headers["etag"], marks={1: mark})
        self._ack(fid, 1, "create", mark)

    def _changed(self, fid: int, own: Own, answer: Answer, operation: str, mark: str) -> None:
        """Book a 204 that made a new version of an own feature."""
        version = answer.version()
        if version != own.version + 1:
            self._surprise(f"{operation} of {fid} at version {own.version} answered version {version}")
        if version is None:
            return
        own.version, own.etag, own.marks[version], own.deleted = version, answer.headers["etag"], mark, False
        self._ack(fid, version, operation, mark)

    async def patch(self, fid: int, own: Own) -> None:
        """PATCH the mark and the status (and now and then the geometry), with If-Match."""
        mark = self._mark()
        patch: dict[str, Any] = {"properties": {MARK: mark, "status": self.rng.choice(STATUSES)}}
        if self.rng.random() < 0.3:
            own.geometry = _geometry(self.me.geometry_type, self.rng)
            patch["geometry"] = own.geometry
        answer = await self._write(
            "patch",
            "PATCH",
            self._items(fid),
            fid,
            content=json.dumps(patch),
            headers={"Content-Type": MERGE_PATCH, "If-Match": own.etag},
        )
        if answer is not None and answer.status == 204:
            self._changed(fid, own, answer, "patch", mark)

    async def put(self, fid: int, own: Own) -> None:
        """PUT the whole feature with a new mark and a new geometry, with If-Match."""
        mark = self._mark()
        own.geometry = _geometry(self.me.geometry_type, self.rng)
        body = {"type": "Feature", "properties": {**own.properties, MARK: mark}, "geometry": own.geometry}
        answer = await self._write(
            "put",
            "PUT",
            self._items(fid),
            fid,
            json=body,
            headers={"Content-Type": GEOJSON, "If-Match": own.etag},
        )
        if answer is not None and answer.status == 204:
            self._changed(fid, own, answer, "put", mark)

    async def delete(self, fid: int, own: Own) -> None:
        """DELETE with If-Match: the version deleted is the one the editor holds."""
        answer = await self._write("delete", "DELETE", self._items(fid), fid, headers={"If-Match": own.etag})
        if answer is not None and answer.status == 204:
            own.deleted = True
            self._ack(fid, own.version, "delete", own.marks[own.version])

    async def revert(self, fid: int, own: Own) -> None:
        """Make an earlier version current again (with If-Match): a new version with that one's content."""
        target = self.rng.randrange(1, own.version)
        answer = await self._write(
            "revert", "POST", f"{self._items(fid)}/revert?to={target}", fid, headers={"If-Match": own.etag}
        )
        if answer is not None and answer.status == 204:
            self._changed(fid, own, answer, "revert", own.marks[target])

    async def restore(self, fid: int, own: Own) -> None:
        """Bring a deleted feature back from its last version, under its own id."""
        last = own.version
        answer = await self._write("restore", "POST", f"{self._items(fid)}/revert?to={last}", fid)
        if answer is not None and answer.status == 204:
            self._changed(fid, own, answer, "restore", own.marks[last])

    async def hot(self) -> None:
        """Change a shared feature: read it, PATCH or PUT it with If-Match; after a 412 read and retry."""
        layer, fid = self.rng.choice(self.plan.hot)
        put = self.rng.random() < 0.4
        mark = self._mark()
        for _ in range(HOT_ATTEMPTS):
            read = await self.session.call(
                "hot-read", "GET", f"{self._items(fid, layer)}?f=json", need_body=True
            )
            if read is None or read.status != 200:
                return
            etag = read.headers["etag"]
            if put:
                current = json.loads(read.body)
                body = {
                    "type": "Feature",
                    "properties": {**current["properties"], MARK: mark},
                    "geometry": current["geometry"],
                }
                answer = await self._write(
                    "hot-put",
                    "PUT",
                    self._items(fid, layer),
                    fid,
                    json=body,
                    headers={"Content-Type": GEOJSON, "If-Match": etag},
                )
            else:
                answer = await self._write(
                    "hot-patch",
                    "PATCH",
                    self._items(fid, layer),
                    fid,
                    content=json.dumps({"properties": {MARK: mark}}),
                    headers={"Content-Type": MERGE_PATCH, "If-Match": etag},
                )
            if answer is None or answer.status != 412:
                break
        else:
            return
        if answer is not None and answer.status == 204:
            version = answer.version()
            if version is None:
                self._surprise(f"hot write of {fid} answered 204 without a feature ETag")
                return
            self._ack(fid, version, "put" if put else "patch", mark, layer)

    async def history(self, fid: int) -> None:
        """Read a feature's history, as the editor's History button does."""
        await self.session.call("history", "GET", f"{self._items(fid)}/history", headers=self.headers)

    async def run(self) -> None:
        """Edit until the end time."""
        while time.time() < self.plan.end_at:
            live = [(f, o) for f, o in self.own.items() if not o.deleted]
            dead = [(f, o) for f, o in self.own.items() if o.deleted]
            r = self.rng.random()
            if len(live) < 2 or (r < 0.10 and len(self.own) < MAX_OWN):
                await self.create()
                continue
            fid, own = self.rng.choice(live)
            if r < 0.35:
                await self.patch(fid, own)
            elif r < 0.50:
                await self.put(fid, own)
            elif r < 0.70:
                await self.hot()
            elif r < 0.78:
                await self.delete(fid, own)
            elif r < 0.88 and own.version > 1:
                await self.revert(fid, own)
            elif r < 0.95 and dead:
                await self.restore(*self.rng.choice(dead))
            else:
                await self.history(fid)


class Reader:
    """One reader: pages (following `next` now and then), boxes, filters, features, tiles, queryables,
    collections and map pages, drawn at random by weight."""

    def __init__(self, plan: ClientPlan, index: int, session: Session) -> None:
        self.plan = plan
        self.session = session
        self.rng = random.Random(plan.seed * 1000 + 500 + index)
        self.kinds = [k for k in READ_WEIGHTS if plan.read_paths.get(k)]
        self.weights = [READ_WEIGHTS[k] for k in self.kinds]

    async def run(self) -> None:
        """Read until the end time."""
        while time.time() < self.plan.end_at:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            path = self.rng.choice(self.plan.read_paths[kind])
            follow = kind == "page" and "f=json" in path and self.rng.random() < 0.3
            answer = await self.session.call(kind, "GET", path, need_body=follow)
            if follow and answer is not None and answer.status == 200:
                links = json.loads(answer.body).get("links", [])
                nexts = [link["href"] for link in links if link["rel"] == "next"]
                if nexts:
                    parts = urlsplit(nexts[0])
                    await self.session.call(kind, "GET", f"{parts.path}?{parts.query}")


async def _guarded(loop: Callable[[], Awaitable[None]], result: ClientResult) -> None:
    """A client's loop; should the client itself fail, that is reported and the other clients go on."""
    try:
        await loop()
    except Exception as exc:
        result.surprises.append(f"a client failed: {exc.__class__.__name__}: {exc}")


async def _run(plan: ClientPlan) -> ClientResult:
    result = ClientResult()
    clients = len(plan.editors) + plan.readers
    # idle connections are dropped before uvicorn's keep-alive timeout (5 s, httpx's default expiry too):
    # at the same expiry a request now and then goes out on a connection the server is just closing
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0)
    timeout = httpx.Timeout(plan.timeout, pool=None)
    async with httpx.AsyncClient(base_url=plan.base_url, limits=limits, timeout=timeout) as client:
        session = Session(client, result)
        tasks = [_guarded(Editor(plan, e, session).run, result) for e in plan.editors]
        tasks += [_guarded(Reader(plan, i, session).run, result) for i in range(plan.readers)]
        await asyncio.gather(*tasks)
    return result


def run_clients(plan: ClientPlan) -> ClientResult:
    """Run a client process's editors and readers to the end time (the entry point of each process)."""
    began, cpu = time.monotonic(), os.times()
    result = uvloop.run(_run(plan))
    used = os.times()
    result.cpu_s = used.user + used.system - cpu.user - cpu.system
    result.wall_s = time.monotonic() - began
    return result
