"""The words a model was trained on, and the words of a prompt it never saw.

A model trained on a synthetic world (the shapes worlds) knows only the words its training captions can contain;
the trainer records them in the model's `config.json` as `vocabulary`, words grouped for display:
``{"colours": ["red", ...], "shapes": [...], "motions": [...], "other words": [...]}`` (a flat list of words is
read as one group, "words"). `Phenaki.vocabulary` is that dict, or None when the model has no recorded
vocabulary (trained on real videos, or saved before vocabularies were recorded): then nothing is ever unseen.

Words are what `words` finds: runs of letters and digits, lower-cased, an apostrophe inside a word kept
("don't"), everything else (spaces, punctuation, hyphens) a separator. Digits are words of their own, so a "2"
in a prompt is unseen unless a training caption had one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, in order (repeats kept)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a prompt as a string, got {type(text).__name__}")
    return _WORD.findall(text.lower())


def check_vocabulary(vocabulary) -> dict[str, list[str]] | None:
    """`vocabulary` as {group: sorted unique words}, or None for None; ValueError naming what is wrong.

    Takes the dict a config holds or any flat collection of words (one group, "words"); every word must be one
    word as `words` reads it, lower-case."""
    if vocabulary is None:
        return None
    if isinstance(vocabulary, str) or not isinstance(vocabulary, Mapping | Iterable):
        raise ValueError(f"a vocabulary is a dict of word lists or a list of words, got {type(vocabulary).__name__}")
    groups = vocabulary if isinstance(vocabulary, Mapping) else {"words": vocabulary}
    checked = {}
    for group, members in groups.items():
        if not isinstance(group, str) or isinstance(members, str) or not isinstance(members, Iterable):
            raise ValueError(f"vocabulary group {group!r} must be named by a string and hold a list of words")
        members = list(members)
        for word in members:
            if not isinstance(word, str) or words(word) != [word]:
                raise ValueError(
                    f"vocabulary group {group!r} holds {word!r}, which is not one lower-case word "
                    "(letters and digits, no spaces or punctuation)"
                )
        checked[group] = list(dict.fromkeys(members))  # order kept: colours in their usual order, ...
    return checked


def known_words(vocabulary) -> frozenset[str] | None:
    """Every word of a vocabulary (any form `check_vocabulary` takes) as one set; None for None."""
    checked = check_vocabulary(vocabulary)
    return None if checked is None else frozenset(w for group in checked.values() for w in group)


def unseen_words(model_or_vocabulary, prompt: str) -> list[str]:
    """The words of `prompt` that the model's training captions never contained, in order of appearance, each
    once; [] when everything is known or the model has no recorded vocabulary (then nothing can be said).

    `model_or_vocabulary`: a model (anything with a `vocabulary` attribute, e.g. `Phenaki`) or a vocabulary in
    any form `check_vocabulary` takes."""
    vocabulary = getattr(model_or_vocabulary, "vocabulary", model_or_vocabulary)
    known = known_words(vocabulary)
    if known is None:
        words(prompt)  # a bad prompt is still an error
        return []
    return list(dict.fromkeys(w for w in words(prompt) if w not in known))
