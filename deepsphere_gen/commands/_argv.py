"""Command-line words put in an order argparse reads as the user meant, before it parses them.

Options go before or after a command's step (``massmaps --quick generate``, ``massmaps generate
--quick``).  An option taking a list (``nargs="+"``) would read a step name that follows its values
as one more value (``--sky-fractions 1/12 generate``: "invalid ... 'generate'"); a step name is never
a value of a list option, so :func:`step_out_of_lists` ends the list there.
"""
from __future__ import annotations

import re

#: a word starting with "-" that is a number (a negative value), not an option
_NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf\b|nan\b)", re.IGNORECASE)


def step_out_of_lists(words: list[str], steps, list_options, flags) -> list[str]:
    """``words`` (after the command name) with a step name that follows a list option's values moved
    in front of that option, which goes to the end: ``--sky-fractions 1/12 generate --nside 8`` ->
    ``generate --nside 8 --sky-fractions 1/12``.  ``steps``: the step names; ``list_options``: the
    options with ``nargs="+"``; ``flags``: the options without a value (so that ``--quick generate``
    keeps ``generate`` as the step).  A one-value option keeps a step-like value (``--out-dir train``);
    options may be abbreviated as argparse allows; nothing after ``--`` is moved."""
    words = list(words)
    start = None  # index of the list option whose values are being read
    for i, w in enumerate(words):
        if w == "--":
            break
        if w.startswith("-") and not _NEGATIVE_NUMBER.match(w):
            is_list = "=" not in w and len(w) > 2 and any(o.startswith(w) for o in list_options)
            start = i if is_list else None
            continue
        if w not in steps:
            continue
        if start is not None and i > start + 1:
            return words[:start] + [w] + words[i + 1:] + words[start:i]
        prev = words[i - 1] if i else ""
        if not (prev.startswith("--") and "=" not in prev and not any(f.startswith(prev) for f in flags)):
            break  # the step itself (not the value of a one-value option such as --out-dir)
    return words
