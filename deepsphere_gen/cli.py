"""The ``deepsphere-gen`` command.

Each sub-command lives in ``deepsphere_gen/commands/<name>.py`` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

__all__ = ["main", "COMMANDS"]

#: sub-command name -> module under deepsphere_gen.commands
COMMANDS = {
    "demo": "demo",
    "bench": "bench",
    "equivariance": "equivariance",
    "massmaps": "massmaps",
    "digits": "digits",
    "cosmo": "cosmo",
}


def _available():
    for name, mod in COMMANDS.items():
        full = f"deepsphere_gen.commands.{mod}"
        if importlib.util.find_spec(full) is not None:
            yield name, full


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepsphere-gen",
        description="Deep learning on the sphere: graph, harmonic and hybrid spherical CNNs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, full in _available():
        module = importlib.import_module(full)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
