"""A document as words and the text between them: the unit that text explanations remove.

Words are maximal runs of word characters (``\\w+``), split exactly as the ``lime`` package
splits them (``re.split(r"(\\W+)")``), case-sensitive, and a word is the same feature wherever
it occurs ("bag of words"): removing it removes every occurrence. Removing words keeps the
separators around them, so the remaining words are tokenised as before by any vectorizer whose
tokens are runs of word characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from core.errors import InputShapeError
from core.fingerprint import hash_texts

_SPLIT = re.compile(r"(\W+)")
_NON_WORD = re.compile(r"\W")


@dataclass(frozen=True, eq=False)
class WordDocument:
    """A text split into segments (words and separators), with its distinct words.

    Attributes
    ----------
    text : str
    segments : tuple of str
        Concatenated, they give back ``text``.
    word_index : ndarray of shape (n_segments,), int
        For each segment, the index of its word in ``words``; -1 for separators.
    words : tuple of str
        Distinct words in order of first appearance: the features of text explanations.
    """

    text: str
    segments: tuple[str, ...]
    word_index: np.ndarray
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> "WordDocument":
        if not isinstance(text, str):
            raise InputShapeError(f"A text explanation needs a str document; got {type(text).__name__}.")
        segments = tuple(s for s in _SPLIT.split(text) if s)
        ids: dict[str, int] = {}
        index = np.full(len(segments), -1, dtype=np.int64)
        for i, seg in enumerate(segments):
            if _NON_WORD.match(seg):
                continue
            index[i] = ids.setdefault(seg, len(ids))
        return cls(text, segments, index, tuple(ids))

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def counts(self) -> np.ndarray:
        """Occurrences of each distinct word, shape (n_words,)."""
        return np.bincount(self.word_index[self.word_index >= 0], minlength=self.n_words)

    @property
    def fingerprint(self) -> str:
        return hash_texts((self.text,))

    def require_words(self) -> None:
        if self.n_words == 0:
            raise InputShapeError("The document has no words to explain.",
                                  hint="pick or paste a text that contains at least one word.")

    def texts(self, active: np.ndarray) -> list[str]:
        """The document with the inactive words removed, one text per row of ``active``.

        Parameters
        ----------
        active : ndarray of shape (n, n_words), bool
            True where the word is kept.
        """
        active = np.asarray(active, dtype=bool)
        if active.ndim != 2 or active.shape[1] != self.n_words:
            raise InputShapeError(f"Masks must have shape (n, {self.n_words}); got {active.shape}.")
        segments = np.array(self.segments, dtype=object)
        is_sep = self.word_index < 0
        safe_index = np.where(is_sep, 0, self.word_index)
        out = []
        for row in active:
            keep = is_sep | row[safe_index]
            out.append("".join(segments[keep]))
        return out

    def header_words(self) -> set[str]:
        """Words found only in the Usenet header block (the lines before the first blank line).

        A header block is recognised when its first line looks like ``Name: value``; words that
        also occur in the body are not counted.
        """
        head, sep, body = self.text.partition("\n\n")
        lines = head.splitlines()
        if not sep or not lines or not re.match(r"^[A-Za-z][\w-]*:", lines[0]):
            return set()
        return set(re.findall(r"\w+", head)) - set(re.findall(r"\w+", body))
