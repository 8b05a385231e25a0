"""The one error type: library code raises a `Problem`, one handler renders it as RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error a client can act on, rendered as `application/problem+json` with its HTTP status."""

    status: int = 400
    title: str = "Bad request 请求无效"

    headers: dict[str, str] = {}  # noqa: RUF012  (class default, replaced per instance when needed)

    def __init__(self, detail: str, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem details document."""
        doc: dict[str, Any] = {
            "type": f"about:blank#{self.status}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc


class InvalidParameter(Problem):
    """A query parameter is malformed, out of range or not known (OGC wants 400, never 422)."""

    status = 400
    title = "Invalid parameter 参数无效"


class Unauthorized(Problem):
    """No credentials, or credentials that are not valid."""

    status = 401
    title = "Unauthorized 未授权"
    headers = {"WWW-Authenticate": 'Bearer realm="jxplan"'}  # noqa: RUF012


class Forbidden(Problem):
    """Valid credentials whose role does not allow the request."""

    status = 403
    title = "Forbidden 无权限"


class NotFound(Problem):
    """The collection, feature or page does not exist."""

    status = 404
    title = "Not found 未找到"


class NotAcceptable(Problem):
    """No representation of the resource matches the request's `Accept` or `f`."""

    status = 406
    title = "Not acceptable 不支持的格式"


class ServiceUnavailable(Problem):
    """The database cannot answer just now (stopped, restarting, every connection busy): try again later."""

    status = 503
    title = "Service unavailable 服务暂不可用"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class QueryTimeout(ServiceUnavailable):
    """A statement ran past its time limit (JXPLAN_READ_TIMEOUT_MS) and was stopped in PostgreSQL."""

    title = "Query took too long 查询超时"


class OutcomeUnknown(ServiceUnavailable):
    """The database went away while a change was being committed: it may or may not have been saved."""

    title = "Outcome unknown 保存结果未知"


class NotReady(ServiceUnavailable):
    """The service runs but cannot serve yet: its database is unreachable or its schema is not current."""

    title = "Not ready 未就绪"

    def __init__(self, detail: str, *, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
