"""``evaluate``: run scorers over evaluation data or stored traces and store the feedback.

The flow follows MLflow 3's ``mlflow.genai.evaluate``. It checks everything first and then
creates a run. Each row gets a trace: the one ``predict_fn`` records, the row's own, or a
one-span trace built from static inputs and outputs. After scoring, expectations and feedback
are stored on the traces in one transaction, tagged with the run, and the traces are linked
to the run.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import getpass
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tui_eval.entities import (
    Assessment,
    AssessmentSource,
    AssessmentSourceType,
    Expectation,
    Feedback,
    Span,
    SpanAttributeKey,
    SpanStatus,
    SpanStatusCode,
    SpanType,
    Trace,
    TraceData,
    TraceInfo,
    TraceLocation,
    TraceState,
)
from tui_eval.entities import ids
from tui_eval.entities.assessment import SOURCE_RUN_ID_KEY
from tui_eval.errors import InvalidParameterError
from tui_eval.genai import dataset, prediction
from tui_eval.genai.aggregation import add_none_counts, aggregate_values, collect_values, validate_aggregations
from tui_eval.genai.scorers import Scorer
from tui_eval.genai.scoring import PreparedScorer, ScoringItem, frozen_garbage_collector, prepare_scorers
from tui_eval.tracing import fluent, provider, summary
from tui_eval.tracing.encoding import dump_value

if TYPE_CHECKING:
    import pandas

    from tui_eval.store import Store

logger = logging.getLogger(__name__)

MAX_WORKERS_ENV_VARS = ("TUI_EVAL_MAX_WORKERS", "MLFLOW_GENAI_EVAL_MAX_WORKERS")
DEFAULT_MAX_WORKERS = 10
PROGRESS_ENV_VAR = "TUI_EVAL_PROGRESS"
RUN_KIND = "evaluation"

# Row tags MLflow does not copy onto traces.
_RESERVED_TAGS = ("mlflow.user", "mlflow.artifactLocation")
# Trace tag MLflow gives the traces produced for an evaluation row.
EVAL_REQUEST_ID_TAG = "mlflow.eval.requestId"
MINIMAL_ROOT_SPAN_NAME = "root_span"
# Trace ids the store's filter grammar can quote as they are.
_PLAIN_TRACE_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_ID_QUERY_CHUNK = 500
# Rows scored in the calling thread before deciding whether the thread pool would help, and the
# time per row above which it does (scorers that wait on I/O rather than compute).
INLINE_PROBE_ROWS = 16
INLINE_MAX_SECONDS_PER_ROW = 0.002


_NOT_BUILT = object()


class EvaluationResult:
    """What ``evaluate`` returns: the run, its metrics, and one result row per evaluated trace.

    ``result_df`` is built on first access, because serialising every trace for it costs
    more than the rest of a re-scoring run. It is None if it cannot be built. ``counts`` (a
    tui_eval extension) gives per assessment name how many values were scored and how many
    were left out of the metrics as NaN, None, errors or other values.
    """

    def __init__(
        self,
        run_id: str,
        metrics: dict[str, float],
        result_df: pandas.DataFrame | None = None,
        counts: dict[str, dict[str, int]] | None = None,
        *,
        build_result_df: Callable[[], pandas.DataFrame | None] | None = None,
    ):
        self.run_id = run_id
        self.metrics = metrics
        self.counts = counts if counts is not None else {}
        self._result_df: Any = result_df if build_result_df is None else _NOT_BUILT
        self._build_result_df = build_result_df

    @property
    def result_df(self) -> pandas.DataFrame | None:
        if self._result_df is _NOT_BUILT:
            self._result_df = self._build_result_df()
            self._build_result_df = None
        return self._result_df

    @property
    def tables(self) -> dict[str, pandas.DataFrame | None]:
        """The result frame under the name ``eval_results``, as older MLflow code reads it."""
        return {"eval_results": self.result_df}

    def __repr__(self) -> str:
        return f"EvaluationResult(run_id={self.run_id!r}, metrics={self.metrics!r})"


def evaluate(
    data: Any,
    scorers: Sequence[Scorer],
    predict_fn: Callable[..., Any] | None = None,
    *,
    max_workers: int | None = None,
    run_name: str | None = None,
    model_id: str | None = None,
) -> EvaluationResult:
    """Score evaluation data or stored traces with ``scorers`` and store the results.

    ``data`` is a list of dicts (``inputs``, ``outputs``, ``expectations``, ``tags``,
    ``trace``), a list of Trace, or a DataFrame such as the one ``search_traces`` returns.
    With ``predict_fn``, each row's inputs are passed as ``predict_fn(**inputs)`` and its
    return value is what scorers see as ``outputs``. Rows run on ``max_workers`` threads
    (default: ``TUI_EVAL_MAX_WORKERS``, then ``MLFLOW_GENAI_EVAL_MAX_WORKERS``, then 10).

    Raises ``InvalidParameterError`` before anything is written when the scorers, the data
    or ``predict_fn`` cannot work together.
    """
    with frozen_garbage_collector():
        return _evaluate(data, scorers, predict_fn, max_workers, run_name, model_id)


def _evaluate(
    data: Any,
    scorers: Sequence[Scorer],
    predict_fn: Callable[..., Any] | None,
    max_workers: int | None,
    run_name: str | None,
    model_id: str | None,
) -> EvaluationResult:
    checked = _check_scorers(scorers)
    validate_aggregations(checked)
    workers = _resolve_max_workers(max_workers)
    rows = dataset.read_rows(data)

    predict = None
    if predict_fn is not None:
        prediction.check_predict_fn(predict_fn, rows)
        records_spans = prediction.preflight(predict_fn, rows[0].inputs)
        predict = prediction.traced_predict_fn(predict_fn, records_spans)

    store = provider.get_store()
    experiment_id = provider.get_experiment_id()
    params = {"scorers": [item.name for item in checked], "rows": len(rows)}
    if predict_fn is not None:
        params["predict_fn"] = getattr(predict_fn, "__name__", type(predict_fn).__name__)
    if model_id is not None:
        params["model_id"] = model_id
    run_id = store.create_run(experiment_id, run_name, RUN_KIND, params)
    logger.info("Evaluation run %s started: %d rows, %d scorers", run_id, len(rows), len(checked))

    try:
        result = _Evaluation(store, experiment_id, run_id, checked, rows, predict, workers).run()
    except BaseException:
        store.update_run(run_id, status="FAILED")
        raise
    store.update_run(run_id, status="FINISHED", metrics=result.metrics)
    return result


def _check_scorers(scorers: Any) -> list[Scorer]:
    if not isinstance(scorers, (list, tuple)):
        raise InvalidParameterError(
            f"scorers must be a list of scorers, got {type(scorers).__name__}: pass scorers=[my_scorer]"
        )
    for position, item in enumerate(scorers):
        if isinstance(item, Scorer):
            continue
        hint = ""
        if isinstance(item, type) and issubclass(item, Scorer):
            hint = f"; it is a Scorer class, so pass an instance: {item.__name__}()"
        elif isinstance(item, (list, tuple)):
            hint = "; it is a nested list, so pass one flat list of scorers"
        elif callable(item):
            hint = "; decorate the function with @scorer"
        raise InvalidParameterError(
            f"scorers[{position}] is a {type(item).__name__}, not a scorer{hint}"
        )
    return list(scorers)


def _resolve_max_workers(max_workers: int | None) -> int:
    source = "max_workers"
    value: Any = max_workers
    if value is None:
        for name in MAX_WORKERS_ENV_VARS:
            if os.environ.get(name):
                source, value = name, os.environ[name]
                break
        else:
            return DEFAULT_MAX_WORKERS
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise InvalidParameterError(f"invalid {source} {value!r}: pass a whole number of threads, 1 or more")
    return number


@dataclass
class _Outcome:
    """The products of one row: its trace, the values scored and the feedback."""

    trace: Trace | None = None
    item: ScoringItem | None = None
    feedbacks: list[Feedback] = field(default_factory=list)
    none_counts: dict[str, int] = field(default_factory=dict)
    error: BaseException | None = None


class _Evaluation:
    """One evaluate call after validation: produce traces, score, store, build the result."""

    def __init__(
        self,
        store: Store,
        experiment_id: str,
        run_id: str,
        scorers: list[Scorer],
        rows: list[dataset.Row],
        predict: Callable[..., Any] | None,
        workers: int,
    ):
        self.store = store
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.scorers = scorers
        self.prepared = prepare_scorers(scorers)
        self.rows = rows
        self.predict = predict
        self.workers = workers
        self.outcomes = [_Outcome() for _ in rows]

    def run(self) -> EvaluationResult:
        started = time.perf_counter()
        with _Progress(len(self.rows)) as progress:
            if self.predict is not None:
                self._predict_and_score(progress)
            else:
                self._prepare_traces()
                self._score(progress)
        failed = [outcome for outcome in self.outcomes if outcome.error is not None]
        if failed:
            logger.warning(
                "predict_fn raised on %d of %d rows; those rows were scored with outputs None. First error: %s: %s",
                len(failed),
                len(self.rows),
                type(failed[0].error).__name__,
                failed[0].error,
            )

        assessments = self._store_results()
        stored = sum(len(items) for items in assessments)
        values, counts = collect_values(feedback for outcome in self.outcomes for feedback in outcome.feedbacks)
        metrics = aggregate_values(self.scorers, values)
        for outcome in self.outcomes:
            add_none_counts(counts, outcome.none_counts)
        logger.info(
            "Evaluation run %s finished in %.2fs: %d traces, %d assessments stored",
            self.run_id,
            time.perf_counter() - started,
            len(self.rows),
            stored,
        )
        return EvaluationResult(self.run_id, metrics, counts=counts, build_result_df=self._result_frame)

    # --- producing traces -----------------------------------------------------------------

    def _predict_and_score(self, progress: _Progress) -> None:
        def run_row(index: int) -> None:
            with provider.set_active_run(self.run_id):
                row = self.rows[index]
                outputs, trace_id, error = prediction.predict_row(self.predict, row.inputs)
                trace = None
                if trace_id is not None:
                    trace = fluent.get_trace(trace_id, silent=True)
                if trace is None:
                    logger.warning("predict_fn produced no trace for row %d; it is scored on a one-span trace", index)
                    trace = self._minimal_trace(row.inputs, outputs)
                    self.store.log_trace(trace)
                outcome = self.outcomes[index]
                outcome.trace = trace
                outcome.error = error
                outcome.item = ScoringItem(trace.info.trace_id, row.inputs, outputs, row.expectations or {}, trace)
                self._score_outcome(outcome)

        self._run_tasks([(run_row, index, 1) for index in range(len(self.rows))], progress)

    def _prepare_traces(self) -> None:
        """Give every row a trace: the row's own, or a new one-span trace from its inputs and outputs."""
        created: list[Trace] = []
        for row, outcome in zip(self.rows, self.outcomes):
            trace = row.trace
            if trace is None:
                trace = self._minimal_trace(row.inputs, row.outputs)
                created.append(trace)
            outcome.trace = trace
            outcome.item = ScoringItem(trace.info.trace_id, row.inputs, row.outputs, row.expectations or {}, trace)
        if created:
            self.store.log_traces(created)

    def _unstored_traces(self, traces: list[Trace]) -> list[Trace]:
        """Return the traces among ``traces`` that the store does not hold yet."""
        if not traces:
            return []
        by_id = {trace.info.trace_id: trace for trace in traces}
        plain = [trace_id for trace_id in by_id if _PLAIN_TRACE_ID.match(trace_id)]
        found: set[str] = set()
        for start in range(0, len(plain), _ID_QUERY_CHUNK):
            chunk = plain[start : start + _ID_QUERY_CHUNK]
            quoted = ", ".join(f"'{trace_id}'" for trace_id in chunk)
            found.update(self.store.search_trace_ids(filter_string=f"trace.request_id IN ({quoted})"))
        others = [trace_id for trace_id in by_id if not _PLAIN_TRACE_ID.match(trace_id)]
        if others:
            found.update(trace.info.trace_id for trace in self.store.get_traces(others))
        return [trace for trace_id, trace in by_id.items() if trace_id not in found]

    def _minimal_trace(self, inputs: Any, outputs: Any) -> Trace:
        """Build a trace with one CHAIN span named ``root_span`` holding a static row's inputs and outputs."""
        trace_id = ids.new_trace_id()
        now_ns = time.time_ns()
        raw = {
            SpanAttributeKey.REQUEST_ID: dump_value(trace_id),
            SpanAttributeKey.SPAN_TYPE: dump_value(SpanType.CHAIN),
            SpanAttributeKey.INPUTS: dump_value(inputs),
            SpanAttributeKey.OUTPUTS: dump_value(outputs),
        }
        root = Span(
            trace_id=trace_id,
            span_id=ids.new_span_id(),
            parent_id=None,
            name=MINIMAL_ROOT_SPAN_NAME,
            start_time_ns=now_ns,
            end_time_ns=now_ns,
            status=SpanStatus(SpanStatusCode.OK),
            attributes=raw,
        )
        info = TraceInfo(
            trace_id=trace_id,
            trace_location=TraceLocation.from_experiment_id(self.experiment_id),
            request_time=now_ns // 1_000_000,
            state=TraceState.OK,
            request_preview=summary.preview(raw[SpanAttributeKey.INPUTS], "user"),
            response_preview=summary.preview(raw[SpanAttributeKey.OUTPUTS], "assistant"),
            execution_duration=0,
            trace_metadata=summary.trace_metadata(root, [root], self.run_id),
            tags={summary.TRACE_NAME_TAG: MINIMAL_ROOT_SPAN_NAME, EVAL_REQUEST_ID_TAG: uuid.uuid4().hex},
        )
        return Trace(info, TraceData([root]))

    # --- scoring ----------------------------------------------------------------------------

    def _score(self, progress: _Progress) -> None:
        """Score every row: in this thread while scoring is cheap, on the thread pool once it is slow.

        Cheap scorers hold the GIL, so threads only add overhead; scorers that wait (an LLM
        judge over HTTP) gain from running side by side.
        """
        count = len(self.outcomes)
        done = 0
        started = time.perf_counter()
        while done < count:
            self._score_outcome(self.outcomes[done])
            done += 1
            progress.advance(1)
            if done >= INLINE_PROBE_ROWS and (time.perf_counter() - started) / done > INLINE_MAX_SECONDS_PER_ROW:
                break
        if done == count:
            return

        # Small chunks spread slow scorers over the threads.
        chunk = max(1, min(64, (count - done) // (self.workers * 4)))

        def run_chunk(start: int) -> None:
            for outcome in self.outcomes[start : start + chunk]:
                self._score_outcome(outcome)

        tasks = [(run_chunk, start, min(chunk, count - start)) for start in range(done, count, chunk)]
        self._run_tasks(tasks, progress)

    def _score_outcome(self, outcome: _Outcome) -> None:
        item = outcome.item
        feedbacks = outcome.feedbacks
        entry: PreparedScorer
        for entry in self.prepared:
            result = entry.score(item)
            if result is None:
                outcome.none_counts[entry.name] = outcome.none_counts.get(entry.name, 0) + 1
            else:
                feedbacks.extend(result)

    def _run_tasks(self, tasks: list[tuple[Callable[[int], None], int, int]], progress: _Progress) -> None:
        """Run ``(function, argument, rows)`` tasks on the thread pool, each in a copy of this context."""
        if self.workers == 1 or len(tasks) == 1:
            for function, argument, size in tasks:
                function(argument)
                progress.advance(size)
            return
        with concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="tui_eval-evaluate") as pool:
            futures = {
                pool.submit(contextvars.copy_context().run, function, argument): size
                for function, argument, size in tasks
            }
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()
                    progress.advance(futures[future])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    # --- storing ----------------------------------------------------------------------------

    def _store_results(self) -> list[list[Assessment]]:
        """Store expectations and feedback of every row in one transaction; return them per row."""
        user = _user_name()
        per_row: list[list[Assessment]] = []
        seen: set[int] = set()
        for row, outcome in zip(self.rows, self.outcomes):
            trace = outcome.trace
            root = trace.data.root_span
            span_id = root.span_id if root is not None else None
            new: list[Assessment] = []

            known = dataset.trace_expectations(trace)
            for name, value in (row.expectations or {}).items():
                if name in known or value is None:
                    continue
                new.append(
                    Expectation(
                        name=name,
                        value=value,
                        source=AssessmentSource(AssessmentSourceType.HUMAN, user),
                        trace_id=trace.info.trace_id,
                        span_id=span_id,
                        metadata={SOURCE_RUN_ID_KEY: self.run_id},
                    )
                )
            for feedback in outcome.feedbacks:
                if id(feedback) in seen:
                    continue
                seen.add(id(feedback))
                feedback.trace_id = trace.info.trace_id
                if feedback.span_id is None:
                    feedback.span_id = span_id
                metadata = dict(feedback.metadata) if feedback.metadata else {}
                metadata[SOURCE_RUN_ID_KEY] = self.run_id
                feedback.metadata = metadata
                new.append(feedback)
            per_row.append(new)

        self._log_assessments([assessment for items in per_row for assessment in items])
        self._apply_tags()
        for outcome, items in zip(self.outcomes, per_row):
            outcome.trace.info.assessments = [*outcome.trace.info.assessments, *items]
        self.store.link_traces_to_run(self.run_id, [outcome.trace.info.trace_id for outcome in self.outcomes])
        return per_row

    def _log_assessments(self, assessments: list[Assessment]) -> None:
        """Store the assessments in one transaction, first storing any trace the store lacks.

        Traces given as data usually come from this store, so the write is tried first and
        the traces are looked up only when the store reports missing ones.
        """
        try:
            self.store.log_assessments(assessments)
            return
        except InvalidParameterError:
            unstored = self._unstored_traces([row.trace for row in self.rows if row.trace is not None])
            if not unstored:
                raise
        logger.info("Storing %d traces from the data that the store did not contain", len(unstored))
        self.store.log_traces(unstored)
        self.store.log_assessments(assessments)

    def _apply_tags(self) -> None:
        for row, outcome in zip(self.rows, self.outcomes):
            if not row.tags:
                continue
            current = outcome.trace.info.tags
            for key, value in row.tags.items():
                if key in _RESERVED_TAGS or current.get(key) == value:
                    continue
                self.store.set_trace_tag(outcome.trace.info.trace_id, key, value)
                current[key] = value

    # --- result frame -----------------------------------------------------------------------

    def _result_frame(self) -> pandas.DataFrame | None:
        try:
            with frozen_garbage_collector():
                return build_result_frame(self.run_id, [outcome.trace for outcome in self.outcomes])
        except Exception:  # noqa: BLE001 - MLflow returns result_df None when it cannot be built
            logger.exception("Could not build result_df for run %s; it is None", self.run_id)
            return None


# Metadata key of the scores a workbench session stores (tui_eval.workbench.results.GENERATION_KEY),
# spelled out here because genai must not import the workbench.
WORKBENCH_GENERATION_KEY = "tui_eval.generation"


def build_result_frame(run_id: str, traces: Sequence[Trace]) -> pandas.DataFrame:
    """Build ``result_df``: trace_id, ``<name>/value`` per assessment, the search_traces columns,
    then ``<name>/rationale`` and ``<name>/error`` per feedback name.

    Assessments written by another run (``mlflow.assessment.sourceRunId``) or by a workbench
    session (``tui_eval.generation``) are left out. When a trace has two assessments of one name, the later one gives the cell.
    """
    import pandas

    from tui_eval.store.frame import dataframe_columns, trace_to_row

    value_names: dict[str, None] = {}
    feedback_names: dict[str, None] = {}
    cells: list[dict[str, Any]] = []
    for trace in traces:
        row: dict[str, Any] = {}
        for assessment in trace.info.assessments:
            if assessment.valid is False:
                continue
            metadata = assessment.metadata
            source_run = metadata.get(SOURCE_RUN_ID_KEY) if metadata else None
            if source_run is not None and source_run != run_id:
                continue
            if metadata and WORKBENCH_GENERATION_KEY in metadata:
                continue
            name = assessment.name
            value_names[name] = None
            if isinstance(assessment, Feedback):
                feedback_names[name] = None
                error = assessment.error
                row[f"{name}/value"] = None if error is not None else assessment.value
                row[f"{name}/rationale"] = assessment.rationale
                row[f"{name}/error"] = (error.error_message or error.error_code) if error is not None else None
            else:
                row[f"{name}/value"] = assessment.value
        cells.append(row)

    standard = [trace_to_row(trace) for trace in traces]
    columns: dict[str, list[Any]] = {"trace_id": [row["trace_id"] for row in standard]}
    for name in value_names:
        columns[f"{name}/value"] = [row.get(f"{name}/value") for row in cells]
    for column in dataframe_columns():
        if column != "trace_id":
            columns[column] = [row[column] for row in standard]
    for name in feedback_names:
        columns[f"{name}/rationale"] = [row.get(f"{name}/rationale") for row in cells]
        columns[f"{name}/error"] = [row.get(f"{name}/error") for row in cells]
    return pandas.DataFrame({name: pandas.Series(values, dtype=object) for name, values in columns.items()})


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "unknown"


class _Progress:
    """A rich progress bar on a terminal; silent when stderr is not a TTY or ``TUI_EVAL_PROGRESS=0``."""

    def __init__(self, total: int):
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if os.environ.get(PROGRESS_ENV_VAR, "1") == "0" or not sys.stderr.isatty():
            return self
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("Evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("evaluate", total=self.total)
        return self

    def advance(self, rows: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, rows)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)
