"""RULER's prompt texts: task instructions, answer prefixes, the noise sentence and the
needle sentence, kept word for word so prompts match the benchmark.

Each template holds one ``{context}`` slot; ``frame`` splits it there, so haystack text
(which may hold braces) is never passed through ``str.format``. The answer prefix is
appended after the question, as RULER's ``prepare.py`` does for the ``base`` model
template (no chat wrapper).
"""

from __future__ import annotations

from dataclasses import dataclass

NOISE_SENTENCE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)
NEEDLE_SENTENCE = "One of the special magic {type_needle_v} for {key} is: {value}."

NIAH_TEMPLATE = (
    "Some special magic {kind} are hidden within the following text. Make sure to memorize "
    "it. I will quiz you about the {kind} afterwards.\n{context}\nWhat are all the special "
    "magic {kind} for {query} mentioned in the provided text?"
)
NIAH_ANSWER_PREFIX = " The special magic {kind} for {query} mentioned in the provided text are"
# RULER rewrites the plural wording when exactly one value is asked for
# (num_needle_q * num_needle_v == 1): Some -> A, are all / are -> is, kind without its "s".
NIAH_SINGLE_TEMPLATE = (
    "A special magic {kind} is hidden within the following text. Make sure to memorize "
    "it. I will quiz you about the {kind} afterwards.\n{context}\nWhat is the special "
    "magic {kind} for {query} mentioned in the provided text?"
)
NIAH_SINGLE_ANSWER_PREFIX = (
    " The special magic {kind} for {query} mentioned in the provided text is"
)

VT_TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text."
    "\n\n{context}\nQuestion: Find all variables that are assigned the value {query} in the "
    "text above."
)
VT_ANSWER_PREFIX = (
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} "
    "variables are assigned the value {query}, they are: "
)

CWE_TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often.\n{context}\nQuestion: What are the {num_cw} "
    "most common words in the above list?"
)
CWE_ANSWER_PREFIX = " Answer: The top {num_cw} words that appear most often in the list are:"

FWE_TEMPLATE = (
    "Read the following coded text and track the frequency of each coded word. Find the "
    "three most frequently appeared coded words. {context}\nQuestion: Do not provide any "
    "explanation. Please ignore the dots '....'. What are the three most frequently "
    "appeared words in the above coded text?"
)
FWE_ANSWER_PREFIX = (
    " Answer: According to the coded text above, the three most frequently appeared words are:"
)


@dataclass(frozen=True)
class Frame:
    """The prompt text before and after the context slot (answer prefix included)."""

    head: str
    tail: str

    def render(self, context: str) -> str:
        return self.head + context + self.tail


def frame(template: str, answer_prefix: str, **fields: object) -> Frame:
    """Fill every slot but ``{context}`` and split the prompt there."""
    head, tail = (template + answer_prefix).split("{context}")
    return Frame(head.format(**fields), tail.format(**fields))
