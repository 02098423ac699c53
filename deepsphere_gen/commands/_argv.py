"""Command-line words put in an order argparse reads as the user meant, before it parses them.

Options go before or after a command's step (``massmaps --quick generate``, ``massmaps generate
--quick``).  An option taking a list (``nargs="+"``) would read a step name that follows its values
as one more value (``--sky-fractions 1/12 generate``: "invalid ... 'generate'"); a step name is never
a value of a list option, so :func:`step_out_of_lists` ends the list there.  The commands parse
their options with ``default=SUPPRESS`` (so that an option before the step is not reset by the
step's parser): :func:`option` reads one that may be absent.

Every parser of a command (the command's own and each step's) accepts every option of the command, so
that where an option stands does not change how it is read.  The options a command lists as used by
some steps only (its ``_USED_BY``: ``--json``, ``--no-plots`` and ``--restart``, and massmaps classify's own
options) stay out of the other steps' ``--help`` (:func:`shown`, :func:`hidden`) and are refused there by
:func:`refuse_unused`,
before the step or after it alike ("--json does not apply to train: only to evaluate and run"); other
options are accepted by every step.  Abbreviations must be unambiguous among all the command's options,
the hidden ones included (``massmaps --meth`` could be ``--methods`` or classify's ``--method``).  Every option naming a file or a
folder reads its value with :func:`path_arg` (an empty one is refused, not read as the current folder or a default).
"""
from __future__ import annotations

import argparse
import re

#: a word starting with "-" that is a number (a negative value), not an option
_NEGATIVE_NUMBER = re.compile(r"-(\d|\.\d|inf\b|nan\b)", re.IGNORECASE)


def step_out_of_lists(words: list[str], steps, list_options, flags) -> list[str]:
    """:func:`_step_out_of_one_list` until the step follows no list option's values (two list options
    before the step: ``--sky-fractions 1 --methods fcn train`` moves it in front of both)."""
    words = list(words)
    while True:
        moved = _step_out_of_one_list(words, steps, list_options, flags)
        if moved == words:
            return moved
        words = moved


def _step_out_of_one_list(words: list[str], steps, list_options, flags) -> list[str]:
    """``words`` (after the command name) with a step name that follows a list option's values moved
    in front of that option, which goes after the words that followed the step (before a ``--``):
    ``--sky-fractions 1/12 generate --nside 8`` -> ``generate --nside 8 --sky-fractions 1/12``; where the
    same option is given again later, the later one wins (as argparse's last-wins) and the moved one is dropped.  ``steps``: the step names; ``list_options``: the
    options with ``nargs="+"``; ``flags``: the options without a value (so that ``--quick generate``
    keeps ``generate`` as the step).  A one-value option keeps a step-like value (``--out-dir train``);
    options may be abbreviated as argparse allows (unambiguous among all the command's options);
    nothing after ``--`` is moved."""
    words = list(words)
    start = None  # index of the list option whose values are being read
    for i, w in enumerate(words):
        if w == "--":
            break
        if w.startswith("-") and not _NEGATIVE_NUMBER.match(w):
            is_list = _is_list_option(w, list_options)
            start = i if is_list else None
            continue
        if w not in steps:
            continue
        if start is not None and i > start + 1:
            return _moved(words, start, i, list_options)
        prev = words[i - 1] if i else ""
        if not (prev.startswith("--") and "=" not in prev and not any(f.startswith(prev) for f in flags)):
            break  # the step itself (not the value of a one-value option such as --out-dir)
    return words


def _is_list_option(word: str, list_options) -> bool:
    """``word`` names one of ``list_options`` (itself or an abbreviation argparse accepts), without ``=value``."""
    return "=" not in word and len(word) > 2 and any(o.startswith(word) for o in list_options)


def _option_name(word: str, list_options) -> str:
    """The list option a word names (argparse's unambiguous prefixes and ``--opt=value`` resolved)."""
    name = word.split("=", 1)[0]
    matches = [o for o in list_options if o.startswith(name)]
    return matches[0] if len(matches) == 1 else name


def _moved(words: list[str], start: int, step: int, list_options) -> list[str]:
    """The step word ``words[step]`` before the list option ``words[start]``, whose values (up to the
    step) go after the words that followed the step, before a ``--``; dropped where a later use of the
    same option overrides them."""
    option, rest = words[start:step], words[step + 1:]
    cut = rest.index("--") if "--" in rest else len(rest)
    name = _option_name(words[start], list_options)
    if any(w.startswith("-") and _option_name(w, list_options) == name for w in rest[:cut]):
        option = []
    return words[:start] + [words[step]] + rest[:cut] + option + rest[cut:]


def files_out_of_lists(words: list[str], list_options, is_file) -> list[str]:
    """``words`` with the file names (``is_file(word)``) that follow a list option's values moved in front
    of that option: ``classify --ngal 22.5 a.fits`` -> ``classify a.fits --ngal 22.5`` (argparse would
    read ``a.fits`` as a galaxy density); in front of the first of list options that follow each other's
    values (``--sky-fractions 1 --ngal 22.5 a.fits`` -> ``a.fits --sky-fractions 1 --ngal 22.5``: moved in
    front of ``--ngal`` alone, it was read as a sky fraction).  For list options whose values are never file
    names; nothing after ``--`` is moved."""
    out: list[str] = []
    start = None  # where the first of the list options being read stands in ``out``
    for k, w in enumerate(words):
        if w == "--":
            return out + words[k:]
        if w.startswith("-") and not _NEGATIVE_NUMBER.match(w):
            if not _is_list_option(w, list_options):
                start = None
            elif start is None:  # a list option after another's values: a file goes in front of both
                start = len(out)
            out.append(w)
        elif start is not None and is_file(w):
            out.insert(start, w)
            start += 1
        else:
            out.append(w)
    return out


def option(args, name: str, default=None):
    """``args.name``, or ``default`` where argparse left the option out (an option parsed with
    ``default=SUPPRESS`` and not given).  ``name``: the attribute (``"out_dir"`` for ``--out-dir``)."""
    return getattr(args, name, default)


class hidden:
    """A parser or argument group whose options are accepted but take no place in ``--help`` (options a
    step does not use: :func:`refuse_unused` refuses them with a message)."""

    def __init__(self, target):
        self._target = target

    def add_argument(self, *names, **kwargs):
        return self._target.add_argument(*names, **{**kwargs, "help": argparse.SUPPRESS})

    def add_argument_group(self, *args, **kwargs):
        return hidden(self._target.add_argument_group(*args, **kwargs))


def shown(group, step: str | None, name: str, used_by: dict[str, tuple[str, ...]]):
    """Where to add the option ``name`` in the parser or group ``group`` of ``step`` (None: the command's own
    parser, before any step): ``group`` itself where the step uses it (``used_by``, as :func:`refuse_unused`),
    else ``hidden(group)`` (accepted, then refused, but not in the step's ``--help``)."""
    return group if step is None or step in used_by.get(name, (step,)) else hidden(group)


def refuse_unused(args, step: str, used_by: dict[str, tuple[str, ...]]) -> None:
    """ValueError naming the given options that ``step`` does not use, and the steps that do:
    ``--json does not apply to train: only to evaluate and run``.  ``used_by``: option (``"--json"``) ->
    the steps that use it (options not listed: every step); ``args`` parsed with ``default=SUPPRESS``
    (an option is present only where it was given)."""
    unused: dict[tuple[str, ...], list[str]] = {}
    for name, steps in used_by.items():
        if step not in steps and hasattr(args, name.lstrip("-").replace("-", "_")):
            unused.setdefault(steps, []).append(name)
    if unused:
        raise ValueError("; ".join(
            f"{', '.join(names)} {'does' if len(names) == 1 else 'do'} not apply to {step}: only to {_and(steps)}"
            for steps, names in unused.items()))


def _and(words) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(words) if len(words) <= 2 else ", ".join(words[:-1]) + " and " + words[-1]


def path_arg(text: str) -> str:
    """The argparse ``type`` of every option naming a file or a folder: ``text`` as given, an empty one refused
    (``--data-dir ""`` wrote into the default cache or the current folder, ``--json ""`` wrote nothing,
    silently): "argument --data-dir: an empty path (an unset shell variable?)", exit 2."""
    if text == "":
        raise argparse.ArgumentTypeError("an empty path (an unset shell variable?)")
    return text
