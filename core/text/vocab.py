"""Tokenisation and vocabulary for the torch text models (pure Python + numpy)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from core.fingerprint import hash_texts

# The same token pattern as scikit-learn's CountVectorizer, so tf-idf and torch models see the
# same words; lower-cased.
TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")
PAD, UNK = "<pad>", "<unk>"


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return TOKEN_PATTERN.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id map; id 0 is padding, id 1 unknown.

    Build one with :meth:`fit`; ``encode`` turns texts into a padded id matrix.
    """

    tokens: tuple[str, ...]
    max_length: int = 400

    @classmethod
    def fit(cls, texts: Iterable[str], max_size: int = 20000, min_df: int = 2, max_length: int = 400) -> "Vocabulary":
        """Keep the ``max_size`` tokens with the highest document frequency (>= ``min_df``)."""
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(tokenize(text)))
        kept = sorted((t for t, c in df.items() if c >= min_df), key=lambda t: (-df[t], t))[:max_size]
        return cls(tokens=(PAD, UNK, *kept), max_length=max_length)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {t: i for i, t in enumerate(self.tokens)}
            object.__setattr__(self, "_index", cached)
        return cached

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Ids of shape (n_texts, max_length), int64, 0-padded.

        Always ``max_length`` wide (not the batch's longest text), so a layer's activations have
        the same width whatever the batch, and results do not depend on the batch size.
        """
        index = self.index
        rows = [[index.get(t, 1) for t in tokenize(text)][: self.max_length] for text in texts]
        out = np.zeros((len(rows), self.max_length), dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    @property
    def fingerprint(self) -> str:
        return hash_texts((*self.tokens, str(self.max_length)))
