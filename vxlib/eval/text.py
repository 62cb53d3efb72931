"""Intelligibility: transcript normalisation and WER/CER (jiwer).

Both sides are normalised the same way before scoring, because ASR and corpus text disagree on
form, not content: Whisper writes "3 apples", "1990", "25%", LibriSpeech "THREE APPLES",
"NINETEEN NINETY", "TWENTY FIVE PER CENT". :func:`normalize_text` lowercases, strips accents,
spells numbers out (cardinals, ordinals, decimals, years read in pairs, %, $), drops the "and" in
"one hundred and five", turns hyphens into spaces and removes all other punctuation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

__all__ = ["normalize_text", "number_to_words", "ErrorRates", "error_rates"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
        if n:
            words.append(_ONES[n])
    elif n or not words:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer: 1234 -> "one thousand two hundred thirty four"."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))  # read as a digit string, like an ID
    words: list[str] = []
    for value, scale in _SCALES:
        if n >= value:
            words += _below_thousand(n // value) + [scale]
            n %= value
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


def _year_to_words(n: int) -> str:
    """1990 -> "nineteen ninety", 1905 -> "nineteen oh five", 2000 -> "two thousand"."""
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_to_words(n) if n % 1000 == 0 else f"{number_to_words(hi)} hundred"
    return f"{number_to_words(hi)} {'oh ' + _ONES[lo] if lo < 10 else number_to_words(lo)}"


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell_number(match: re.Match) -> str:
    currency, digits, decimals, suffix = match.group("cur"), match.group("int"), match.group("dec"), match.group("suf")
    grouped = "," in digits
    digits = digits.replace(",", "")
    n = int(digits)
    suffix = (suffix or "").lower()
    if suffix in ("st", "nd", "rd", "th"):
        words = _ordinal(number_to_words(n))
    elif decimals is None and not currency and not grouped and len(digits) == 4 and (1100 <= n <= 1999 or 2010 <= n <= 2099):
        words = _year_to_words(n)  # Whisper writes spoken years as 4 digits
    else:
        words = number_to_words(n)
    if decimals is not None:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    if suffix == "%":
        words += " percent"
    if currency:
        words += " dollars" if currency == "$" else " pounds" if currency == "£" else " euros"
    return f" {words} "


_NUMBER = re.compile(r"(?P<cur>[$£€])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?(?P<suf>st|nd|rd|th|%)?",
                     re.IGNORECASE)
_NUMBER_WORD = "|".join(_ONES[1:] + _TENS[2:])
_HUNDRED_AND = re.compile(rf"\b(hundred|thousand|million|billion) and (?=(?:{_NUMBER_WORD})\b)")


def normalize_text(text: str) -> str:
    """Lowercase, ASCII-fold, spell out numbers, "per cent" -> "percent", drop punctuation."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("&", " and ")
    text = _NUMBER.sub(_spell_number, text)
    text = re.sub(r"\bper cent\b", "percent", text)
    text = re.sub(r"[-\u2010-\u2015/]", " ", text)  # "twenty-one", "and/or" -> separate words
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text).replace("'", "")  # quotes go, "don't" -> "dont"
    text = _HUNDRED_AND.sub(r"\1 ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class ErrorRates:
    """Corpus-level error rates: total edits over total reference words/characters (not a mean of
    per-utterance rates, which would over-weight short utterances)."""

    wer: float
    cer: float
    words: int
    substitutions: int
    deletions: int
    insertions: int

    def to_dict(self) -> dict[str, float]:
        return {"wer": self.wer, "cer": self.cer, "ref_words": self.words, "substitutions": self.substitutions,
                "deletions": self.deletions, "insertions": self.insertions}


def error_rates(references: Sequence[str], hypotheses: Sequence[str], names: Sequence[str] | None = None) -> ErrorRates:
    """WER and CER of ``hypotheses`` against ``references`` after :func:`normalize_text` on both.

    A reference that is empty after normalisation is an error (its WER is undefined); name it via
    ``names``. An empty hypothesis is fine (all deletions).
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no utterances to score")
    names = list(names) if names is not None else [f"utterance {i}" for i in range(len(references))]
    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    empty = [n for n, r in zip(names, refs) if not r]
    if empty:
        raise ValueError(f"reference text is empty after normalisation for: {', '.join(map(str, empty))}")
    # jiwer rejects empty hypotheses; a single space scores as "all words deleted"
    hyps = [h or " " for h in hyps]
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    n_words = words.hits + words.substitutions + words.deletions
    return ErrorRates(wer=float(words.wer), cer=float(chars.cer), words=int(n_words),
                      substitutions=int(words.substitutions), deletions=int(words.deletions),
                      insertions=int(words.insertions))
