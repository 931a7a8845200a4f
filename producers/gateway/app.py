"""The gateway's HTTP interface (FastAPI on uvicorn, the stack the partnership's web app uses).

Request bodies are read by hand rather than through pydantic models: the body limit must hold
before anything is parsed, one endpoint takes three media types, and a refusal must list every
schema problem the way ``ledger.validation`` words them. The OpenAPI document still describes
every body: its schemas are declared below and committed as ``docs/openapi.json``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from consumers.projector.collector import collect_less
from ledger.envelope import SignedEvent
from ledger.vocabulary import envelope_schema
from producers.gateway.drafts import bad_request, batch_items, parse_json
from producers.gateway.problems import PROBLEM_JSON, ProblemError
from producers.gateway.service import Gateway, Outcome, unavailable
from producers.gateway.tokens import AuthError, Caller
from producers.relay import Relay
from producers.sdk import DRAFT_FIELDS
from transport.kafka import KafkaSettings

log = logging.getLogger(__name__)

JSON = "application/json"
NDJSON = "application/x-ndjson"
CLOUDEVENT = "application/cloudevents+json"
CLOUDEVENT_BATCH = "application/cloudevents-batch+json"
IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 200


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document, without a running gateway (``sgledger gateway openapi``)."""
    return create_app(None).openapi()


def create_app(service: Gateway | None, kafka: KafkaSettings | None = None) -> FastAPI:
    """The ASGI app. With ``kafka``, the relay runs in-process and delivers the outbox.
    ``service`` is None only to describe the API (every request then fails)."""

    def gateway_() -> Gateway:
        if service is None:
            raise RuntimeError("this app only describes the API: it has no gateway")
        return service

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gateway = gateway_()
        # Everything made so far (modules, the app, schemas, compiled validators) lives as long
        # as the process: frozen, the collector stops traversing it each time a batch's parsed
        # drafts trigger a full collection. Measured on 3,000-draft batches: about a fifth less
        # CPU per event (bench/RESULTS.md). A batch still allocates ~8 containers per event
        # (the received drafts, the signed events, the rows), none of them in a cycle: at
        # CPython's default pace the collector ran ~60 times per 3,000-event batch, 2.6-3.2 us per
        # event of the signing process's CPU (issue 11), so it is paced as the projector's is.
        gc.freeze()
        collect_less()
        stop = threading.Event()
        thread = None
        if kafka is not None:
            relay = Relay(gateway.outbox, kafka)
            thread = threading.Thread(target=_relay_forever, args=(relay, stop), name="relay", daemon=True)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=30)
                relay.close()
            gateway.close()

    app = FastAPI(
        title="safeguarding-ledger agency gateway",
        version="1",
        summary="Publish an agency's safeguarding events: drafts signed here, or events it signed.",
        docs_url=None,  # the interactive pages load scripts from a CDN; the document is enough
        redoc_url=None,
        lifespan=lifespan,
    )

    @app.exception_handler(ProblemError)
    async def problem(request: Request, exc: ProblemError) -> Response:
        return exc.response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def routing(request: Request, exc: StarletteHTTPException) -> Response:
        """A path or method the API does not have (Starlette's own answers were plain JSON)."""
        detail = str(exc.detail)
        if exc.status_code in _ROUTING:
            detail = f"{request.method} {request.url.path} is not part of this API: {_ENDPOINTS}"
        slug = _ROUTING.get(exc.status_code, "bad-request")
        return ProblemError(exc.status_code, slug, str(exc.detail), detail, headers=exc.headers).response(
            request.url.path
        )

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, exc: OperationalError) -> Response:
        return unavailable(exc).response(request.url.path)

    async def caller_of(request: Request) -> Caller:
        try:
            return await run_in_threadpool(
                gateway_().tokens.authenticate, request.headers.get("authorization")
            )
        except AuthError as exc:
            raise ProblemError(
                401, "unauthenticated", "Not authenticated", str(exc), headers={"WWW-Authenticate": "Bearer"}
            ) from exc

    @app.post(
        "/v1/events",
        status_code=202,
        operation_id="publishEvent",
        summary="Publish one event",
        description=(
            "A draft (`application/json`) is validated, signed with the agency's key, given the next "
            "place in the agency's chain and committed to the durable outbox. An event the agency "
            "signed itself (`application/cloudevents+json`, docs/signing.md) is verified and must "
            "be the next in the chain (`GET /v1/chain`). 202 means it is durably queued; "
            "`GET /v1/events/{id}` says where it is later."
        ),
        openapi_extra=_operation(
            {JSON: "Draft", CLOUDEVENT: "SignedEvent"},
            "Receipt",
            [400, 401, 409, 413, 415, 422, 503],
            located=True,
        ),
    )
    async def post_event(request: Request) -> Response:
        gateway = gateway_()
        caller = await caller_of(request)
        key = _idempotency_key(request)
        media = _media_type(request, (JSON, CLOUDEVENT))
        body = parse_json(await _read(request, gateway.config.max_event_bytes))
        if media == CLOUDEVENT:
            outcome = await run_in_threadpool(gateway.publish_signed, caller, key, [body], False)
        else:
            outcome = await run_in_threadpool(gateway.publish_drafts, caller, key, [body], False)
        receipt = _receipts(outcome.events)[0]
        return JSONResponse(
            receipt, status_code=202, headers={"Location": receipt["status_url"], **_replayed(outcome)}
        )

    @app.post(
        "/v1/events/batch",
        status_code=202,
        operation_id="publishBatch",
        summary="Publish many events, all or nothing",
        description=(
            "A JSON array of drafts, NDJSON (one draft per line) or a CloudEvents batch of events the "
            "agency signed. Every item is checked before any is stored; the whole batch is committed "
            "in one transaction, in order, or nothing is (a 422 then lists every problem, its path "
            "starting with the item's index)."
        ),
        openapi_extra=_operation(
            {JSON: "DraftArray", NDJSON: "NdjsonDrafts", CLOUDEVENT_BATCH: "SignedEventArray"},
            "BatchReceipt",
            [400, 401, 409, 413, 415, 422, 503],
        ),
    )
    async def post_batch(request: Request) -> Response:
        gateway = gateway_()
        # The token is looked up (in the thread pool) while the body arrives, rather than
        # before: ~1.6 ms of serial time per request (issue 11). The same answers in the same
        # precedence as checking each in turn: 401, then 400 and 415, then 413; a body is not
        # read on once the token is refused.
        checking = asyncio.ensure_future(caller_of(request))
        try:
            key = _idempotency_key(request)
            media = _media_type(request, (JSON, NDJSON, CLOUDEVENT_BATCH))
            raw = await _read(request, gateway.config.max_batch_bytes, checking)
        except ProblemError:
            await checking  # refused: unauthenticated first, whatever else is wrong
            raise
        except BaseException:  # the client went away: its token's answer is not wanted
            checking.cancel()
            checking.add_done_callback(lambda done: done.cancelled() or done.exception())
            raise
        caller = await checking
        # The answer is written while the batch's commit syncs (``Gateway._once``).
        if media == CLOUDEVENT_BATCH:
            items = batch_items(raw, ndjson=False)
            outcome = await run_in_threadpool(
                gateway.publish_signed, caller, key, items, True, _batch_receipt
            )
        else:  # parsed and checked in the draft worker, while this process signs
            outcome = await run_in_threadpool(
                gateway.publish_draft_batch, caller, key, raw, media == NDJSON, _batch_receipt
            )
        return Response(outcome.answer, status_code=202, headers=_replayed(outcome), media_type=JSON)

    @app.get(
        "/v1/events/{event_id}",
        operation_id="getEvent",
        summary="Where an event is",
        description=(
            "`queued` (in the outbox), `sent` (acknowledged by Kafka), and, when the gateway is "
            "configured with the partnership's database, `accepted`, `held` (waiting for its "
            "predecessor or key) or `quarantined` with the reason."
        ),
        openapi_extra=_operation({}, "EventStatus", [401, 404], path_parameter=_EVENT_ID),
    )
    async def get_event(request: Request) -> Response:
        # The id is read from the path, not declared as an argument: FastAPI would then describe
        # a 422 "Validation Error" this route never answers (any text is an id to look up),
        # with a schema the document does not hold, which code generators refuse.
        await caller_of(request)
        return JSONResponse(await run_in_threadpool(gateway_().status, request.path_params["event_id"]))

    @app.get(
        "/v1/chain",
        operation_id="getChain",
        summary="The head of the agency's chain",
        description="The sequence and digest the next self-signed event must follow (docs/signing.md).",
        openapi_extra=_operation({}, "ChainHead", [401]),
    )
    async def get_chain(request: Request) -> Response:
        await caller_of(request)
        return JSONResponse(await run_in_threadpool(gateway_().head))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes,
                description=app.description,
            )  # fmt: skip
            document.setdefault("components", {})["schemas"] = _schemas()
            document["components"]["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`sgledger gateway token create`",
                }
            }
            document["security"] = [{"bearer": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_ROUTING = {404: "not-found", 405: "method-not-allowed"}
_ENDPOINTS = (
    "POST /v1/events, POST /v1/events/batch, GET /v1/events/{id}, GET /v1/chain (described at /openapi.json)"
)


def _relay_forever(relay: Relay, stop: threading.Event) -> None:
    """The relay loop backs off while Kafka is unavailable; anything else it raises (a topic
    mismatch, a bug) is logged and retried too, so the gateway never stops delivering silently
    while it keeps accepting events."""
    while not stop.is_set():
        try:
            relay.run(stop, max_backoff_s=5.0)
        except Exception:
            log.exception("gateway relay failed; retrying in 5 s (events stay queued in the outbox)")
            stop.wait(5.0)


# -- request reading -----------------------------------------------------------------------------
def _media_type(request: Request, accepted: tuple[str, ...]) -> str:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in accepted:
        raise ProblemError(
            415, "unsupported-media-type", "Unsupported media type",
            f"Content-Type {media or 'missing'}; this endpoint takes {', '.join(accepted)}",
        )  # fmt: skip
    return media


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
        raise bad_request(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )
    return key


async def _read(request: Request, limit: int, caller: asyncio.Future[Caller] | None = None) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (never read whole first).
    ``caller``: the token's check, running meanwhile; once it has failed the rest of the body
    is left unread (and what was read is not answered: the 401 is)."""
    too_large = ProblemError(
        413, "body-too-large", "Request body too large",
        f"the body is larger than {limit} bytes, this endpoint's limit; send large documents by "
        "reference and large loads as several batches",
    )  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        if caller is not None and caller.done() and caller.exception() is not None:
            return b""
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# -- responses -----------------------------------------------------------------------------------
def _receipts(events: list[SignedEvent]) -> list[dict[str, Any]]:
    return [
        {
            "id": event.event_id,
            "sequence": event.sequence,
            "digest": event.digest,
            "status": "queued",
            "status_url": f"/v1/events/{event.event_id}",
        }
        for event in events
    ]


# One receipt of ``_receipts`` as ``JSONResponse`` writes it, for ids that JSON writes as they are.
_RECEIPT = b'{"id":"%b","sequence":%d,"digest":"%b","status":"queued","status_url":"/v1/events/%b"}'
_PLAIN_IDS = re.compile(r"[0-9A-Za-z._:-]*")


def _batch_receipt(events: list[SignedEvent]) -> bytes:
    """The batch answer, ``{"count": n, "events": _receipts(events)}``, written as the bytes
    ``JSONResponse`` writes for it, from one template per event: building thousands of dicts
    and encoding them cost the serving process about a tenth of a signature per event (issue
    11). Ids are UUIDs by the envelope schema; should one need escaping, the dicts are encoded."""
    if not _PLAIN_IDS.fullmatch("".join(e.event_id for e in events)):
        return bytes(JSONResponse({"count": len(events), "events": _receipts(events)}).body)
    receipts = [
        _RECEIPT % (ids, e.sequence, e.digest.encode("ascii"), ids)
        for e in events
        for ids in (e.event_id.encode("ascii"),)
    ]
    return b'{"count":%d,"events":[%b]}' % (len(events), b",".join(receipts))


def _replayed(outcome: Outcome) -> dict[str, str]:
    return {"Idempotent-Replayed": "true"} if outcome.replayed else {}


# -- the OpenAPI document's schemas ----------------------------------------------------------------
def _operation(
    bodies: dict[str, str],
    answer: str,
    errors: list[int],
    located: bool = False,
    path_parameter: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation's request bodies and every answer it gives, with the headers a client acts
    on (``located``: a 202 says where the event is in ``Location``)."""
    success: dict[str, Any] = {
        "description": "Durably queued" if bodies else "Found",
        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{answer}"}}},
    }
    if bodies:
        named = ["Idempotent-Replayed", "Location"] if located else ["Idempotent-Replayed"]
        success["headers"] = {name: _HEADERS[name] for name in named}
    responses: dict[str, Any] = {"202" if bodies else "200": success}
    for code in errors:
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if code in _ERROR_HEADERS:
            responses[str(code)]["headers"] = {_ERROR_HEADERS[code]: _HEADERS[_ERROR_HEADERS[code]]}
    idempotency = {
        "name": IDEMPOTENCY_HEADER,
        "in": "header",
        "required": False,
        "description": "Makes a retry return the events of the first request instead of new ones "
        "(same key, different request: 409).",
        "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
    }
    parameters = [idempotency] if bodies else [path_parameter] if path_parameter else []
    operation: dict[str, Any] = {"parameters": parameters, "responses": responses}
    if bodies:
        operation["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"$ref": f"#/components/schemas/{name}"}} for media, name in bodies.items()
            },
        }
    return operation


_EVENT_ID = {
    "name": "event_id",
    "in": "path",
    "required": True,
    "description": "The event id a 202 answered with (any other text is simply not found: 404).",
    "schema": {"type": "string"},
}

_HEADERS: dict[str, dict[str, Any]] = {
    "Location": {
        "description": "Where `GET` says where the event is (the receipt's `status_url`).",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when an earlier request with this Idempotency-Key stored these events: "
        "nothing new was stored. Absent otherwise.",
        "schema": {"const": "true"},
    },
    "WWW-Authenticate": {"description": "`Bearer` (RFC 6750).", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before the retry.", "schema": {"type": "integer"}},
}
_ERROR_HEADERS = {401: "WWW-Authenticate", 503: "Retry-After"}

_ERRORS = {
    400: "The body is not JSON, or a header is malformed",
    401: "No, unknown, expired or revoked bearer token",
    404: "No such event in this gateway's outbox",
    409: "Idempotency-Key reused for a different request, event id reused, or not the next in the chain",
    413: "Body or batch over the limit",
    415: "Content-Type not taken by this endpoint",
    422: "The event breaks the contract: every problem is listed",
    503: "The outbox database is unavailable: retry with the same Idempotency-Key",
}

_TIME = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 with an offset",
    "examples": ["2024-03-05T21:40:00+00:00"],
}


def _schemas() -> dict[str, Any]:
    envelope = {k: v for k, v in envelope_schema().items() if k not in ("$schema", "$id")}
    draft = {
        "type": "object",
        "description": "An event before the gateway signs it; `data` follows the schema of `type`.",
        "required": ["type", "subject", "data"],
        "additionalProperties": False,
        "properties": {
            "type": {
                "type": "string",
                "description": "An agency event type of the vocabulary (docs/vocabulary.md).",
                "examples": ["incident.reported"],
            },
            "subject": {
                "type": "string",
                "description": "The child's pseudonymous id.",
                "examples": ["C-1"],
            },
            "time": {**_TIME, "description": "When it happened. Default: recordedtime."},
            "recordedtime": {
                **_TIME,
                "description": "When the agency recorded it. Default: when the gateway received the request "
                "(one time for every draft of a batch). At most 5 minutes ahead of the gateway's "
                "clock and inside the key's validity (docs/keys.md).",
            },
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "The event id. Default: a new UUID.",
            },
            "data": {
                "type": "object",
                "description": "The payload: ledger/schemas/TYPE.json.",
                "examples": [
                    {
                        "incident_ref": "INC-1",
                        "children_present": True,
                        "domestic_abuse": True,
                        "parties": [{"person": "P-m", "role": "victim"}],
                    }
                ],
            },
        },
    }
    assert set(draft["properties"]) == set(DRAFT_FIELDS)  # type: ignore[call-overload]
    receipt = {
        "type": "object",
        "required": ["id", "sequence", "digest", "status", "status_url"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "The event id."},
            "sequence": {"type": "integer", "description": "Its place in the agency's chain."},
            "digest": {
                "type": "string",
                "description": "SHA-256 (hex) of the signed event's RFC 8785 form (the next prevhash).",
            },
            "status": {"const": "queued", "description": "Committed to the outbox."},
            "status_url": {"type": "string", "description": "Where `GET` says where it is."},
        },
    }
    return {
        "Draft": draft,
        "DraftArray": {"type": "array", "items": {"$ref": "#/components/schemas/Draft"}},
        "NdjsonDrafts": {
            "type": "string",
            "description": "One Draft as JSON per line (application/x-ndjson).",
        },
        "SignedEvent": envelope,
        "SignedEventArray": {"type": "array", "items": {"$ref": "#/components/schemas/SignedEvent"}},
        "Receipt": receipt,
        "BatchReceipt": {
            "type": "object",
            "required": ["count", "events"],
            "properties": {
                "count": {"type": "integer", "description": "How many events were stored."},
                "events": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Receipt"},
                    "description": "One receipt per item, in the request's order (consecutive sequences).",
                },
            },
        },
        "EventStatus": {
            "type": "object",
            "required": ["id", "status", "sequence", "digest"],
            "properties": {
                "id": {"type": "string", "format": "uuid", "description": "The event id."},
                "status": {
                    "enum": ["queued", "sent", "accepted", "held", "quarantined"],
                    "description": "queued: in the outbox; sent: acknowledged by Kafka; accepted, held "
                    "(clears by itself) or quarantined: the partnership's verdict, seen only with "
                    "`--partnership-database-url`.",
                },
                "type": {"type": "string", "description": "The event type."},
                "subject": {"type": "string", "description": "The child's pseudonymous id."},
                "sequence": {"type": "integer", "description": "Its place in the agency's chain."},
                "digest": {
                    "type": "string",
                    "description": "SHA-256 (hex) of the signed event's RFC 8785 form.",
                },
                "queued_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the outbox took it.",
                },
                "sent_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When Kafka acknowledged it.",
                },
                "kafka": {
                    "type": "object",
                    "description": "Where it landed, once sent.",
                    "properties": {
                        "topic": {"type": "string", "description": "The intake topic."},
                        "partition": {"type": "integer", "description": "Its partition."},
                        "offset": {"type": "integer", "description": "Its offset in that partition."},
                    },
                },
                "accepted_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the partnership's ledger accepted it.",
                },
                "received_at": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the partnership received it (held or quarantined).",
                },
                "reason": {
                    "type": "string",
                    "description": "Why it is held or quarantined (machine-readable).",
                },
                "detail": {"type": "string", "description": "What to do about it."},
                "partnership": {"type": "string", "description": "Why acceptance cannot be seen from here."},
            },
        },
        "ChainHead": {
            "type": "object",
            "required": ["agency", "kid", "sequence", "digest"],
            "properties": {
                "agency": {"type": "string", "description": "The agency this gateway signs for (`source`)."},
                "kid": {"type": "string", "description": "The id of the key it holds (`kid`)."},
                "sequence": {"type": "integer", "description": "Last sequence stored; 0 before the first."},
                "digest": {"type": "string", "description": "Its digest; the next event's prevhash."},
            },
        },
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "description": "urn:safeguarding-ledger:problem:<slug>"},
                "title": {"type": "string", "description": "The kind of problem, in words."},
                "status": {"type": "integer", "description": "The HTTP status."},
                "detail": {"type": "string", "description": "What went wrong and what to do."},
                "instance": {"type": "string", "description": "The request's path."},
                "problems": {
                    "type": "array",
                    "description": "422 `invalid-event`: every problem of every item.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {
                                "type": "string",
                                "description": "JSON pointer into the body; a batch's start with the "
                                "item's index (`/3/data/children_present`)",
                            },
                            "expected": {"type": "string", "description": "What the contract takes there."},
                            "got": {"type": "string", "description": "What was sent (`nothing` if missing)."},
                        },
                    },
                },
                "sequence": {
                    "type": "integer",
                    "description": "409 `chain-position`: the sequence the event must carry (head + 1).",
                },
                "prevhash": {
                    "type": "string",
                    "description": "409 `chain-position`: the prevhash it must carry (the head's digest).",
                },
            },
        },
    }
