"""The ``deepsphere-gen`` command line as a process: a closed stdout (``| head -1``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deepsphere_gen.cli import EXIT_BROKEN_PIPE

ROOT = Path(__file__).resolve().parents[1]


def run_with_closed_stdout(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m deepsphere_gen.cli ARGV`` with stdout a pipe whose reader has already gone
    (what ``| head -1`` leaves once head has exited): every write to stdout fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        return subprocess.run([sys.executable, "-m", "deepsphere_gen.cli", *argv], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, timeout=timeout)
    finally:
        os.close(write)


def test_closed_stdout_ends_quietly(tmp_path):
    """A command printing into a closed pipe (massmaps generate; classify in
    test_massmaps_robustness): status 141, no traceback (before: BrokenPipeError traceback)."""
    got = run_with_closed_stdout(["massmaps", "generate", "--nside", "8", "--n-maps", "4",
                                  "--data-dir", str(tmp_path / "data")])
    assert got.returncode == EXIT_BROKEN_PIPE, got.stderr
    assert "Traceback" not in got.stderr and "BrokenPipe" not in got.stderr and "Broken pipe" not in got.stderr, \
        got.stderr


def test_a_broken_pipe_other_than_stdout_is_an_error():
    """A BrokenPipeError from a worker's pipe or a socket while stdout is fine is not a closed
    stdout: it surfaces with its traceback and a failing status (before: exit 141, silently);
    the same command printing into a closed stdout ends quietly with 141."""
    code = ("import argparse, sys\n"
            "import deepsphere_gen.cli as cli\n"
            "def run(args):\n"
            "    print('working', flush=sys.argv[1] == 'print')\n"
            "    raise BrokenPipeError(32, 'Broken pipe (a worker went away)')\n"
            "cli.parse_args = lambda argv=None: argparse.Namespace(_run=run)\n"
            "sys.exit(cli.main([]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    got = subprocess.run([sys.executable, "-c", code, "raise"], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=60)
    assert got.returncode not in (0, EXIT_BROKEN_PIPE), got
    assert "Traceback" in got.stderr and "a worker went away" in got.stderr, got.stderr
    assert got.stdout == "working\n"
    read, write = os.pipe()
    os.close(read)
    try:
        got = subprocess.run([sys.executable, "-c", code, "print"], stdout=write, stderr=subprocess.PIPE, text=True,
                             env=env, cwd=ROOT, timeout=60)
    finally:
        os.close(write)
    assert got.returncode == EXIT_BROKEN_PIPE and "Traceback" not in got.stderr, got.stderr
