"""RULER generators, checked by code written apart from them.

The checkers below know RULER's prompt wording (as literals copied from RULER's
templates), re-tokenize the prompt with the real tokenizer, and parse needles, chains
and word lists back out of the prompt text; they never read a Sample's answers to decide
what the answers are. A locally trained byte-level BPE (vocab 512) keeps it fast.

Depth tolerance: the generator puts each needle at the haystack-unit boundary nearest to
depth * H haystack tokens (H = haystack tokens, inserted sentences excluded), so the
tokens of haystack before the needle are within half a unit of depth * H plus tokenizer
boundary effects; the check allows one whole unit (U, the longest haystack unit's token
count) plus 3 tokens.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from ttt_data.bpe import train_bpe_tokenizer
from ttt_eval.ruler import (
    TASKS,
    RulerError,
    Sample,
    generate_sample,
    match_fraction,
    rank_accuracy,
    string_match_all,
)
from ttt_eval.ruler.candidates import build_candidates
from ttt_eval.ruler.frequent_words import zipf_counts
from ttt_eval.ruler.vocabulary import COMMON_WORDS

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NIAH_TASKS = [name for name in TASKS if name.startswith("niah_")]
NEEDLE_HAYSTACK = {"niah_multikey_2", "niah_multikey_3"}
ESSAY_HAYSTACK = {"niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multivalue",
                  "niah_multiquery"}
LENGTH = {"niah": 1200, "vt": 1200, "cwe": 1600, "fwe": 1200}
DEPTHS = [0.0, 0.35, 1.0]

_ESSAY_WORDS = str.split(
    "history people river winter market letter student garden village morning travel "
    "language mountain kitchen factory silence picture doctor summer window number "
    "question teacher paper music island country engine harbor station evening forest "
    "journey money machine reason library painting answer weather business family"
)


# ---------------------------------------------------------------- fixtures


def _essay_sentences() -> list[str]:
    rng = random.Random(1234)
    sentences = []
    for _ in range(700):
        words = [rng.choice(_ESSAY_WORDS) for _ in range(rng.randint(4, 12))]
        sentences.append(" ".join(words).capitalize() + ".")
    return sentences


ESSAY_SENTENCES = _essay_sentences()
ESSAY = " ".join(ESSAY_SENTENCES)


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    work: Path = tmp_path_factory.mktemp("ruler_tok")
    rng = random.Random(7)
    lines = [ESSAY] + [NOISE] * 20
    lines += [f"One of the special magic numbers for calm-owl is: {rng.randint(10**6, 10**7)}."
              for _ in range(20)]
    lines += [f"VAR ABCDE = {rng.randint(10000, 99999)}" for _ in range(10)]
    corpus = work / "corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    folder = train_bpe_tokenizer([corpus], work / "tok", vocab_size=512)
    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def n_tokens(tok: Tokenizer, text: str) -> int:
    """Tokens of ``text`` alone (the BOS the post-processor adds is not counted)."""
    return len(tok.encode(text).ids) - len(tok.encode("").ids)


def family(name: str) -> str:
    return name.split("_")[0]


def make(tok: Tokenizer, name: str, seed: int, depth: float | None = None,
         length: int | None = None) -> Sample:
    return generate_sample(name, tok, length or LENGTH[family(name)], seed=seed, depth=depth,
                           essay=ESSAY)


# ---------------------------------------------------------------- independent checkers

NEEDLE_RE = re.compile(
    r"One of the special magic (numbers|words|uuids) for (\S+) is: (\S+?)\.(?=\s|$)")
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def niah_parts(prompt: str, kind: str, single: bool) -> tuple[str, list[str]]:
    """(context, asked keys) of a NIAH prompt, matched against RULER's wording."""
    if single:
        k = kind[:-1]
        pattern = (
            rf"A special magic {k} is hidden within the following text\. Make sure to memorize "
            rf"it\. I will quiz you about the {k} afterwards\.\n(?P<context>.*)\nWhat is the "
            rf"special magic {k} for (?P<query>.+?) mentioned in the provided text\? The special "
            rf"magic {k} for (?P=query) mentioned in the provided text is")
    else:
        pattern = (
            rf"Some special magic {kind} are hidden within the following text\. Make sure to "
            rf"memorize it\. I will quiz you about the {kind} afterwards\.\n(?P<context>.*)\n"
            rf"What are all the special magic {kind} for (?P<query>.+?) mentioned in the "
            rf"provided text\? The special magic {kind} for (?P=query) mentioned in the "
            rf"provided text are")
    m = re.fullmatch(pattern, prompt, re.DOTALL)
    assert m, f"prompt does not follow RULER's NIAH template: {prompt[:200]!r}...{prompt[-200:]!r}"
    return m["context"], re.split(r", and |, ", m["query"])


def niah_oracle(sample: Sample) -> list[str]:
    """The values of the asked keys, read from the prompt's needles."""
    cfg = sample.config
    context, keys = niah_parts(sample.prompt, cfg.type_needle_v,
                               cfg.num_needle_q * cfg.num_needle_v == 1)
    found = [(m[2], m[3]) for m in NEEDLE_RE.finditer(context)]
    return [value for key in keys for k, value in found if k == key]


VT_MAIN_RE = re.compile(
    r"Memorize and track the chain\(s\) of variable assignment hidden in the following text\."
    r"\n\n(?P<context>(?:(?!Memorize and track).)*)\nQuestion: Find all variables that are "
    r"assigned the value (?P<value>\d{5}) in the text above\. Answer: According to the "
    r"chain\(s\) of variable assignment in the text above, (?P<num>\d+) variables are "
    r"assigned the value (?P=value), they are: ", re.DOTALL)
VT_STATEMENT_RE = re.compile(r"^VAR ([A-Z]+) = (VAR [A-Z]+|\d+)$", re.MULTILINE)


def follow_chain(context: str, value: str) -> list[str]:
    """Every variable that ends up holding ``value``, in order of assignment."""
    holders: list[str] = []
    for m in VT_STATEMENT_RE.finditer(context):
        name, source = m[1], m[2]
        if source == value or (source.startswith("VAR ") and source[4:] in holders):
            holders.append(name)
    return holders


def vt_oracle(sample: Sample) -> list[str]:
    matches = list(VT_MAIN_RE.finditer(sample.prompt))
    assert matches and matches[-1].end() == len(sample.prompt), "not RULER's vt template"
    m = matches[-1]
    return follow_chain(m["context"], m["value"])


CWE_RE = re.compile(
    r"Below is a numbered list of words\. In these words, some appear more often than "
    r"others\. Memorize the ones that appear most often\.\n(?P<context>[^\n]*)\nQuestion: What "
    r"are the 10 most common words in the above list\? Answer: The top 10 words that appear "
    r"most often in the list are:")


def cwe_counts(context: str) -> Counter[str]:
    return Counter(re.findall(r"\d+\. ([a-z]+)", context))


def cwe_oracle(sample: Sample) -> list[str]:
    blocks = list(CWE_RE.finditer(sample.prompt))
    assert len(blocks) == 2 and blocks[-1].end() == len(sample.prompt), "not RULER's cwe layout"
    ranked = cwe_counts(blocks[-1]["context"]).most_common()
    return [word for word, _ in ranked[:10]]


FWE_RE = re.compile(
    r"Read the following coded text and track the frequency of each coded word\. Find the "
    r"three most frequently appeared coded words\. (?P<context>.*)\nQuestion: Do not provide "
    r"any explanation\. Please ignore the dots '\.\.\.\.'\. What are the three most frequently "
    r"appeared words in the above coded text\? Answer: According to the coded text above, the "
    r"three most frequently appeared words are:", re.DOTALL)


def fwe_counts(sample: Sample) -> Counter[str]:
    m = FWE_RE.fullmatch(sample.prompt)
    assert m, "not RULER's fwe template"
    words = m["context"].split()
    assert all(re.fullmatch(r"[a-z]{6}|\.+", w) for w in words)
    return Counter(w for w in words if w[0] != ".")


def fwe_oracle(sample: Sample) -> list[str]:
    return [word for word, _ in fwe_counts(sample).most_common(3)]


def oracle(sample: Sample) -> list[str]:
    return {"niah": niah_oracle, "vt": vt_oracle, "cwe": cwe_oracle,
            "fwe": fwe_oracle}[family(sample.task)](sample)


def strip_inserted(context: str, spans: list[tuple[int, int]], sep: str) -> tuple[str, list[int]]:
    """The haystack without the inserted sentences (each with one separator), and where
    each of them was in that haystack text."""
    parts: list[str] = []
    where: list[int] = []
    cursor = 0
    for start, end in sorted(spans):
        if context.startswith(sep, end):
            cut = (start, end + len(sep))
        elif context[max(0, start - len(sep)):start] == sep:
            cut = (start - len(sep), end)
        else:
            cut = (start, end)
        parts.append(context[cursor:cut[0]])
        where.append(sum(map(len, parts)))
        cursor = cut[1]
    parts.append(context[cursor:])
    return "".join(parts), where


def check_depth(tok: Tokenizer, context: str, inserted: list[tuple[int, int]], at_depth: list[int],
                sep: str, unit_tokens: int, depth: float) -> list[float]:
    """Assert that the inserted sentences numbered ``at_depth`` (in order of position) have
    ``depth * H`` haystack tokens before them, within one unit plus 3; returns the
    measured fractions of every inserted sentence."""
    hay, where = strip_inserted(context, inserted, sep)
    total = n_tokens(tok, hay)
    before = [n_tokens(tok, hay[:w]) for w in where]
    for i in at_depth:
        assert abs(before[i] - depth * total) <= unit_tokens + 3, (
            f"sentence {i} has {before[i]} of {total} haystack tokens before it, "
            f"asked {depth} (tolerance {unit_tokens + 3})")
    return [b / total for b in before]


def niah_unit_tokens(tok: Tokenizer, name: str, context: str) -> int:
    if name in ESSAY_HAYSTACK:
        return max(n_tokens(tok, " " + s) for s in ESSAY_SENTENCES)
    if name in NEEDLE_HAYSTACK:
        return max(n_tokens(tok, "\n" + line) for line in context.split("\n"))
    return n_tokens(tok, "\n" + NOISE)


def check_length(tok: Tokenizer, sample: Sample) -> None:
    ids = tok.encode(sample.prompt).ids
    assert len(ids) == sample.length
    assert tuple(ids) == sample.token_ids


def check_reported_offsets(tok: Tokenizer, sample: Sample) -> None:
    """Each reported token offset is where the needle's text starts in the token ids."""
    for needle in sample.needles:
        assert tok.decode(list(sample.token_ids[needle.token_offset:])).lstrip().startswith(
            needle.text)
        assert not tok.decode(list(sample.token_ids[needle.token_offset + 1:])).lstrip(
        ).startswith(needle.text)


# ---------------------------------------------------------------- the defaults table


def test_tasks_table_lists_ruler_yaml_parameters_literally() -> None:
    # scripts/synthetic.yaml of NVIDIA/RULER (type_haystack "noise" is the repeated
    # grass/sky/sun block, called "repeat" in RULER's first release).
    ruler_yaml = {
        "niah_single_1": dict(type_haystack="noise", type_needle_k="words",
                              type_needle_v="numbers", num_needle_k=1, num_needle_v=1,
                              num_needle_q=1),
        "niah_single_2": dict(type_haystack="essay", type_needle_k="words",
                              type_needle_v="numbers", num_needle_k=1, num_needle_v=1,
                              num_needle_q=1),
        "niah_single_3": dict(type_haystack="essay", type_needle_k="words",
                              type_needle_v="uuids", num_needle_k=1, num_needle_v=1,
                              num_needle_q=1),
        "niah_multikey_1": dict(type_haystack="essay", type_needle_k="words",
                                type_needle_v="numbers", num_needle_k=4, num_needle_v=1,
                                num_needle_q=1),
        "niah_multikey_2": dict(type_haystack="needle", type_needle_k="words",
                                type_needle_v="numbers", num_needle_k=1, num_needle_v=1,
                                num_needle_q=1),
        "niah_multikey_3": dict(type_haystack="needle", type_needle_k="uuids",
                                type_needle_v="uuids", num_needle_k=1, num_needle_v=1,
                                num_needle_q=1),
        "niah_multivalue": dict(type_haystack="essay", type_needle_k="words",
                                type_needle_v="numbers", num_needle_k=1, num_needle_v=4,
                                num_needle_q=1),
        "niah_multiquery": dict(type_haystack="essay", type_needle_k="words",
                                type_needle_v="numbers", num_needle_k=1, num_needle_v=1,
                                num_needle_q=4),
        "vt": dict(type_haystack="noise", num_chains=1, num_hops=4),
        "cwe": dict(freq_cw=30, freq_ucw=3, num_cw=10),
        "fwe": dict(alpha=2.0),
    }
    # tokens_to_generate of scripts/data/synthetic/constants.py
    ruler_generation = {"niah": 128, "vt": 30, "cwe": 120, "fwe": 50}
    assert list(TASKS) == list(ruler_yaml)
    for name, args in ruler_yaml.items():
        task = TASKS[name]
        assert task.name == name
        assert {k: getattr(task, k) for k in args} == args, name
        assert task.tokens_to_generate == ruler_generation[family(name)], name


# ---------------------------------------------------------------- every task, every depth


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("name", NIAH_TASKS)
def test_niah_sample_has_exact_length_and_answers_at_depth(
    tok: Tokenizer, name: str, depth: float
) -> None:
    sample = make(tok, name, seed=11, depth=depth)
    check_length(tok, sample)
    cfg = sample.config
    context, keys = niah_parts(sample.prompt, cfg.type_needle_v,
                               cfg.num_needle_q * cfg.num_needle_v == 1)
    assert len(keys) == cfg.num_needle_q
    # The inserted needles: all needle sentences, or in a needle haystack the asked key's.
    inserted = [m for m in NEEDLE_RE.finditer(context)
                if name not in NEEDLE_HAYSTACK or m[2] in keys]
    spans = [(m.start(), m.end()) for m in inserted]
    asked = [i for i, m in enumerate(inserted) if m[2] in keys]
    # RULER hides a needle for every asked key: max(num_needle_k, num_needle_q) keys.
    assert len(spans) == max(cfg.num_needle_k, cfg.num_needle_q) * cfg.num_needle_v
    assert len(asked) == cfg.num_needle_q * cfg.num_needle_v
    sep = " " if name in ESSAY_HAYSTACK else "\n"
    fractions = check_depth(tok, context, spans, asked, sep,
                            niah_unit_tokens(tok, name, context), depth)
    check_reported_offsets(tok, sample)
    reported = sorted(n.depth for n in sample.needles if n.holds_answer)
    assert reported == pytest.approx(sorted(fractions[i] for i in asked), abs=0.01)
    assert string_match_all([", ".join(niah_oracle(sample))], [list(sample.answers)]) == 1.0


@pytest.mark.parametrize("depth", DEPTHS)
def test_vt_sample_has_exact_length_and_chain_at_depth(tok: Tokenizer, depth: float) -> None:
    sample = make(tok, "vt", seed=5, depth=depth)
    check_length(tok, sample)
    m = list(VT_MAIN_RE.finditer(sample.prompt))[-1]
    context = m["context"]
    assert int(m["num"]) == TASKS["vt"].num_hops + 1
    statements = list(VT_STATEMENT_RE.finditer(context))
    assert len(statements) == TASKS["vt"].num_hops + 1
    assert statements[0][2] == m["value"], "the value is assigned before it is passed on"
    assert follow_chain(context, m["value"]) == [s[1] for s in statements], "chain order"
    check_depth(tok, context, [(s.start(), s.end()) for s in statements], [0], "\n",
                n_tokens(tok, "\n" + NOISE), depth)
    check_reported_offsets(tok, sample)
    # The one-shot example comes first and is answered correctly.
    example = VT_MAIN_RE.match(sample.prompt)
    assert example and example.end() < m.start()
    example_answer = sample.prompt[example.end():m.start()].split("\n")[0].split()
    assert example_answer == follow_chain(example["context"], example["value"])
    assert string_match_all([" ".join(vt_oracle(sample))], [list(sample.answers)]) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_cwe_sample_has_exact_length_and_a_clear_top_ten(tok: Tokenizer, seed: int) -> None:
    sample = make(tok, "cwe", seed=seed)
    check_length(tok, sample)
    blocks = list(CWE_RE.finditer(sample.prompt))
    main = blocks[-1]["context"]
    numbers = [int(n) for n in re.findall(r"(\d+)\. [a-z]+", main)]
    assert numbers == list(range(1, len(numbers) + 1))
    counts = cwe_counts(main).most_common()
    assert counts[9][1] > counts[10][1], "the 10 common words are unambiguous"
    assert counts[9][1] >= 6, "below 4096 tokens RULER repeats common words 6 times"
    example_answer = sample.prompt[blocks[0].end():blocks[1].start()]
    example_top = [w for w, _ in cwe_counts(blocks[0]["context"]).most_common(10)]
    assert sorted(re.findall(r"\d+\. ([a-z]+)", example_answer)) == sorted(example_top)
    assert string_match_all([" ".join(cwe_oracle(sample))], [list(sample.answers)]) == 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_fwe_sample_has_exact_length_and_zipf_ranks(tok: Tokenizer, seed: int) -> None:
    sample = make(tok, "fwe", seed=seed)
    check_length(tok, sample)
    counts = fwe_counts(sample).most_common()
    assert counts[2][1] > counts[3][1], "ranks 2-4 are unambiguous"
    assert len(counts) <= (LENGTH["fwe"] + 50) // 50 - 1, "RULER's vocabulary: length / 50"
    assert string_match_all([" ".join(fwe_oracle(sample))], [list(sample.answers)]) == 1.0


@pytest.mark.parametrize("name", ["niah_single_1", "niah_single_2", "niah_multikey_3", "vt",
                                  "cwe", "fwe"])
def test_consecutive_lengths_are_all_hit_exactly(tok: Tokenizer, name: str) -> None:
    base = LENGTH[family(name)]
    for length in range(base, base + 5):
        sample = make(tok, name, seed=length, depth=0.5 if family(name) in ("niah", "vt")
                      else None, length=length)
        check_length(tok, sample)
        assert sorted(oracle(sample)) == sorted(sample.answers)


def test_without_a_depth_needles_spread_over_the_context(tok: Tokenizer) -> None:
    samples = [make(tok, "niah_single_1", seed=s, depth=None) for s in range(8)]
    for sample in samples:
        assert sorted(niah_oracle(sample)) == sorted(sample.answers)
    depths = [s.needles[0].depth for s in samples]
    assert max(depths) - min(depths) > 0.3


def test_zipf_counts_match_hand_computed_values() -> None:
    # int(N / (k**2 * zeta(2))) with zeta(2) = pi**2 / 6 = 1.6449340668...
    assert zipf_counts(1000, 5, 2.0) == [607, 151, 67, 37, 24]
    # 6079271.02, 1519817.75, 675474.56, 379954.44, 243170.84: sensitive to 1e-9 in zeta
    assert zipf_counts(10**7, 5, 2.0) == [6079271, 1519817, 675474, 379954, 243170]


# ---------------------------------------------------------------- chance and refusals


def test_constant_answer_scores_at_chance(tok: Tokenizer) -> None:
    constant = {"numbers": "5555555", "uuids": "00000000-0000-4000-8000-000000000000"}
    for name in TASKS:
        samples = [make(tok, name, seed=s, depth=None) for s in range(3)]
        refs = [list(s.answers) for s in samples]
        if family(name) == "niah":
            guess = constant[TASKS[name].type_needle_v]
        else:
            guess = {"vt": "ABCDE", "fwe": "abcdef",
                     "cwe": " ".join(COMMON_WORDS[:10])}[name]
        score = string_match_all([guess] * len(samples), refs)
        # cwe's chance: 10 guessed words of 364, about 0.03 per reference word
        assert score <= (0.2 if name == "cwe" else 0.0), name


@pytest.mark.parametrize("name", list(TASKS))
def test_fixed_parts_longer_than_the_length_are_refused(tok: Tokenizer, name: str) -> None:
    task = TASKS[name]
    if name == "fwe":  # at 60 tokens RULER's fwe vocabulary (length / 50) is refused first
        task = dataclasses.replace(task, vocab_size=8)
    with pytest.raises(RulerError, match="fixed parts alone"):
        generate_sample(task, tok, 60, seed=0, essay=ESSAY)


def test_oversized_vt_example_is_refused(tok: Tokenizer) -> None:
    task = dataclasses.replace(TASKS["vt"], example_budget=90)
    with pytest.raises(RulerError, match="one-shot example"):
        generate_sample(task, tok, 1200, seed=0)


def test_bad_requests_get_one_clear_error(tok: Tokenizer) -> None:
    with pytest.raises(RulerError, match="essay haystack"):
        generate_sample("niah_single_2", tok, 1200, seed=0)
    with pytest.raises(RulerError, match="runs out"):
        generate_sample("niah_single_2", tok, 1200, seed=0, essay=" ".join(ESSAY_SENTENCES[:20]))
    with pytest.raises(RulerError, match="depth"):
        generate_sample("niah_single_1", tok, 1200, seed=0, depth=1.5)
    with pytest.raises(RulerError, match="takes no depth"):
        generate_sample("cwe", tok, 1600, seed=0, depth=0.5)
    with pytest.raises(RulerError, match="unknown RULER task"):
        generate_sample("niah_single_9", tok, 1200, seed=0)
    with pytest.raises(RulerError, match="vocabulary"):
        generate_sample("cwe", tok, 1600, seed=0, words=COMMON_WORDS[:12])
    with pytest.raises(RulerError, match="vocabulary of 3 coded words"):
        generate_sample("fwe", tok, 120, seed=0)


# ---------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("name", ["niah_multikey_2", "niah_multiquery", "vt", "cwe", "fwe"])
def test_same_seed_gives_the_same_sample(tok: Tokenizer, name: str) -> None:
    depth = 0.4 if family(name) in ("niah", "vt") else None
    first, again = make(tok, name, seed=9, depth=depth), make(tok, name, seed=9, depth=depth)
    assert first == again
    assert make(tok, name, seed=10, depth=depth).prompt != first.prompt


# ---------------------------------------------------------------- candidates for ranking


def candidate_items(name: str, text: str) -> list[str]:
    if name == "cwe":
        return re.findall(r"\d+\. (\S+)", text)
    return text.split(" ") if name == "vt" else text.split(", ")


ITEM_RE = {"numbers": r"\d{7}", "uuids": UUID_RE, "vt": r"[A-Z]{5}", "fwe": r"[a-z]{6}",
           "cwe": "|".join(COMMON_WORDS)}


@pytest.mark.parametrize("name", list(TASKS))
def test_candidates_hold_the_true_answer_among_same_kind_distractors(
    tok: Tokenizer, name: str
) -> None:
    samples = [make(tok, name, seed=s, depth=None) for s in range(4)]
    for sample in samples:
        truth = oracle(sample)
        assert len(sample.candidates) == 5 and len(set(sample.candidates)) == 5
        kind = ITEM_RE[TASKS[name].type_needle_v if family(name) == "niah" else name]
        for i, candidate in enumerate(sample.candidates):
            items = candidate_items(name, candidate)
            assert len(items) == len(truth)
            assert all(re.fullmatch(kind, item) for item in items)
            assert (sorted(items) == sorted(truth)) == (i == sample.true_candidate)
            if i != sample.true_candidate:
                assert not set(items) & set(truth)
    # Ranking by a scorer that knows the answer is perfect; constant scores are chance.
    knows = [[match_fraction(c, oracle(s)) for c in s.candidates] for s in samples]
    truth_index = [s.true_candidate for s in samples]
    assert rank_accuracy(knows, truth_index) == 1.0
    assert rank_accuracy([[0.0] * 5 for _ in samples], truth_index) == pytest.approx(0.2)


def test_distractors_never_reuse_an_answer_item() -> None:
    # Fresh draws from a 6-letter space that holds both answers: distractors must avoid them.
    for seed in range(20):
        candidates, true_index = build_candidates(
            random.Random(seed), ["a", "b"], [], lambda r: r.choice("abcdef"), 4, " ".join)
        assert candidates[true_index] == "a b"
        for i, candidate in enumerate(candidates):
            if i != true_index:
                assert not set(candidate.split()) & {"a", "b"}, candidate


def test_true_candidate_position_varies_with_the_seed(tok: Tokenizer) -> None:
    positions = {make(tok, "niah_single_1", seed=s).true_candidate for s in range(12)}
    assert len(positions) >= 3


@pytest.mark.parametrize("name", ["niah_multikey_1", "niah_multikey_2"])
def test_distractor_candidates_reuse_values_from_the_haystack(tok: Tokenizer, name: str) -> None:
    sample = make(tok, name, seed=2, depth=0.5)
    cfg = sample.config
    context, keys = niah_parts(sample.prompt, cfg.type_needle_v, True)
    other_values = {m[3] for m in NEEDLE_RE.finditer(context) if m[2] not in keys}
    distractors = {c for i, c in enumerate(sample.candidates) if i != sample.true_candidate}
    assert len(distractors & other_values) >= 3
