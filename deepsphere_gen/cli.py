"""The ``deepsphere-gen`` command.

Each sub-command lives in ``deepsphere_gen/commands/<name>.py`` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.

Only the module of the command that runs is imported (torch and the models take seconds
to import): ``deepsphere-gen --help`` reads the one-line help texts from :data:`COMMANDS`
(a test keeps them equal to each module's ``HELP``).
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import os
import select
import sys

__all__ = ["main", "build_parser", "parse_args", "COMMANDS"]

#: sub-command name -> (module under deepsphere_gen.commands, its one-line HELP)
COMMANDS = {
    "demo": ("demo", "train a small DeepSphere classifier on two classes of generated maps and print its accuracy"),
    "bench": ("bench", "Run the benchmark suites (deepsphere_gen/bench/suites), print a table and write JSON records."),
    "equivariance": ("equivariance",
                     "Measure the rotation-equivariance error of graph / harmonic / hybrid layers and models."),
    "massmaps": ("massmaps", "cosmology mass-map classification: graph, harmonic, hybrid networks vs SVM baselines"),
    "digits": ("digits",
               "Rotation benchmark on spherical digits: models x splits NR/NR, R/R, NR/R (table, JSON, PNG)."),
    "cosmo": ("cosmo", "cosmological inference (Omega_m, sigma_8, S8) on a survey footprint: DeepSphere vs power spectrum"),
}


def _available():
    for name, (mod, text) in COMMANDS.items():
        full = f"deepsphere_gen.commands.{mod}"
        if importlib.util.find_spec(full) is not None:
            yield name, full, text


def _chosen(argv) -> str | None:
    """The sub-command named in ``argv`` (its first non-option word), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv=None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` gets its options (and its module imported)."""
    return _build(argv)[0]


def _build(argv=None) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None]:
    """:func:`build_parser`'s parser and the parser of the command named in ``argv`` (None: none named)."""
    chosen = _chosen(sys.argv[1:] if argv is None else argv)
    command = None
    parser = argparse.ArgumentParser(
        prog="deepsphere-gen",
        description="Deep learning on the sphere: graph, harmonic and hybrid spherical CNNs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, full, text in _available():
        p = sub.add_parser(name, help=text, description=text)
        if name == chosen:
            module = importlib.import_module(full)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
            command = p
    return parser, command


def parse_args(argv=None) -> argparse.Namespace:
    """Parse ``argv``; a command module may define ``reorder_argv(words) -> words``, applied to
    the words after the command name first (massmaps, cosmo: a step name after a list option's values).
    Words no parser takes are refused by the parser of the step given (``massmaps train --nsidee 64``:
    ``deepsphere-gen massmaps train: error: unrecognized arguments: --nsidee 64 (did you mean --nside?)``, with
    the step's usage; was: the command's), else of the command, with its usage line (argparse's top-level parser
    named no command); see :func:`_unrecognized`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, command = _build(argv)
    chosen = _chosen(argv)
    if chosen is not None:
        module = sys.modules.get(f"deepsphere_gen.commands.{COMMANDS[chosen][0]}")
        reorder = getattr(module, "reorder_argv", None)
        if reorder is not None:
            i = argv.index(chosen)
            argv = argv[:i + 1] + list(reorder(argv[i + 1:]))
    if command is not None:
        unknown = _unknown_options(command, argv[argv.index(chosen) + 1:])
        if unknown:
            command.error(_unrecognized(command, unknown))
    args, extra = parser.parse_known_args(argv)
    if extra:
        refuser = _step_parser(command, args) or command or parser
        refuser.error(_unrecognized(refuser, extra))
    return args


def _step_parser(command, args) -> argparse.ArgumentParser | None:
    """The parser of the step ``args`` chose (``massmaps train``), or None where the command has no steps."""
    for action in getattr(command, "_actions", ()):
        choices = action.choices  # the step parsers by name (a dict only for sub-parsers)
        if isinstance(choices, dict) and getattr(args, action.dest, None) in choices:
            return choices[getattr(args, action.dest)]
    return None


def _unknown_options(command, words: list[str]) -> list[str]:
    """The ``--options`` in ``words`` (before the step name, for a command with steps) that ``command`` does not
    know (neither exactly nor as an abbreviation), named before argparse's own errors: it would take the value
    after one for the step (``massmaps --nsidee 64 train``: "argument STEP: invalid choice: '64'"), or report a
    missing required option first (``bench --onyl x``: "the following arguments are required: --json")."""
    steps = next((a.choices for a in command._actions if isinstance(a.choices, dict)), None) or {}
    known = [name for action in command._actions for name in action.option_strings]
    unknown = []
    for word in words:
        if word in steps or word == "--":
            break
        name = word.split("=", 1)[0]
        if name.startswith("--") and not any(k.startswith(name) for k in known):
            unknown.append(word)
    return unknown


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """argparse's "unrecognized arguments: ..." and, for each unknown option close to one that ``parser`` lists
    in its ``--help`` (``difflib`` ratio >= 0.8: "did you mean --nside?" for ``--nsidee``; none for ``--``), that
    option."""
    listed = [name for action in parser._actions if action.help != argparse.SUPPRESS
              for name in action.option_strings if name.startswith("--")]
    guesses = {}
    for word in extra:
        name = word.split("=", 1)[0]
        # not "--" (the end of the options, not one mistyped: "--" vs "--k" reaches the 0.8 ratio)
        near = difflib.get_close_matches(name, listed, n=1, cutoff=0.8) if name.startswith("--") and name != "--" else []
        if near:
            guesses[name] = near[0]
    text = f"unrecognized arguments: {' '.join(extra)}"
    if len(guesses) == 1:
        return f"{text} (did you mean {next(iter(guesses.values()))}?)"
    if guesses:
        return f"{text} (did you mean {', '.join(f'{near} for {name}' for name, near in guesses.items())}?)"
    return text


#: exit status when the reader of stdout went away (128 + SIGPIPE, as a shell reports a process killed by it)
EXIT_BROKEN_PIPE = 141


def _stdout_broken() -> bool:
    """Whether stdout is a pipe or socket whose reader has gone: ``poll`` reports POLLERR or POLLHUP
    on its descriptor.  False where that cannot be told (no descriptor, no ``poll``)."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):  # stdout None or captured (no fileno); no poll (Windows)
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in events)


def main(argv=None) -> int:
    """Run one command; its exit status.  A closed stdout (``deepsphere-gen ... | head -1``) ends
    the command quietly with status 141, as the usual command-line tools do, not with a traceback.
    A broken pipe of anything else (a worker's pipe, a socket) is an error: it is raised."""
    try:
        args = parse_args(argv)
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # a broken pipe surfaces here rather than at exit
        return status
    except BrokenPipeError:
        if not _stdout_broken():
            raise
        try:  # Python flushes stdout again at exit: point it to /dev/null so that nothing more is written
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # stdout without a file descriptor (captured): nothing to redirect
            pass
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
