"""The LLM client: any OpenAI-compatible chat endpoint, asked for JSON, with retries and a budget.

``LLMConfig.resolve(home)`` reads the endpoint from ``OPENAI_API_KEY`` /
``OPENAI_BASE_URL`` and the library settings (code model, fast model); with no
key it raises ``LLMUnavailable`` carrying the one message that says how to
turn the path on. ``LLMClient.ask(prompt, schema, model=...)`` sends one
chat request asking for a JSON object (``response_format`` where the server
supports it; fenced JSON in the content is tolerated), validates the answer
against ``schema`` and returns only the fields the schema names, so nothing
else the model says can reach the library. A malformed answer is asked for
once more, then the item is given up (``LLMAnswerError``); a refusal raises
``LLMRefusal``; 429 and 5xx answers are retried with exponential backoff
(``Retry-After`` respected when it is small), up to a capped number of
attempts; a request that outlives its timeout raises ``LLMCallError``.
Every call is charged to a ``Budget`` (tokens, cost, iterations, wall time)
that raises ``BudgetExhausted`` before the next call once spent.

Prompts are template files in ``prompts/`` (``string.Template`` placeholders,
a ``version`` in their front matter); repository text goes into them only
through ``data_block``, inside delimiters carrying a per-request nonce.

The ``openai`` package is imported only when a client is built, never by the
static distiller.
"""

from __future__ import annotations

import email.utils
import importlib.util
import json
import os
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from ..schema import RecordError, check, fields_of

OFF_MESSAGE = "LLM path off: set OPENAI_API_KEY (and OPENAI_BASE_URL for a local server)"
NO_PACKAGE_MESSAGE = "LLM path off: the openai package is not installed (pip install 'jupyter-codedistiller[llm]')"
DEFAULT_MODEL = "gpt-4o-mini"
PRICES_ENV = "CODEDISTILLER_LLM_PRICES"
PROMPTS_DIR = Path(__file__).with_name("prompts")
MIN_COMPLETION_TOKENS = 256  # below this a call cannot produce a useful answer
ANSWER_ECHO_CHARS = 4000  # how much of a malformed answer is shown back to the model

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|i am sorry|sorry,|i can(?:no|')t|i cannot|i am unable|i'?m unable|"
    r"i won'?t|as an ai\b|i must decline|unfortunately,? i can)",
    re.IGNORECASE,
)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)


# ---------------------------------------------------------------- errors


class LLMError(Exception):
    """An LLM step that could not be done; the message is one line naming why."""


class LLMUnavailable(LLMError):
    """No endpoint is configured (no key), or the ``openai`` package is not installed."""


class LLMRefusal(LLMError):
    """The model declined the task."""


class LLMAnswerError(LLMError):
    """The answer was not the JSON asked for, even when asked again."""


class LLMCallError(LLMError):
    """The request failed: timeout, connection, or an HTTP error that retrying did not cure.

    ``fatal`` is true when no later request can succeed either (bad key,
    unknown model, quota exhausted), so callers stop instead of going on.
    """

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class BudgetExhausted(LLMError):
    """The per-source budget is spent; the message names which limit."""


# ---------------------------------------------------------------- configuration


def _prices_from(raw: Any) -> dict[str, tuple[float, float]]:
    """``{"model": [prompt_per_1k, completion_per_1k]}`` (or a dict with those keys) -> prices."""
    prices: dict[str, tuple[float, float]] = {}
    if not isinstance(raw, dict):
        return prices
    for model, value in raw.items():
        try:
            if isinstance(value, dict):
                pair = (float(value.get("prompt", 0)), float(value.get("completion", 0)))
            else:
                pair = (float(value[0]), float(value[1]))
        except (TypeError, ValueError, IndexError, KeyError):
            continue
        prices[str(model)] = pair
    return prices


def configured_prices(home: Path | None) -> dict[str, tuple[float, float]]:
    """Per-1k-token prices in USD by model: ``llm_prices`` in settings.json, then $CODEDISTILLER_LLM_PRICES."""
    prices: dict[str, tuple[float, float]] = {}
    if home is not None:
        try:
            data = json.loads((Path(home) / "settings.json").read_text(encoding="utf-8"))
            prices.update(_prices_from(data.get("llm_prices") if isinstance(data, dict) else None))
        except (OSError, ValueError):
            pass
    if os.environ.get(PRICES_ENV):
        try:
            prices.update(_prices_from(json.loads(os.environ[PRICES_ENV])))
        except ValueError:
            pass
    return prices


@dataclass
class LLMConfig:
    """Where and how to ask: endpoint, models, timeouts, retries, prices (USD per 1k tokens)."""

    api_key: str
    base_url: str | None = None
    code_model: str = DEFAULT_MODEL
    fast_model: str = DEFAULT_MODEL
    timeout: float = 120.0  # seconds per request
    max_attempts: int = 4  # per request, counting the first, for 429 / 5xx / connection errors
    backoff: float = 1.0  # first retry delay; doubles each attempt, with jitter
    backoff_cap: float = 30.0
    retry_after_cap: float = 30.0  # a longer Retry-After gives the request up
    max_completion_tokens: int = 2048
    temperature: float | None = 0.2
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def resolve(cls, home: Path | str | None = None, **overrides: Any) -> LLMConfig:
        """The configuration from the environment and the library settings in ``home``.

        Raises LLMUnavailable with ``OFF_MESSAGE`` when no API key is set.
        ``OPENAI_BASE_URL`` wins over the ``llm_base_url`` setting; models come
        from ``llm_code_model`` / ``llm_fast_model`` (the fast model defaults
        to the code model).
        """
        from ..home import library_home
        from ..settings import SettingsError, load_settings

        key = (os.environ.get("OPENAI_API_KEY") or "").strip()
        if not key:
            raise LLMUnavailable(OFF_MESSAGE)
        if importlib.util.find_spec("openai") is None:
            raise LLMUnavailable(NO_PACKAGE_MESSAGE)
        folder = library_home(home)
        try:
            settings = load_settings(folder)
        except SettingsError as exc:
            raise LLMUnavailable(f"LLM path off: {exc}") from None
        code_model = settings.llm_code_model or DEFAULT_MODEL
        values: dict[str, Any] = {
            "api_key": key,
            "base_url": (os.environ.get("OPENAI_BASE_URL") or settings.llm_base_url or None),
            "code_model": code_model,
            "fast_model": settings.llm_fast_model or code_model,
            "prices": configured_prices(folder),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def cost(self, model: str, tokens_prompt: int, tokens_completion: int) -> float:
        """USD for a call, from the per-1k prices; 0 when the model has no price."""
        prompt, completion = self.prices.get(model, (0.0, 0.0))
        return (tokens_prompt * prompt + tokens_completion * completion) / 1000.0

    def describe(self) -> str:
        """One line naming the endpoint and models, never the key."""
        where = self.base_url or "the OpenAI API"
        models = self.code_model if self.fast_model == self.code_model else (
            f"{self.code_model} (fast: {self.fast_model})")
        return f"{models} at {where}"


# ---------------------------------------------------------------- accounting


@dataclass
class Usage:
    """Tokens and cost spent by some calls."""

    calls: int = 0
    tokens_prompt: int = 0
    tokens_completion: int = 0
    cost_usd: float = 0.0
    estimated: bool = False  # some call's server reported no usage; counted from characters

    @property
    def tokens(self) -> int:
        return self.tokens_prompt + self.tokens_completion

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.tokens_prompt += other.tokens_prompt
        self.tokens_completion += other.tokens_completion
        self.cost_usd += other.cost_usd
        self.estimated = self.estimated or other.estimated

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost_usd"] = round(self.cost_usd, 6)
        return data


@dataclass
class Budget:
    """What one source may spend: tokens, USD, iterations (sandbox runs of LLM code), seconds.

    A limit of None is no limit. ``check()`` raises BudgetExhausted once any
    limit is reached, and remembers why in ``stopped``.
    """

    tokens: int | None = 60_000
    cost_usd: float | None = None
    iterations: int | None = 12
    seconds: float | None = 900.0
    used: Usage = field(default_factory=Usage)
    iterations_used: int = 0
    started: float = field(default_factory=time.monotonic)
    stopped: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining_seconds(self) -> float | None:
        return None if self.seconds is None else self.seconds - self.elapsed()

    def remaining_tokens(self) -> int | None:
        return None if self.tokens is None else self.tokens - self.used.tokens

    def exhausted(self, why: str) -> BudgetExhausted:
        """Record that the budget ran out (the first reason wins) and return the error to raise."""
        self.stopped = self.stopped or why
        return BudgetExhausted(f"budget exhausted: {self.stopped}")

    def check(self, *, iteration: bool = False) -> None:
        """Raise BudgetExhausted if a limit is reached (``iteration``: one more run must fit)."""
        if self.stopped:
            raise BudgetExhausted(f"budget exhausted: {self.stopped}")
        if self.tokens is not None and self.used.tokens >= self.tokens:
            raise self.exhausted(f"tokens ({self.used.tokens} of {self.tokens} used)")
        if self.cost_usd is not None and self.used.cost_usd >= self.cost_usd:
            raise self.exhausted(f"cost (${self.used.cost_usd:.4f} of ${self.cost_usd:.4f} spent)")
        if self.seconds is not None and self.elapsed() >= self.seconds:
            raise self.exhausted(f"wall time ({self.elapsed():.0f} s of {self.seconds:.0f} s)")
        if iteration and self.iterations is not None and self.iterations_used >= self.iterations:
            raise self.exhausted(f"iterations ({self.iterations_used} of {self.iterations} run)")

    def charge(self, usage: Usage) -> None:
        self.used.add(usage)

    def iterate(self) -> None:
        """Count one sandbox run of LLM-written code; raises if none is left."""
        self.check(iteration=True)
        self.iterations_used += 1

    def limits(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "cost_usd": self.cost_usd, "iterations": self.iterations,
                "seconds": self.seconds}


# ---------------------------------------------------------------- prompts


@dataclass(frozen=True)
class PromptTemplate:
    """One prompt file: its name, version and body (``string.Template`` placeholders)."""

    name: str
    version: str
    body: str

    @property
    def tag(self) -> str:
        """``name/version``, as recorded in ``Origin.prompt_version``."""
        return f"{self.name}/{self.version}"

    def render(self, **values: Any) -> str:
        """The body with every placeholder filled; a missing value raises KeyError."""
        return Template(self.body).substitute({k: str(v) for k, v in values.items()})


@cache
def template(name: str) -> PromptTemplate:
    """The prompt template ``prompts/<name>.md``; its front matter must give a ``version``."""
    text = (PROMPTS_DIR / f"{name}.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.DOTALL)
    if not match:
        raise ValueError(f"prompt {name}: no front matter")
    meta = dict(line.split(":", 1) for line in match.group(1).splitlines() if ":" in line)
    version = meta.get("version", "").strip()
    if not version:
        raise ValueError(f"prompt {name}: no version in the front matter")
    return PromptTemplate(name=name, version=version, body=text[match.end():].strip("\n") + "\n")


def new_nonce() -> str:
    """A fresh delimiter nonce: repository text cannot guess it, so cannot close its block."""
    return secrets.token_hex(6)


def data_block(nonce: str, kind: str, name: str, content: str) -> str:
    """Untrusted text inside the delimiters the system prompt tells the model to treat as data."""
    safe_name = re.sub(r"[^\w./:@+-]", "_", name)[:200]
    return template("data_block").render(nonce=nonce, kind=kind, name=safe_name,
                                         content=content.rstrip("\n"))


@dataclass
class Prompt:
    """A task to send: the rendered system and user messages and the templates they came from."""

    task: PromptTemplate
    system: str
    user: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": self.user}]


def build_prompt(task: str, nonce: str, **values: Any) -> Prompt:
    """The system prompt plus the task template ``task`` rendered with ``values``."""
    tpl = template(task)
    return Prompt(task=tpl, system=template("system").render(nonce=nonce),
                  user=tpl.render(nonce=nonce, **values))


# ---------------------------------------------------------------- answers


class _Invalid(ValueError):
    pass


def required_keys(schema: type) -> list[str]:
    """The keys an answer to ``schema`` (a declared record, see ``schema.py``) must give."""
    return [spec.name for spec in fields_of(schema) if spec.required]


def validate_answer(data: Any, schema: type) -> dict[str, Any]:
    """The keys of the declared record ``schema`` that ``data`` gives, read leniently: texts
    and lists cut to their ``max_length``, ``"3"`` read as 3, list items that do not fit
    dropped; a missing required key or a wrong type raises _Invalid."""
    if not isinstance(data, dict):
        raise _Invalid("the answer must be a JSON object")
    try:
        return check(schema, data, coerce=True, null_is_absent=True, label=lambda path: f"the key {path!r}")
    except RecordError as exc:
        raise _Invalid(str(exc)) from None


def parse_json_object(content: str) -> Any:
    """The JSON value in a model's answer: bare, in a ``` fence, or the outermost {...}."""
    text = content.strip()
    candidates = [text]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    error: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError as exc:
            error = error or exc
    if error is None:
        raise _Invalid("the answer was empty")
    raise _Invalid(f"the answer was not valid JSON ({error.msg} at line {error.lineno})")


def looks_like_refusal(text: str) -> bool:
    """True for a plain-text answer that declines the task."""
    return bool(_REFUSAL.match(text.strip()))


@dataclass
class Answer:
    """A validated answer: the schema's fields only, the model that answered, what it cost."""

    data: dict[str, Any]
    model: str
    usage: Usage
    attempts: int = 1  # requests sent, retries included


# ---------------------------------------------------------------- the client


def _retry_after(response: Any) -> float | None:
    """Seconds a 429/503 response asks to wait, from Retry-After(-ms), if it says."""
    headers = getattr(response, "headers", None) or {}
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _status_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"]).splitlines()[0][:200]
    return (str(getattr(exc, "message", "") or exc).splitlines() or [""])[0][:200]


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class LLMClient:
    """One OpenAI-compatible endpoint, asked for JSON answers; see the module docstring.

    ``sleep`` is how the client waits between retries (tests may pass a
    recorder). When a server rejects ``response_format``, ``max_tokens`` or
    ``temperature`` (400), the client drops it (``max_completion_tokens``
    instead of ``max_tokens``), asks again and remembers for later requests.
    """

    def __init__(self, config: LLMConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        try:
            from openai import OpenAI
        except ImportError:
            raise LLMUnavailable(NO_PACKAGE_MESSAGE) from None
        self.config = config
        self.sleep = sleep
        self.json_mode = True
        self.token_param = "max_tokens"
        self.temperature = config.temperature
        self._client = OpenAI(api_key=config.api_key, base_url=config.base_url,
                              timeout=config.timeout, max_retries=0)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ one request

    def _limits(self, messages: list[dict[str, str]], budget: Budget | None) -> tuple[int, float]:
        """max_tokens and timeout for the next request, within the budget (raises when spent)."""
        max_tokens = self.config.max_completion_tokens
        timeout = self.config.timeout
        if budget is None:
            return max_tokens, timeout
        budget.check()
        remaining = budget.remaining_tokens()
        if remaining is not None:
            prompt_tokens = sum(_estimate_tokens(m["content"]) for m in messages)
            room = remaining - prompt_tokens
            if room < MIN_COMPLETION_TOKENS:
                raise budget.exhausted(f"tokens ({budget.used.tokens} of {budget.tokens} used; "
                                   f"the next request needs about {prompt_tokens + MIN_COMPLETION_TOKENS})")
            max_tokens = min(max_tokens, room)
        seconds = budget.remaining_seconds()
        if seconds is not None:
            timeout = max(1.0, min(timeout, seconds))
        return max_tokens, timeout

    def _create(self, model: str, messages: list[dict[str, str]], budget: Budget | None) -> tuple[Any, int]:
        """One chat completion, retried on 429 / 5xx / connection errors; returns it and the attempts."""
        import openai

        attempt = 0
        while True:
            attempt += 1
            max_tokens, timeout = self._limits(messages, budget)
            kwargs: dict[str, Any] = {"model": model, "messages": messages, "timeout": timeout,
                                      self.token_param: max_tokens}
            if self.temperature is not None:
                kwargs["temperature"] = self.temperature
            if self.json_mode:
                kwargs["response_format"] = {"type": "json_object"}
            try:
                return self._client.chat.completions.create(**kwargs), attempt
            except openai.APITimeoutError:
                if budget is not None:
                    budget.check()
                raise LLMCallError(f"{model}: no answer within {timeout:g} s") from None
            except openai.BadRequestError as exc:
                text = _status_message(exc).lower()
                if self.json_mode and ("response_format" in text or "json_object" in text):
                    self.json_mode = False  # this server has no JSON mode: ask in the prompt only
                    attempt -= 1
                    continue
                if self.token_param == "max_tokens" and "max_tokens" in text:
                    self.token_param = "max_completion_tokens"
                    attempt -= 1
                    continue
                if self.temperature is not None and "temperature" in text:
                    self.temperature = None  # e.g. reasoning models take only their default
                    attempt -= 1
                    continue
                raise LLMCallError(f"{model}: request refused (400): {_status_message(exc)}") from None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise LLMCallError(f"{model}: the server refused the API key "
                                   f"({exc.status_code}): {_status_message(exc)}", fatal=True) from None
            except openai.NotFoundError as exc:
                raise LLMCallError(f"{model}: not found at the server (404): {_status_message(exc)}",
                                   fatal=True) from None
            except (openai.RateLimitError, openai.InternalServerError, openai.APIStatusError,
                    openai.APIConnectionError) as exc:
                status = getattr(exc, "status_code", None)
                if isinstance(exc, openai.APIStatusError) and status is not None and status != 429 \
                        and status < 500:
                    raise LLMCallError(f"{model}: request failed ({status}): {_status_message(exc)}") from None
                what = f"HTTP {status}" if status else "connection failed"
                code = (getattr(exc, "code", None) or "")
                if status == 429 and code == "insufficient_quota":
                    raise LLMCallError(f"{model}: quota exhausted (429): {_status_message(exc)}",
                                       fatal=True) from None
                if attempt >= self.config.max_attempts:
                    raise LLMCallError(f"{model}: {what} after {attempt} attempts: "
                                       f"{_status_message(exc)}") from None
                wait = _retry_after(getattr(exc, "response", None))
                if wait is not None and wait > self.config.retry_after_cap:
                    raise LLMCallError(f"{model}: {what}; the server asks to wait {wait:.0f} s, "
                                       f"more than {self.config.retry_after_cap:.0f} s") from None
                if wait is None:
                    wait = min(self.config.backoff_cap, self.config.backoff * 2 ** (attempt - 1))
                    wait *= random.uniform(0.5, 1.0)
                if budget is not None:
                    left = budget.remaining_seconds()
                    if left is not None and wait >= left:
                        raise budget.exhausted(f"wall time (a retry after {wait:.1f} s would pass "
                                           f"the {budget.seconds:.0f} s limit)") from None
                self.sleep(wait)

    def _usage(self, model: str, response: Any, messages: list[dict[str, str]], content: str) -> Usage:
        usage = getattr(response, "usage", None)
        prompt = getattr(usage, "prompt_tokens", None) if usage is not None else None
        completion = getattr(usage, "completion_tokens", None) if usage is not None else None
        estimated = prompt is None or completion is None
        if prompt is None:
            prompt = sum(_estimate_tokens(m["content"]) for m in messages)
        if completion is None:
            completion = _estimate_tokens(content)
        return Usage(calls=1, tokens_prompt=int(prompt), tokens_completion=int(completion),
                     cost_usd=self.config.cost(model, int(prompt), int(completion)),
                     estimated=estimated)

    # ------------------------------------------------------------ the public call

    def ask(self, prompt: Prompt, schema: type, *, model: str, budget: Budget | None = None,
            meter: Usage | None = None) -> Answer:
        """Send ``prompt`` to ``model`` and return the answer's schema fields, validated.

        Every call is charged to ``budget`` and ``meter``. Raises LLMRefusal,
        LLMAnswerError (malformed twice), LLMCallError or BudgetExhausted.
        """
        messages = prompt.messages()
        total = Usage()
        attempts = 0
        problem = ""
        for round_ in (1, 2):
            response, tries = self._create(model, messages, budget)
            attempts += tries
            choice = response.choices[0] if getattr(response, "choices", None) else None
            message = getattr(choice, "message", None)
            content = (getattr(message, "content", None) or "") if message is not None else ""
            usage = self._usage(model, response, messages, content)
            total.add(usage)
            if budget is not None:
                budget.charge(usage)
            if meter is not None:
                meter.add(usage)
            answered_by = getattr(response, "model", None) or model
            refusal = getattr(message, "refusal", None) if message is not None else None
            if refusal:
                raise LLMRefusal(f"{answered_by} declined: {str(refusal).splitlines()[0][:200]}")
            if getattr(choice, "finish_reason", None) == "content_filter":
                raise LLMRefusal(f"{answered_by} declined: the answer was withheld by a content filter")
            try:
                data = parse_json_object(content)
            except _Invalid as exc:
                if looks_like_refusal(content):
                    raise LLMRefusal(f"{answered_by} declined: {content.strip().splitlines()[0][:200]}") from None
                problem = str(exc)
            else:
                if isinstance(data, dict) and isinstance(data.get("refusal"), str) and data["refusal"].strip() \
                        and not all(k in data for k in required_keys(schema)):
                    raise LLMRefusal(f"{answered_by} declined: {data['refusal'].strip().splitlines()[0][:200]}")
                try:
                    return Answer(data=validate_answer(data, schema), model=answered_by, usage=total,
                                  attempts=attempts)
                except _Invalid as exc:
                    problem = str(exc)
            if round_ == 1:
                keys = ", ".join(spec.name for spec in fields_of(schema))
                retry = template("retry_json").render(problem=problem, keys=keys)
                messages = [*messages, {"role": "assistant", "content": content[:ANSWER_ECHO_CHARS]},
                            {"role": "user", "content": retry}]
        raise LLMAnswerError(f"{model}: malformed answer, asked twice: {problem}")
