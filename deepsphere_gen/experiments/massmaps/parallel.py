"""The run step of the mass-map experiment on several CPU processes (:class:`ParallelRun`): network
trainings and baseline fits side by side, one thread each, with the results of the sequential run.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch

from ..._io import handler_replaceable
from ..._validation import check_positive_int
from ...datasets import limit_threads
from ...training import TrainingInterrupted, distributed_context
from .baseline_records import baseline_records
from .config import BASELINES, ExperimentConfig, sky_settings
from .data import dataset_of
from .settings import NoiseSetting, methods_for, noise_settings
from .training import network_runs, train_config, train_one

__all__ = ["ParallelRun"]


#: in a worker process: the event :class:`ParallelRun` sets when it stops its jobs (see :func:`_worker_setup`)
_stopping = None


#: the signals a worker ignores while idle and takes (as KeyboardInterrupt) inside a job: Ctrl-C, which a terminal
#: sends to every process of the group, and SIGTERM, which a batch scheduler (Slurm's ``scancel``, its time limit)
#: sends to every process of the job
_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)
#: an idle worker's handlers: Ctrl-C ignored (the parent stops jobs with SIGINT, see :meth:`ParallelRun._stop`);
#: SIGTERM at its default, so that the pool's own clean-up of a broken pool (``Process.terminate``) still ends it
_IDLE = {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: signal.SIG_DFL}


@contextmanager
def _children_ignore_interrupts():
    """Ctrl-C and SIGTERM ignored while the block starts worker processes, the previous handlers restored after it.

    A spawned process inherits an ignored signal across ``exec``, and Python then installs no handler of its
    own: Ctrl-C at a terminal (SIGTERM from a scheduler) reaches every process of the group, and a worker still
    importing its modules (seconds: torch) would otherwise die, with a KeyboardInterrupt traceback (or outright:
    the parent's pool then broken).  The workers take them again only inside a job (:func:`_interruptible`).  A
    signal during the block itself (starting the processes, milliseconds) is lost.  A handler not set from Python
    (``signal.getsignal`` gives None: it could not be put back) is left alone.  Only the main thread may set
    handlers; elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in _INTERRUPTS if handler_replaceable(s)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _worker_setup(pids, filters, stopping) -> None:
    """A worker process: one torch thread; while idle Ctrl-C ignored and SIGTERM at its default (:data:`_IDLE`: an
    idle worker has nothing to save, and the pool ends a broken pool's workers with SIGTERM: ignored, its join
    would hang; jobs take both, see :func:`_interruptible`; the parent stops its workers' jobs with SIGINT, see
    :meth:`ParallelRun._stop`, also when it is itself terminated); the warning filters ``filters`` of the process that started it (a spawned process
    starts with Python's defaults: a warning the caller silenced would reach the terminal from every worker);
    announces its process id on the queue ``pids`` (how :class:`ParallelRun` reaches its workers); jobs that start
    after the event ``stopping`` is set stop at once (a worker still starting up when Ctrl-C came neither saw it
    nor was announced)."""
    global _stopping
    torch.set_num_threads(1)
    warnings.filters[:] = filters
    for s, handler in _IDLE.items():
        signal.signal(s, handler)
    _stopping = stopping
    pids.put(os.getpid())


@contextmanager
def _interruptible():
    """Ctrl-C or SIGTERM raises KeyboardInterrupt inside a job (and only there: an idle worker has :data:`_IDLE`'s
    handlers; a SIGTERM sent to every process ends a job as Ctrl-C does, checkpoint kept, also where the parent is
    gone); a
    job that starts after its :class:`ParallelRun` was stopped raises it at once."""
    for s in _INTERRUPTS:
        signal.signal(s, signal.default_int_handler)
    try:
        if _stopping is not None and _stopping.is_set():
            raise KeyboardInterrupt
        yield
    finally:
        for s, handler in _IDLE.items():
            signal.signal(s, handler)


def _sky(config: ExperimentConfig, sky_name: str):
    """The sky setting ``sky_name`` of ``config``, as the config arrived in the worker (with its footprint mask:
    the file is not read again, see :func:`.config.sky_settings`)."""
    return next(sky for sky in sky_settings(config) if sky.name == sky_name)


def _baseline_job(path, sky_name: str, noise: NoiseSetting, config: ExperimentConfig, methods) -> list[dict]:
    sky = _sky(config, sky_name)
    with _interruptible(), limit_threads(1):
        return baseline_records(Path(path), sky, noise, config, methods)


def _train_job(path, sky_name: str, noises, config: ExperimentConfig, method: str,
               restart: bool = False, member: int = 0) -> tuple | None:
    """Network runs of one method, sky and ensemble member, one per noise setting of ``noises`` in that
    order, in a worker; ``(desc, epoch, epochs)`` if one was interrupted (Ctrl-C), else None (plain
    data: :class:`~deepsphere_gen.training.TrainingInterrupted` does not survive pickling)."""
    sky = _sky(config, sky_name)
    try:
        with _interruptible(), limit_threads(1):
            for noise in noises:
                train_one(config, Path(path), sky, noise, method, distributed_context("cpu"), restart=restart,
                          member=member)
    except TrainingInterrupted as exc:
        return exc.desc, exc.epoch, exc.epochs
    return None


class ParallelRun:
    """The run step on ``workers`` CPU processes: network trainings and baseline fits side by side.

    One job per network method, sky and ensemble member (its runs one after the other, the
    noise-free one first: the runs with noise start from it, see :func:`.training.train_one`; without
    ``config.warm_start`` one job per run and member) or per (sky, noise) baseline fit, one thread each, in spawned processes (no
    state shared with the parent's torch); jobs go largest first (estimated from samples x
    pixels x epochs).  Results are those of the sequential run: every job is
    seeded by itself; networks write their usual checkpoints, which :func:`.evaluation.evaluate_all` then
    reads (the same fingerprinted files as the sequential run: ``workers`` is not part of a run's
    fingerprint, so either run resumes or reuses the other's checkpoints; ``restart``: retrain
    even runs with a checkpoint); baseline records come back through ``baselines``
    ((sky, noise) -> future).
    ``with ParallelRun(config, path, 2) as run: run.wait_training(); evaluate_all(..., baselines=run.baselines)``.

    Ctrl-C: every worker stops its job (each network keeps its checkpoint of the last finished
    epoch), and :meth:`wait_training` raises :class:`~deepsphere_gen.training.TrainingInterrupted`
    of an interrupted run; any other error also stops the running jobs before it propagates.
    """

    def __init__(self, config: ExperimentConfig, path: Path, workers: int = 2, restart: bool = False):
        self.config, self.path, self.restart = config, Path(path), bool(restart)
        self.workers = check_positive_int(workers, "workers")
        self.baselines, self.training, self._pool, self._pid_queue, self._stopping = {}, [], None, None, None

    def _jobs(self):
        """``(size, "train", sky, [noise, ...], method, member)`` and ``(size, "baselines", sky, noise,
        [method, ...])``, largest first."""
        cfg, jobs, chains = self.config, [], {}
        for sky, noise, method, member in network_runs(cfg):
            train_set = dataset_of(self.path, sky, noise, cfg, "train")
            size = len(train_set) * train_set.indices.shape[1] * train_config(method, len(train_set), cfg).epochs
            key = (sky.name, method, member) if cfg.warm_start else (sky.name, method, member, noise.name)
            chain = chains.setdefault(key, [0.0, sky, [], method, member])
            chain[0] += size * (0.3 if method == "harmonic" else 1.0)
            chain[2].append(noise)
        jobs.extend((size, "train", sky, noises, method, member)
                    for size, sky, noises, method, member in chains.values())
        for sky in sky_settings(cfg):
            methods = [m for m in methods_for(sky, cfg.methods) if m in BASELINES]
            for noise in noise_settings(cfg) if methods else ():
                train_set = dataset_of(self.path, sky, noise, cfg, "train")
                draws = cfg.baseline_noise_draws if noise.kind != "none" else 1
                jobs.append((len(train_set) * train_set.indices.shape[1] * (draws + 0.5), "baselines", sky, noise,
                             methods))
        return sorted(jobs, key=lambda j: -j[0])

    def __enter__(self) -> "ParallelRun":
        jobs = self._jobs()
        context = multiprocessing.get_context("spawn")
        self._pid_queue, self._stopping = context.SimpleQueue(), context.Event()
        with _children_ignore_interrupts():  # the pool starts its processes as jobs are submitted
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_worker_setup,
                                             initargs=(self._pid_queue, list(warnings.filters), self._stopping))
            for _, kind, sky, noise, what, *member in jobs:
                if kind == "train":
                    self.training.append(self._pool.submit(_train_job, str(self.path), sky.name, noise, self.config,
                                                           what, self.restart, *member))
                else:
                    self.baselines[sky.name, noise.name] = self._pool.submit(_baseline_job, str(self.path), sky.name,
                                                                             noise, self.config, what)
        return self

    def wait_training(self) -> None:
        """Wait for every network run; re-raises the first error, or TrainingInterrupted after Ctrl-C."""
        try:
            stopped = [s for s in (f.result() for f in self.training) if s is not None]
        except KeyboardInterrupt:
            self._stop()
            stopped = [f.result() for f in self.training if not f.cancelled() and f.exception() is None]
            stopped = [s for s in stopped if s is not None]
            if not stopped:
                raise
        if stopped:  # a worker interrupted on its own (Ctrl-C reached it first)
            self._stop()
            raise TrainingInterrupted(*stopped[0], checkpoint=None)

    def _stop(self) -> None:
        """Cancel the jobs not started, interrupt the running ones (an idle worker ignores it), wait for them."""
        self._stopping.set()
        for f in [*self.training, *self.baselines.values()]:
            f.cancel()
        pids = set()
        while not self._pid_queue.empty():  # the workers started so far announced their ids
            pids.add(self._pid_queue.get())
        for pid in sorted(pids):
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:  # already gone
                pass
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._pool.shutdown(wait=True)
        else:
            self._stop()
