import pytest

from vxlib.eval.text import error_rates, normalize_text, number_to_words


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty two"), (100, "one hundred"),
    (105, "one hundred five"), (1000, "one thousand"), (1234, "one thousand two hundred thirty four"),
    (2_000_019, "two million nineteen"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


@pytest.mark.parametrize("raw, normalised", [
    ("I have 3 apples.", "i have three apples"),
    ("In 1990 it cost $3!", "in nineteen ninety it cost three dollars"),
    ("1905, 2000, 2024", "nineteen oh five two thousand twenty twenty four"),
    ("1,250 people", "one thousand two hundred fifty people"),  # digit groups: never a year
    ("the 21st and 3rd time", "the twenty first and third time"),
    ("25% or 2.5", "twenty five percent or two point five"),
    ("TWENTY-FIVE PER CENT", "twenty five percent"),
    ("One hundred and five", "one hundred five"),  # LibriSpeech style == Whisper's "105"
    ('"Don\'t," she said; café', "dont she said cafe"),
])
def test_normalize_text(raw, normalised):
    assert normalize_text(raw) == normalised


def test_wer_of_a_fixed_pair():
    # 6 reference words; one deletion ("the") -> WER 1/6; CER: "the " = 4 of 22 characters deleted
    r = error_rates(["The cat sat on the mat."], ["the cat sat on mat"])
    assert r.wer == pytest.approx(1 / 6)
    assert r.cer == pytest.approx(4 / 22)
    assert (r.words, r.substitutions, r.deletions, r.insertions) == (6, 0, 1, 0)


def test_wer_counts_substitutions_and_insertions():
    r = error_rates(["a b c d"], ["a x c d e"])
    assert (r.substitutions, r.insertions, r.deletions) == (1, 1, 0)
    assert r.wer == pytest.approx(2 / 4)


def test_digits_and_words_agree_after_normalisation():
    r = error_rates(["She sold three sea shells in nineteen ninety"], ["She sold 3 sea shells in 1990."])
    assert r.wer == 0.0 and r.cer == 0.0


def test_corpus_level_not_mean_of_utterances():
    # 1 error in 2 words + 0 errors in 8 words: corpus WER 1/10 (the mean of rates would be 0.25)
    r = error_rates(["hello world", "one two three four five six seven eight"],
                    ["hello", "one two three four five six seven eight"])
    assert r.wer == pytest.approx(0.1)


def test_empty_hypothesis_is_all_deletions_and_empty_reference_is_an_error():
    assert error_rates(["a b c"], [""]).wer == 1.0
    with pytest.raises(ValueError, match="utt7"):
        error_rates(["?!"], ["x"], names=["utt7"])
