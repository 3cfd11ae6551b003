"""Optional semantic re-ranking through an OpenAI-compatible embeddings endpoint.

Used only when configured: ``OPENAI_API_KEY`` is set (``OPENAI_BASE_URL`` for a
local server: vLLM, llama.cpp, Ollama) and the library's ``embedding_model``
setting names a model. Refresh then embeds every snippet's words (title, API,
summary, context) and the library keeps the vectors; search embeds the query
and re-ranks its lexical candidates by cosine similarity. Without it, or when
the endpoint fails, search is purely lexical and just as correct.
"""

from __future__ import annotations

import math
import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BATCH = 64
TEXT_CHARS = 2000
REFRESH_TIMEOUT = 60.0
QUERY_TIMEOUT = 3.0


class EmbeddingError(Exception):
    """The endpoint did not answer with vectors; the message is one line."""


@dataclass
class Embedder:
    """One configured endpoint and model."""

    model: str
    api_key: str
    base_url: str | None = None

    def embed(self, texts: list[str], *, timeout: float = REFRESH_TIMEOUT) -> list[list[float]]:
        """One unit-length vector per text, in order; raises EmbeddingError."""
        try:
            from openai import OpenAI
        except ImportError:
            raise EmbeddingError("the openai package is not installed "
                                 "(pip install jupyter-codedistiller[llm])") from None
        client = OpenAI(api_key=self.api_key, base_url=self.base_url, timeout=timeout, max_retries=0)
        try:
            answer = client.embeddings.create(model=self.model, input=texts, encoding_format="float")
            vectors = [list(map(float, d.embedding)) for d in sorted(answer.data, key=lambda d: d.index)]
        except Exception as exc:  # the endpoint is outside: any failure is one line
            raise EmbeddingError(f"embeddings endpoint: {type(exc).__name__}: {str(exc)[:200]}") from None
        finally:
            client.close()
        if len(vectors) != len(texts) or any(not v for v in vectors):
            raise EmbeddingError("embeddings endpoint answered with the wrong number of vectors")
        return [normalise(v) for v in vectors]


def embedder_for(home: Path) -> Embedder | None:
    """The configured embedder of the library in ``home``, or None when not configured."""
    from .settings import SettingsError, load_settings

    key = (os.environ.get("OPENAI_API_KEY") or "").strip()
    if not key:
        return None
    try:
        settings = load_settings(home)
    except SettingsError:
        return None
    if not settings.embedding_model:
        return None
    return Embedder(model=settings.embedding_model, api_key=key, base_url=settings.llm_base_url or None)


def snippet_text(s: Any) -> str:
    """What of a snippet is embedded: its words, not its code."""
    return "\n".join(p for p in (s.title, s.api, s.summary, s.context) if p)[:TEXT_CHARS]


def normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def pack(vector: list[float]) -> bytes:
    return array("f", vector).tobytes()


def unpack(blob: bytes) -> array:
    out = array("f")
    out.frombytes(blob)
    return out


def cosine(a: Any, b: Any) -> float:
    """Cosine of two unit-length vectors (0 when their lengths differ)."""
    if len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True))
