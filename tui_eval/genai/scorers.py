"""Scorers: the ``@scorer`` decorator and the class-based ``Scorer``, as in MLflow 3.

A scorer receives some of ``inputs``, ``outputs``, ``expectations``, ``trace`` and ``session``,
chosen by the names of its parameters, and returns a bool, int, float, str, Feedback, a list of
Feedback, or None. ``Scorer.run`` applies those rules; ``tui_eval.genai.scoring`` turns the
result into Feedback objects and never lets an exception escape.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import enum
import functools
import inspect
import logging
import weakref
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from tui_eval.entities.assessment import DEFAULT_FEEDBACK_NAME, Assessment, Feedback
from tui_eval.errors import InvalidParameterError, TuiEvalError

logger = logging.getLogger(__name__)

# The values a scorer can receive, in the order MLflow's ``Scorer.run`` lists them.
SCORER_PARAMETER_NAMES = ("inputs", "outputs", "expectations", "trace", "session")

# Metadata flag MLflow sets on a Feedback whose name was not chosen by the user.
USER_DEFINED_NAME_KEY = "_user_defined_assessment_name"

_ALLOWED_RESULT_TYPES = "bool, int, float, str, Feedback, a list of Feedback, or None"

# Returned by plain_scalar for a value that is not a scalar.
NOT_SCALAR = object()


class ScorerKind(str, enum.Enum):
    """The way a scorer was defined: a Scorer subclass or the ``@scorer`` decorator."""

    CLASS = "class"
    DECORATOR = "decorator"


class ScorerSignatureError(TuiEvalError, TypeError):
    """A scorer declares a parameter that no value can be passed to."""


class ScorerResultError(TuiEvalError, TypeError):
    """A scorer returned a value that is not a valid scorer result."""


class Scorer(BaseModel):
    """Base class of every scorer.

    Subclass it, give ``name`` a default, add typed fields (they become constructor keyword
    arguments) and override ``__call__`` with the parameters the scorer needs::

        class ResponseQuality(Scorer):
            name: str = "response_quality"
            min_length: int = 50

            def __call__(self, outputs: str) -> bool:
                return len(outputs.split()) >= self.min_length
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    name: str
    aggregations: list[str | Callable[..., Any]] | None = None
    description: str | None = None

    @property
    def kind(self) -> ScorerKind:
        return ScorerKind.CLASS

    def __call__(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: dict[str, Any] | None = None,
        trace: Any = None,
        session: Any = None,
    ) -> Any:
        raise NotImplementedError(
            f"scorer {self.name!r} ({type(self).__name__}) does not implement __call__: "
            "override __call__ with the parameters the scorer needs, for example __call__(self, outputs)"
        )

    def run(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: dict[str, Any] | None = None,
        trace: Any = None,
        session: Any = None,
    ) -> Any:
        """Call the scorer with the values its parameters name and check what it returns.

        Returns the scorer's value with numpy scalars made Python values and a single unnamed
        Feedback renamed to the scorer's name. Raises ``ScorerSignatureError`` for a parameter
        that cannot be filled, ``ScorerResultError`` for an invalid result, and whatever the
        scorer itself raises.
        """
        plan = injection_plan(self)
        arguments = plan.select(inputs, outputs, expectations, trace, session)
        value = check_result(self.name, plan.target(self)(**arguments))
        if type(value) is Feedback and value.name == DEFAULT_FEEDBACK_NAME:
            value.name = self.name
        return value


class _DecoratedScorer(Scorer):
    """Base of the classes ``@scorer`` builds, one per decorated function."""

    _original_func: Callable[..., Any] | None = PrivateAttr(default=None)

    @property
    def kind(self) -> ScorerKind:
        return ScorerKind.DECORATOR

    @property
    def original_func(self) -> Callable[..., Any] | None:
        """The function the decorator wrapped."""
        return self._original_func


def scorer(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    aggregations: list[str | Callable[..., Any]] | None = None,
) -> Any:
    """Turn a function into a Scorer, bare (``@scorer``) or with options (``@scorer(name=...)``).

    The returned object is a Scorer instance named ``name`` or the function's name. Calling it
    calls the function and returns its raw value; ``inspect.signature(instance.__call__)``
    shows the function's own parameters, which decide what the scorer receives.
    """
    if func is None:
        return functools.partial(scorer, name=name, description=description, aggregations=aggregations)
    if not callable(func):
        raise InvalidParameterError(
            f"@scorer expects a function, got {type(func).__name__}: decorate a def or pass a callable"
        )

    signature = inspect.signature(func)

    def __call__(self: _DecoratedScorer, *args: Any, **kwargs: Any) -> Any:
        return self._original_func(*args, **kwargs)

    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    __call__.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[self_parameter, *signature.parameters.values()]
    )
    __call__.__doc__ = func.__doc__

    function_name = getattr(func, "__name__", type(func).__name__)
    scorer_class = type(
        f"{function_name}_scorer",
        (_DecoratedScorer,),
        {"__call__": __call__, "__module__": __name__, "__doc__": func.__doc__},
    )
    instance = scorer_class(name=name or function_name, description=description, aggregations=aggregations)
    instance._original_func = func
    return instance


class InjectionPlan:
    """The subset of the five values a scorer's ``__call__`` takes, computed once per scorer class."""

    __slots__ = ("names", "problem", "is_decorated")

    def __init__(self, names: tuple[str, ...], problem: str | None, is_decorated: bool):
        self.names = names
        self.problem = problem
        self.is_decorated = is_decorated

    def select(self, inputs: Any, outputs: Any, expectations: Any, trace: Any, session: Any) -> dict[str, Any]:
        """Build the keyword arguments for one call; raises ``ScorerSignatureError`` if it cannot."""
        if self.problem is not None:
            raise ScorerSignatureError(self.problem)
        values = {
            "inputs": inputs,
            "outputs": outputs,
            "expectations": expectations,
            "trace": trace,
            "session": session,
        }
        return {name: values[name] for name in self.names}

    def target(self, instance: Scorer) -> Callable[..., Any]:
        """The callable to invoke: the decorated function itself, or the bound ``__call__``."""
        if self.is_decorated:
            return instance._original_func  # type: ignore[attr-defined, return-value]
        return instance.__call__


_PLANS: weakref.WeakKeyDictionary[type, InjectionPlan] = weakref.WeakKeyDictionary()


def injection_plan(instance: Scorer) -> InjectionPlan:
    """Return the cached injection plan of a scorer, computing it on first use."""
    scorer_class = type(instance)
    plan = _PLANS.get(scorer_class)
    if plan is None:
        plan = _build_plan(instance)
        _PLANS[scorer_class] = plan
    return plan


def _build_plan(instance: Scorer) -> InjectionPlan:
    signature = inspect.signature(instance.__call__)
    names: list[str] = []
    problems: list[str] = []
    for parameter in signature.parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            # MLflow matches exact names only, so *args and **kwargs receive nothing.
            continue
        if parameter.name in SCORER_PARAMETER_NAMES:
            if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
                problems.append(
                    f"parameter {parameter.name!r} is positional-only, but scorer values are passed "
                    "by name: remove the '/' from the signature"
                )
            else:
                names.append(parameter.name)
        elif parameter.default is inspect.Parameter.empty:
            problems.append(
                f"parameter {parameter.name!r} is not one of the names a scorer can receive "
                f"({', '.join(SCORER_PARAMETER_NAMES)}): rename it to one of those or give it a default"
            )
    problem = None
    if problems:
        problem = f"scorer {instance.name!r} cannot be called: " + "; ".join(problems)
    is_decorated = isinstance(instance, _DecoratedScorer) and instance._original_func is not None
    return InjectionPlan(tuple(names), problem, is_decorated)


def check_result(scorer_name: str, value: Any) -> Any:
    """Check a scorer's return value and make numpy scalars and awaitables plain values.

    Returns None, a bool/int/float/str, a Feedback/Expectation or a list of them; raises
    ``ScorerResultError`` for anything else, naming the type that came back.
    """
    value_type = type(value)
    if value is None or value_type is bool or value_type is int or value_type is float or value_type is str:
        return value
    if value_type is Feedback:
        _plain_feedback_value(value)
        return value
    if isinstance(value, Assessment):
        return value
    if value_type is list:
        for item in value:
            if not isinstance(item, Assessment):
                # Name the first item that is not an assessment: list[int], list[dict].
                raise ScorerResultError(
                    f"scorer {scorer_name!r} returned list[{_type_name(type(item))}]: a scorer must return "
                    f"{_ALLOWED_RESULT_TYPES}"
                )
            if type(item) is Feedback:
                _plain_feedback_value(item)
        return value
    plain = plain_scalar(value)
    if plain is not NOT_SCALAR:
        return plain
    if inspect.isawaitable(value):
        return check_result(scorer_name, run_awaitable(value))
    raise ScorerResultError(
        f"scorer {scorer_name!r} returned {describe_type(value)}: a scorer must return {_ALLOWED_RESULT_TYPES}"
    )


def plain_scalar(value: Any) -> Any:
    """Convert a numpy scalar or a subclass of bool/int/float/str to the plain Python value.

    Returns ``NOT_SCALAR`` for anything else.
    """
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        item = value.item()
        if isinstance(item, (bool, int, float, str)):
            return item
    return NOT_SCALAR


def _plain_feedback_value(feedback: Feedback) -> None:
    value = feedback.value
    value_type = type(value)
    if value is None or value_type is bool or value_type is int or value_type is float or value_type is str:
        return
    plain = plain_scalar(value)
    if plain is not NOT_SCALAR:
        feedback.value = plain


def describe_type(value: Any) -> str:
    """Name a value's type for error messages: ``dict``, ``list[int]``, ``numpy.ndarray``."""
    value_type = type(value)
    if value_type is list:
        return f"list[{_type_name(type(value[0]))}]" if value else "list"
    return _type_name(value_type)


def _type_name(value_type: type) -> str:
    module = value_type.__module__
    if module == "builtins":
        return value_type.__qualname__
    return f"{module}.{value_type.__qualname__}"


def run_awaitable(awaitable: Any) -> Any:
    """Run a coroutine or other awaitable to completion from synchronous code.

    With no event loop running in this thread it uses ``asyncio.run``. Inside a running loop
    (a notebook, an async caller) it runs the awaitable on a fresh loop in a helper thread.
    """

    async def wait_for_it() -> Any:
        return await awaitable

    try:
        running_loop = asyncio.get_running_loop()
    except RuntimeError:
        running_loop = None
    # Called outside the except block, so a scorer's error is not chained to the RuntimeError.
    if running_loop is None:
        return asyncio.run(wait_for_it())
    # The helper thread runs in a copy of this context, so tracing spans and the active run carry over.
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tui_eval-await") as pool:
        return pool.submit(context.run, asyncio.run, wait_for_it()).result()


def is_unnamed(feedback: Feedback) -> bool:
    """Tell whether a Feedback takes its scorer's name: it is named "feedback" or flagged as unnamed."""
    if feedback.name == DEFAULT_FEEDBACK_NAME:
        return True
    metadata = feedback.metadata
    return bool(metadata) and metadata.get(USER_DEFINED_NAME_KEY) == "false"


__all__ = [
    "SCORER_PARAMETER_NAMES",
    "Scorer",
    "ScorerKind",
    "ScorerResultError",
    "ScorerSignatureError",
    "check_result",
    "injection_plan",
    "scorer",
]
