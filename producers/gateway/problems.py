"""RFC 9457 problem details: every refusal the gateway gives, as ``application/problem+json``.

Agency developers read these in other languages' HTTP clients, so each carries a stable ``type``
(documented in docs/gateway.md), a one-line ``detail`` that says what to do, and for schema
refusals every problem (path, expected, got), not only the first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import Response

from ledger.validation import Problem

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "urn:safeguarding-ledger:problem:"  # + slug; each is described in docs/gateway.md


class ProblemError(Exception):
    """Raised anywhere in a request; rendered by the app's exception handler."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        problems: Iterable[Problem] = (),
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.problems = list(problems)
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extra,
        }
        if self.problems:
            body["problems"] = [{"path": p.path, "expected": p.expected, "got": p.got} for p in self.problems]
        return body

    def response(self, instance: str) -> Response:
        return Response(
            json.dumps(self.body(instance), ensure_ascii=False),
            status_code=self.status,
            media_type=PROBLEM_JSON,
            headers=self.headers,
        )


def invalid(problems: list[Problem], what: str = "the event") -> ProblemError:
    shown = "; ".join(str(p) for p in problems[:3])
    more = f" (+{len(problems) - 3} more in `problems`)" if len(problems) > 3 else ""
    return ProblemError(
        422, "invalid-event", "The event breaks the contract", f"{what} was refused: {shown}{more}",
        problems=problems,
    )  # fmt: skip


def prefixed(index: int, problems: Iterable[Problem]) -> list[Problem]:
    """Problems of item ``index`` of a batch, with paths into the whole request body."""
    return [Problem(f"/{index}{p.path}", p.expected, p.got) for p in problems]
