"""The workbench's traffic with the store: load a session's traces read-only, write its scores back.

Scores are written as Feedback assessments whose metadata carries ``tui_eval.generation`` and
``tui_eval.moduleHash``. Writing generation G stores G's cells, then invalidates (``valid =
False``) the workbench feedback of the same names on those traces from any other generation,
so ``search_traces`` and exports see exactly the latest scores. Rows invalidated by the write
before are deleted, so the store contains at most two generations of workbench scores instead
of one more per save.

Assessment ids of a session are ``"a-" + token + generation + position`` in hex (12 + 8 + 12
digits), which lets a later write name the rows of an earlier generation without reading them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_eval.entities.assessment import Assessment, Feedback
from tui_eval.entities.span import SpanAttributeKey, decode_attribute
from tui_eval.entities.trace import Trace
from tui_eval.errors import StoreError, TraceFormatError
from tui_eval.genai.scoring import ScoringItem, item_from_trace
from tui_eval.workbench.results import (
    GENERATION_KEY,
    MODULE_HASH_KEY,
    NONE_SCORERS_KEY,
    SCORER_KEY,
    WORKBENCH_KEYS,
    Cell,
    cell_from_feedback,
    feedback_from_cell,
)

logger = logging.getLogger(__name__)

# Traces read per query while loading, and assessments written per transaction.
LOAD_BATCH = 500
WRITE_BATCH = 5000


@dataclass
class LoadedTraces:
    """What the zygote loads: one scoring item per trace, and the workbench scores already stored.

    ``restored`` maps trace ids to the cells of the newest stored generation on that trace.
    ``restored_ids`` are those rows' assessment ids and ``stale_ids`` the ids of older or
    invalidated workbench rows. Later writes delete both.
    """

    items: list[Any]
    trace_ids: list[str]
    restored: dict[str, list[Cell]] = field(default_factory=dict)
    # The scorers that returned None on a trace in the restored generation.
    restored_none: dict[str, tuple[str, ...]] = field(default_factory=dict)
    restored_generation: int | None = None
    restored_module_hash: str | None = None
    restored_ids: list[str] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)
    missing: int = 0


def load_traces(store_path: str | Path, trace_ids: Sequence[str]) -> LoadedTraces:
    """Read the traces ``trace_ids`` (in that order) through a read-only connection.

    Each item gets its inputs, outputs and expectations at once. Its ``Trace`` object is built
    from the stored JSON on first use or by ``build_traces``, because building every trace up
    front takes about half a millisecond per trace (2 vCPU EPYC VM, demo-shaped traces). Traces deleted since the ids were listed
    are skipped and counted in ``missing``.
    """
    from tui_eval.genai.aggregation import classify_value
    from tui_eval.store.connection import connect, read_transaction, retry_on_busy

    path = Path(store_path)
    if not path.is_file():
        raise StoreError(f"cannot load traces: the store {path} does not exist; pass an existing store with --store")
    connection = connect(path, read_only=True)
    loaded = LoadedTraces(items=[], trace_ids=[])
    newest: tuple[int, str | None] = (-1, None)
    try:
        for start in range(0, len(trace_ids), LOAD_BATCH):
            batch = list(trace_ids[start : start + LOAD_BATCH])

            def read(batch: list[str] = batch) -> tuple[list[Any], dict[str, list[dict[str, Any]]]]:
                with read_transaction(connection):
                    return _read_rows(connection, batch)

            rows, assessments = retry_on_busy(read, what="read traces for the workbench")
            by_id = {row[0]: row for row in rows}
            for trace_id in batch:
                row = by_id.get(trace_id)
                if row is None:
                    loaded.missing += 1
                    continue
                stored = assessments.get(trace_id, [])
                try:
                    item, parsed = _stored_item(trace_id, row[1], row[2], stored)
                except (TraceFormatError, ValueError, TypeError) as error:
                    logger.error("skipping the stored trace %s, which cannot be read: %s", trace_id, error)
                    loaded.missing += 1
                    continue
                loaded.items.append(item)
                loaded.trace_ids.append(trace_id)
                generation, module_hash = _collect_stored_scores(trace_id, parsed, loaded, classify_value)
                if generation is not None and generation > newest[0]:
                    newest = (generation, module_hash)
    finally:
        connection.close()
    if newest[0] >= 0:
        loaded.restored_generation, loaded.restored_module_hash = newest
    return loaded


def _read_rows(connection: Any, trace_ids: list[str]) -> tuple[list[Any], dict[str, list[dict[str, Any]]]]:
    payload = json.dumps(trace_ids)
    rows = connection.execute(
        "SELECT trace_id, info_json, spans_json FROM traces WHERE trace_id IN (SELECT value FROM json_each(?))",
        (payload,),
    ).fetchall()
    assessments: dict[str, list[dict[str, Any]]] = {}
    for trace_id, text in connection.execute(
        "SELECT trace_id, assessment_json FROM assessments "
        "WHERE trace_id IN (SELECT value FROM json_each(?)) ORDER BY rowid",
        (payload,),
    ):
        assessments.setdefault(trace_id, []).append(json.loads(text))
    return rows, assessments


class StoredItem(ScoringItem):
    """A ScoringItem whose ``trace`` is built from the stored JSON the first time it is read."""

    __slots__ = ("_source",)

    @property  # type: ignore[override]
    def trace(self) -> Any:
        built = _TRACE_SLOT.__get__(self)
        if built is None and self._source is not None:
            built = _build_trace(*self._source)
            _TRACE_SLOT.__set__(self, built)
            self._source = None
        return built

    @trace.setter
    def trace(self, value: Any) -> None:
        _TRACE_SLOT.__set__(self, value)

    @property
    def trace_built(self) -> bool:
        return self._source is None


_TRACE_SLOT: Any = ScoringItem.__dict__["trace"]


def _build_trace(trace_id: str, info_json: str, spans_json: str, assessments: list[dict[str, Any]]) -> Trace | None:
    info = json.loads(info_json)
    info["assessments"] = assessments
    try:
        return Trace.from_dict({"info": info, "data": {"spans": json.loads(spans_json)}})
    except TraceFormatError as error:
        logger.error("the stored trace %s cannot be read, so scorers get trace=None: %s", trace_id, error)
        return None


def _stored_item(
    trace_id: str, info_json: str, spans_json: str, stored: list[dict[str, Any]]
) -> tuple[ScoringItem, list[Any]]:
    """Build the item of one stored trace, reading only its root span and assessments.

    Returns the item and the workbench feedback it parsed.
    The values match ``item_from_trace``: the first span without a parent is the root, and
    every valid expectation is keyed by name.
    """
    root = _root_span(spans_json)
    parsed = [Assessment.from_dictionary(data) for data in stored if GENERATION_KEY in (data.get("metadata") or {})]
    if root is not None and ("context" in root or not isinstance(root.get("attributes") or {}, dict)):
        # A layout the store does not write itself: let the entity code read it all.
        trace = _build_trace(trace_id, info_json, spans_json, stored)
        if trace is None:
            raise TraceFormatError(f"trace {trace_id} cannot be read")
        return item_from_trace(trace), parsed
    attributes = (root or {}).get("attributes") or {}
    expectations = {
        data.get("assessment_name", data.get("name")): _expectation_value(data)
        for data in stored
        if "expectation" in data and data.get("valid") is not False
    }
    item = StoredItem(
        trace_id=trace_id,
        inputs=decode_attribute(attributes.get(SpanAttributeKey.INPUTS)),
        outputs=decode_attribute(attributes.get(SpanAttributeKey.OUTPUTS)),
        expectations=expectations,
    )
    item._source = (trace_id, info_json, spans_json, stored)
    return item, parsed


_DECODER = json.JSONDecoder()


def _root_span(spans_json: str) -> dict[str, Any] | None:
    """Return the first span without a parent, decoding only the first span when it is the root (the usual case)."""
    text = spans_json.lstrip()
    if text.startswith("[{"):
        first, _end = _DECODER.raw_decode(text, 1)
        if isinstance(first, dict) and not first.get("parent_span_id", first.get("parent_id")):
            return first
    spans = json.loads(spans_json)
    return next((span for span in spans if not span.get("parent_span_id", span.get("parent_id"))), None)


def _expectation_value(data: dict[str, Any]) -> Any:
    """Decode an expectation dict's value the way ``Expectation.from_dictionary`` does."""
    expectation = data.get("expectation") or {}
    if "serialized_value" in expectation:
        serialized = expectation["serialized_value"] or {}
        return json.loads(serialized.get("value", "null"))
    return expectation.get("value")


def build_traces(items: Sequence[Any], start: int, budget_s: float) -> int:
    """Build the Trace objects of ``items`` from ``start`` on for about ``budget_s`` seconds; returns where it stopped."""
    deadline = time.monotonic() + budget_s
    position = start
    while position < len(items) and time.monotonic() < deadline:
        item = items[position]
        if isinstance(item, StoredItem) and not item.trace_built:
            item.trace  # noqa: B018 - reading it builds it
        position += 1
    return position


def _collect_stored_scores(
    trace_id: str, parsed: list[Any], loaded: LoadedTraces, classify: Any
) -> tuple[int | None, str | None]:
    """Sort a trace's workbench feedback into the newest generation's cells and stale ids."""
    by_generation: dict[int, list[Feedback]] = {}
    for assessment in parsed:
        if not isinstance(assessment, Feedback) or not assessment.metadata:
            continue
        tag = assessment.metadata.get(GENERATION_KEY)
        if tag is None:
            continue
        try:
            generation = int(tag)
        except ValueError:
            generation = -1
        if assessment.valid is False or generation < 0:
            if assessment.assessment_id:
                loaded.stale_ids.append(assessment.assessment_id)
            continue
        by_generation.setdefault(generation, []).append(assessment)
    if not by_generation:
        return None, None
    newest = max(by_generation)
    for generation, feedbacks in by_generation.items():
        target = loaded.restored_ids if generation == newest else loaded.stale_ids
        target.extend(feedback.assessment_id for feedback in feedbacks if feedback.assessment_id)
    cells = []
    none_names: list[str] = []
    for feedback in by_generation[newest]:
        none_names.extend(_parse_none_names(trace_id, (feedback.metadata or {}).get(NONE_SCORERS_KEY)))
        metadata = {key: value for key, value in (feedback.metadata or {}).items() if key not in WORKBENCH_KEYS}
        scorer = (feedback.metadata or {}).get(SCORER_KEY) or _scorer_without_key(feedback)
        feedback_copy = Feedback(
            name=feedback.name,
            value=feedback.value,
            error=feedback.error,
            source=feedback.source,
            metadata=metadata or None,
            span_id=feedback.span_id,
            rationale=feedback.rationale,
            _allow_empty=True,
        )
        cells.append(cell_from_feedback(feedback_copy, classify(feedback_copy), scorer))
    loaded.restored[trace_id] = cells
    if none_names:
        loaded.restored_none[trace_id] = tuple(dict.fromkeys(none_names))
    module_hash = (by_generation[newest][0].metadata or {}).get(MODULE_HASH_KEY)
    return newest, module_hash


def _parse_none_names(trace_id: str, text: str | None) -> list[str]:
    if not text:
        return []
    try:
        names = json.loads(text)
    except ValueError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        logger.warning("ignoring the invalid %s metadata %r on trace %s", NONE_SCORERS_KEY, text, trace_id)
        return []
    return names


def _scorer_without_key(feedback: Feedback) -> str:
    """Guess the scorer of a row written before rows carried ``SCORER_KEY``.

    A scorer's feedback is named after the scorer unless it sets a name. Its source id is the
    scorer's name only when the scorer set one, because "default" is what a Feedback without a
    source gets.
    """
    source_id = feedback.source.source_id if feedback.source is not None else None
    if source_id and source_id != "default":
        return source_id
    return feedback.name


# -- writing ----------------------------------------------------------------------------------


def assessment_id(token: str, generation: int, position: int) -> str:
    """Return the id of the ``position``-th assessment a session (``token``, 12 hex digits) writes for a generation."""
    return f"a-{token}{generation & 0xFFFFFFFF:08x}{position & 0xFFFFFFFFFFFF:012x}"


def generated_ids(token: str, generation: int, count: int) -> Iterable[str]:
    return (assessment_id(token, generation, position) for position in range(count))


def write_generation(store_path: str | Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Store one generation's cells, invalidate older workbench scores of the same names, delete older rows.

    ``payload`` keys: ``generation``, ``module_hash``, ``create_time_ms``, ``token``, ``rows``
    (``[(trace_id, cells)]``), ``none_names`` (``{trace_id: scorer names that returned None}``), ``names`` (assessment names to replace), ``delete_ids`` and
    ``delete_generated`` (``[(token, generation, count)]``). Returns counts for the log.
    """
    from tui_eval.store import Store

    started = time.monotonic()
    generation = int(payload["generation"])
    token = payload["token"]
    rows: list[tuple[str, Sequence[Cell]]] = payload["rows"]
    none_names: dict[str, Sequence[str]] = payload.get("none_names") or {}
    trace_ids = [trace_id for trace_id, _ in rows]
    written = 0
    with Store(store_path) as store:
        # Invalidate before inserting. Another session writing to the same store at the same time
        # invalidates every generation but its own, so if each writer inserted first, each could
        # invalidate the other's new rows and leave no valid scores. Invalidating first means the
        # last writer to invalidate keeps all of its rows valid. Readers may find no valid
        # workbench scores while the inserts run.
        invalidated = 0
        for name in payload["names"]:
            invalidated += store.invalidate_assessments(trace_ids, name=name, generation_tag=str(generation))

        batch: list[Feedback] = []
        position = 0
        for trace_id, cells in rows:
            # NOTE: a trace where every scorer returned None has no row to carry its None names,
            # so a restored generation shows those calls as not scored.
            nones = none_names.get(trace_id)
            for index, cell in enumerate(cells):
                feedback = feedback_from_cell(
                    cell,
                    trace_id,
                    generation=generation,
                    module_hash=payload["module_hash"],
                    create_time_ms=payload["create_time_ms"],
                )
                if index == 0 and nones:
                    feedback.metadata[NONE_SCORERS_KEY] = json.dumps(list(nones))
                feedback.assessment_id = assessment_id(token, generation, position)
                position += 1
                batch.append(feedback)
                if len(batch) >= WRITE_BATCH:
                    store.log_assessments(batch)
                    written += len(batch)
                    batch = []
        if batch:
            store.log_assessments(batch)
            written += len(batch)

        doomed = list(payload.get("delete_ids") or ())
        for old_token, old_generation, count in payload.get("delete_generated") or ():
            doomed.extend(generated_ids(old_token, old_generation, count))
        deleted = 0
        for start in range(0, len(doomed), WRITE_BATCH):
            deleted += store.delete_assessments(doomed[start : start + WRITE_BATCH])
    return {
        "written": written,
        "invalidated": invalidated,
        "deleted": deleted,
        "seconds": time.monotonic() - started,
    }


def serve_writer(connection: Any) -> None:
    """Run the writer process: receive one payload, write it, and send back the counts or the error."""
    try:
        store_path, payload = connection.recv()
    except EOFError:
        return
    try:
        outcome = write_generation(store_path, payload)
    except Exception as exc:  # noqa: BLE001 - reported to the session, which logs it
        logger.exception("writing generation %s to %s failed", payload.get("generation"), store_path)
        connection.send(("write_failed", f"{type(exc).__name__}: {exc}"))
        return
    connection.send(("written", outcome))
