"""Item routes of the API: submit one or a batch, read one, list a page.

Views only parse the request and shape the answer; ``app.services.submission`` checks the
fields, ``app.services.ingest`` stores and records, ``app.services.source_items`` reads.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, jsonify, request, url_for

from app.extensions import db
from app.models.action import ActionRun
from app.models.item import Item
from app.models.review import Decision
from app.services import actions, decisions, pipeline
from app.services.ingest import Limits, accept_item
from app.services.media import MediaError, read_limited
from app.services.source_items import ItemFilter, get_source_item, list_source_items
from app.services.submission import (
    IngestError,
    Submission,
    parse_item,
    parse_json_body,
    parse_timestamp,
)
from app.views.api import (
    ApiError,
    bp,
    charge,
    current_actor,
    current_source,
    current_source_ref,
)

log = logging.getLogger(__name__)
MAX_BATCH = 100
LIST_PARAMETERS = {"external_id", "status", "since", "cursor", "limit"}


@bp.post("/items")
def create_item() -> tuple[Response, int, dict[str, str]] | tuple[Response, int]:
    """Accept one item: 202 when new, 200 with the item when this external_id is known."""
    limits = Limits.from_config()
    if request.mimetype == "multipart/form-data":
        submission = _multipart_submission(limits)
    elif request.mimetype == "application/json":
        payload = parse_json_body(request.get_data(cache=False))
        submission = parse_item(payload, max_image_bytes=limits.max_bytes)
    else:
        raise ApiError(
            415,
            "unsupported_content_type",
            "Send the item as application/json or "
            "as multipart/form-data with parts 'image' and 'item'.",
        )
    accepted = accept_item(current_source_ref(), submission, current_actor(), limits)
    if not accepted.created:
        return jsonify(item_json(accepted.item)), 200
    url = item_url(accepted.item_id)
    return (
        jsonify({"id": accepted.item_id, "status": accepted.status, "url": url}),
        202,
        {"Location": url},
    )


@bp.post("/items/batch")
def create_items() -> Response:
    """Accept up to 100 items; each gets its own result, one bad item never fails the others."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_content_type", "Send the batch as application/json.")
    payload = parse_json_body(request.get_data(cache=False))
    if not isinstance(payload, dict) or set(payload) != {"items"}:
        raise IngestError(
            "invalid_batch",
            'The batch must be {"items": [ … ]} with no other fields.',
            field="items",
        )
    entries = payload["items"]
    if not isinstance(entries, list) or not entries:
        raise IngestError("invalid_batch", "items must be a list of 1 to 100 items.", field="items")
    if len(entries) > MAX_BATCH:
        raise IngestError(
            "batch_too_large",
            f"The batch holds {len(entries)} items; send at most {MAX_BATCH} per request.",
            status=413,
            field="items",
        )
    charge(len(entries) - 1)  # the request itself was charged one already
    limits = Limits.from_config()
    return jsonify(
        {"results": [_batch_result(i, entry, limits) for i, entry in enumerate(entries)]}
    )


@bp.get("/items/<item_id:item_id>")
def get_item(item_id: str) -> Response:
    """The item, if it belongs to the token's source (otherwise 404, as if it did not exist)."""
    item = get_source_item(current_source(), item_id)
    if item is None:
        raise ApiError(404, "not_found", "No item with this id belongs to your source.")
    return jsonify(item_json(item))


@bp.get("/items")
def list_items() -> Response:
    """The source's items, newest first, a page at a time."""
    args = request.args
    unknown = sorted(set(args) - LIST_PARAMETERS)
    if unknown:
        raise IngestError(
            "unknown_parameter",
            f"Unknown parameter {unknown[0]!r}; the "
            f"parameters are {', '.join(sorted(LIST_PARAMETERS))}.",
            field=unknown[0],
        )
    limit = args.get("limit", "50")
    if not limit.isdigit():
        raise IngestError(
            "invalid_value", "limit must be a whole number from 1 to 100.", field="limit"
        )
    wanted = ItemFilter(
        external_id=args.get("external_id"),
        status=args.get("status"),
        since=parse_timestamp(args.get("since"), "since"),
        cursor=args.get("cursor"),
        limit=int(limit),
    )
    page = list_source_items(current_source(), wanted)
    return jsonify(
        {"items": [item_json(item) for item in page.items], "next_cursor": page.next_cursor}
    )


def _multipart_submission(limits: Limits) -> Submission:
    image = request.files.get("image")
    if image is None:
        raise IngestError(
            "missing_field", "The multipart request needs a file part named 'image'.", field="image"
        )
    data = read_limited(image.stream, limits.max_bytes)
    item_part = request.files.get("item")
    raw = item_part.read() if item_part is not None else request.form.get("item", "").encode()
    if not raw:
        raise IngestError(
            "missing_field",
            "The multipart request needs a part named 'item' "
            "holding the item's JSON (at least external_id).",
            field="item",
        )
    declared = image.mimetype if image.mimetype != "application/octet-stream" else None
    return parse_item(
        parse_json_body(raw),
        max_image_bytes=limits.max_bytes,
        image_part=data,
        declared_type=declared,
    )


def _batch_result(index: int, entry: Any, limits: Limits) -> dict[str, Any]:
    try:
        submission = parse_item(entry, max_image_bytes=limits.max_bytes, prefix=f"items[{index}].")
        accepted = accept_item(current_source_ref(), submission, current_actor(), limits)
    except (IngestError, MediaError) as refusal:
        field = getattr(refusal, "field", None) or f"items[{index}].image"
        return {
            "index": index,
            "status": refusal.status,
            "error": {"code": refusal.code, "message": refusal.message, "field": field},
        }
    except Exception:
        db.session.rollback()
        log.exception("batch item %d failed", index)
        return {
            "index": index,
            "status": 500,
            "error": {
                "code": "internal_error",
                "message": "This item could not be stored; resend it.",
                "field": None,
            },
        }
    return {
        "index": index,
        "status": 202 if accepted.created else 200,
        "id": accepted.item_id,
        "item_status": accepted.status,
        "url": item_url(accepted.item_id),
    }


def item_url(item_id: str) -> str:
    """The absolute URL a platform polls for the item."""
    return url_for("api.get_item", item_id=item_id, _external=True)


def item_json(item: Item) -> dict[str, Any]:
    """The item as its source sees it."""
    return {
        "id": item.id,
        "url": item_url(item.id),
        "external_id": item.external_id,
        "status": item.status,
        "status_reason": item.status_reason,
        "image_url": item.image_url,
        "hashes": {
            "sha256": item.sha256,
            "md5": item.md5,
            "pdq": item.pdq,
            "pdq_quality": item.pdq_quality,
        },
        "mime": item.mime,
        "width": item.width,
        "height": item.height,
        "bytes": item.bytes,
        "frames": item.frames,
        "uploader": {"id": item.uploader_id, "name": item.uploader_name, "ip": item.uploader_ip},
        "context": {
            "url": item.context_url,
            "text": item.context_text,
            "created_at": _timestamp(item.context_created_at),
        },
        "metadata": item.item_metadata or {},
        "callback_url": item.callback_url,
        "created_at": _timestamp(item.created_at),
        "updated_at": _timestamp(item.updated_at),
        "scan_results": list(pipeline.scan_results_for(item)),
        "decision": decision_json(decisions.current_decision(item.id)),
        "actions": [action_json(run) for run in actions.runs_for_item(item.id)],
    }


def decision_json(decision: Decision | None) -> dict[str, Any] | None:
    """The decision as the platform may see it: what, why, when, and whether a person made it.

    The moderator's identity and note stay inside the dashboard.
    """
    if decision is None:
        return None
    return {
        "outcome": decision.outcome,
        "category": decision.category,
        "dsa_category": decision.dsa_category,
        "automated": decision.user_id is None,
        "decided_at": _timestamp(decision.created_at),
    }


def action_json(run: ActionRun) -> dict[str, Any]:
    """An action taken (or queued) on the item, without internal error detail."""
    return {
        "action": run.action,
        "status": run.status,
        "attempts": run.attempts,
        "external_ref": run.external_ref,
        "created_at": _timestamp(run.created_at),
        "finished_at": _timestamp(run.finished_at),
    }


def _timestamp(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
