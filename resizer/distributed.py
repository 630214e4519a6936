"""The Ray executor: a batch's jobs run in Ray actors, through the same per-file work as a local run.

Planning stays on the driver (:func:`resizer.pipeline.plan_jobs`); each job is plain data
sent to an actor, which runs :func:`resizer.pipeline.process_job` on it. An actor is a
long-lived process, so a learned method's network is loaded once per actor (the weights
loader's cache) and kept for every later file. With ``--device cuda`` there is one actor per
GPU of the cluster; otherwise CPU actors, as many as ``--jobs`` (default: the cluster's CPUs).

Jobs go out in small batches, at most two per actor in flight (back-pressure: the driver
never queues the whole folder); results come back **in input order**, like the local thread
pool, so ``--json`` lines and the progress bar read as in a local run.

Faults: when an actor's process dies, Ray restarts it and the driver sends that batch
again, to the next actor. A file whose output already exists on such a retry is made again
in a private scratch folder and compared: identical bytes mean the lost attempt wrote it
(``ok``, not written twice); anything else is the usual ``exists`` result. Ctrl-C cancels the
queued batches, kills the actors and removes the temporary files they left. This module is
imported only for ``--ray``: ``import resizer`` never imports Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import filecmp
import logging
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Iterator

from . import pipeline, storage
from .errors import ResizerError, UsageError
from .methods import get_method
from .resizing import DEFAULT_METHOD

LOCAL = "local"  # --ray local: a private cluster started for this run
AUTO = "auto"  # --ray auto: RAY_ADDRESS, else the cluster 'ray start' runs on this machine
IN_FLIGHT_PER_ACTOR = 2
MAX_ATTEMPTS = 3  # a batch whose actor died this many times fails its files instead
CONNECT_TIMEOUT_S = 5.0
RESTART_WAIT_S = 120.0  # no actor up (none restarted) for this long: the batch fails


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'resizer[ray]'") from None
    return ray


# --------------------------------------------------------------------------- the actor


class ResizeWorker:
    """One Ray actor: runs jobs with the batch's settings; its process keeps the loaded networks."""

    def __init__(self, settings: pipeline.BatchSettings, threads: int | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.settings = settings

    def where(self) -> tuple[str, int]:
        """This actor's host and process id (the driver cleans up after killed ones)."""
        return socket.gethostname(), os.getpid()

    def run(self, batch: list[tuple[int, pipeline.ResizeJob]], retry: bool) -> list[tuple[int, pipeline.FileResult]]:
        """Each job's result, by its index in the batch's job list."""
        work = _retried_job if retry else pipeline.process_job
        return [(index, work(job, self.settings)) for index, job in batch]


def _retried_job(job: pipeline.ResizeJob, settings: pipeline.BatchSettings) -> pipeline.FileResult:
    """``process_job`` for a job whose first attempt died: its output may be that attempt's, complete.

    The output (a file or an object, :mod:`resizer.storage`) is made again in a private folder
    and compared; the same bytes are kept as they are, as this job's ``ok``.
    """
    if settings.overwrite or job.fields is not None or job.output == pipeline.STDIO or not _exists(job.output):
        return pipeline.process_job(job, settings)
    with tempfile.TemporaryDirectory(prefix="resizer-retry-") as scratch:
        private = dataclasses.replace(job, output=os.path.join(scratch, storage.name(job.output)))
        result = pipeline.process_job(private, dataclasses.replace(settings, skip_existing=False))
        if result.status == "ok" and _same_bytes(private.output, job.output):
            result.output = job.output  # the lost attempt finished it: the same bytes are there
            return result
    return pipeline.process_job(job, settings)


def _exists(location: str) -> bool:
    return storage.exists(location) if storage.is_url(location) else os.path.exists(location)


def _same_bytes(path: str, location: str) -> bool:
    if not storage.is_url(location):
        return filecmp.cmp(path, location, shallow=False)
    try:
        return Path(path).read_bytes() == storage.read_bytes(location)
    except ResizerError:
        return False


# --------------------------------------------------------------------------- connecting


def _drop_cluster_messages(ray):
    """Keep the raylet's notices ("A worker died ...") off standard output, where ``--json`` lines go.

    Ray prints them from a driver thread; a lost worker is handled here (its batch is sent
    again), and the file's own line says what became of it. Returns the undo.
    """
    worker_module = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker_module, "print_to_stdstream", None)
    if original is None:
        return lambda: None

    def without_raylet_notices(data, *args, **kwargs):
        if data.get("pid") != "raylet":
            original(data, *args, **kwargs)

    worker_module.print_to_stdstream = without_raylet_notices
    return lambda: setattr(worker_module, "print_to_stdstream", original)


def _address(address: str) -> str:
    if address == AUTO:
        return os.environ.get("RAY_ADDRESS") or AUTO
    return address


def _check_reachable(address: str) -> None:
    """A HOST:PORT that accepts no connection is a usage error now (Ray itself retries for minutes)."""
    if address == AUTO:
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address}: give local, auto or HOST:PORT of a Ray cluster's head")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--ray {address}: cannot reach a Ray cluster there ({reason})") from None


class RayExecutor:
    """Runs a batch's jobs on a Ray cluster (see the module docstring); a context manager for one batch.

    ``address``: ``local`` (a private cluster of ``num_cpus`` CPUs, default all, shut down at
    the end), ``auto`` or HOST:PORT. ``runtime_env`` is Ray's (``pip``, ``env_vars``, ...).
    """

    def __init__(self, address: str, *, num_cpus: int | None = None, runtime_env: dict | None = None) -> None:
        self.address, self.num_cpus, self.runtime_env = address, num_cpus, runtime_env
        self._temp_dir: str | None = None
        self._actors: list = []
        self._places: list[tuple[str, int]] = []
        self._jobs: list[pipeline.ResizeJob] = []
        self._restore_messages = lambda: None

    def __enter__(self) -> "RayExecutor":
        ray = _ray()
        self._restore_messages = _drop_cluster_messages(ray)
        try:
            self._connect(ray)
        except BaseException:
            self._restore_messages()
            if self._temp_dir:
                shutil.rmtree(self._temp_dir, ignore_errors=True)
            raise
        return self

    def _connect(self, ray) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        quiet = dict(logging_level=logging.ERROR, log_to_driver=False, runtime_env=self.runtime_env)
        if self.address == LOCAL:
            # a short path: Ray's socket names must fit in 107 bytes
            self._temp_dir = tempfile.mkdtemp(prefix="rz-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
            ray.init(num_cpus=self.num_cpus or os.cpu_count() or 1, _temp_dir=self._temp_dir, include_dashboard=False,
                     **quiet)
            return
        address = _address(self.address)
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            message = " ".join(str(exc).split())[:200]
            raise UsageError(f"--ray {self.address}: cannot connect to a Ray cluster ({message})") from None

    def __exit__(self, exc_type, exc, tb) -> None:
        ray = _ray()
        try:
            if exc_type is not None and self._actors:
                self._stop_actors()
        finally:
            ray.shutdown()
            self._restore_messages()
            if self._temp_dir:
                shutil.rmtree(self._temp_dir, ignore_errors=True)

    # ----------------------------------------------------------------------- running

    def run(self, jobs: list[pipeline.ResizeJob], settings: pipeline.BatchSettings) -> Iterator[pipeline.FileResult]:
        """One result per job, in job order, made by actors on the cluster."""
        if not jobs:
            return
        if any(pipeline.STDIO in (job.input, job.output) for job in jobs):
            raise UsageError("--ray reads and writes files: standard input or output ('-') runs without --ray")
        settings = dataclasses.replace(settings, run=dataclasses.replace(settings.run, progress=None))
        self._jobs = jobs
        self._start_actors(settings, len(jobs))
        yield from self._stream(jobs, settings)
        self._actors = []  # done: nothing to stop
        pipeline.remove_batch_temporaries(jobs)  # what actors killed mid-file left on this host

    def _start_actors(self, settings: pipeline.BatchSettings, job_count: int) -> None:
        ray = _ray()
        resources = ray.cluster_resources()
        method = get_method(settings.method or DEFAULT_METHOD[settings.direction])
        gpus = int(resources.get("GPU", 0))
        wants_gpu = settings.run.device.startswith("cuda") or (settings.run.device == "auto" and gpus
                                                               and not method.concurrent_files)
        if wants_gpu and not gpus:
            raise UsageError(f"--device {settings.run.device}: the Ray cluster has no GPUs")
        cpus = max(1.0, float(resources.get("CPU", 1)))
        count = gpus if wants_gpu else settings.jobs or int(cpus)
        count = max(1, min(count, job_count))
        share = dict(num_gpus=1) if wants_gpu else dict(num_cpus=min(1.0, cpus / count))
        if wants_gpu and settings.run.device.startswith("cuda"):  # cuda:N: an actor sees only its own GPU
            settings = dataclasses.replace(settings, run=dataclasses.replace(settings.run, device="cuda"))
        actor_class = ray.remote(max_restarts=-1, max_task_retries=0, **share)(ResizeWorker)
        threads = None if wants_gpu else max(1, int(cpus // count))
        self._actors = [actor_class.remote(settings, threads) for _ in range(count)]
        self._places = ray.get([actor.where.remote() for actor in self._actors])

    def _stream(self, jobs: list[pipeline.ResizeJob], settings: pipeline.BatchSettings) -> Iterator[pipeline.FileResult]:
        size = max(1, min(8, len(jobs) // (len(self._actors) * 8)))
        dispatch = _Dispatch(self._actors, [[(k, jobs[k]) for k in range(i, min(i + size, len(jobs)))]
                                            for i in range(0, len(jobs), size)])
        next_index = 0
        while next_index < len(jobs):
            dispatch.step()
            while next_index in dispatch.done:
                yield dispatch.done.pop(next_index)
                next_index += 1

    def _stop_actors(self) -> None:
        """Kill the actors (their queued batches go with them), then remove the temporary files they left here."""
        ray = _ray()
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        here = socket.gethostname()
        local = [pid for host, pid in self._places if host == here]
        deadline = time.monotonic() + 10
        while local and time.monotonic() < deadline:
            local = [pid for pid in local if _alive(pid)]
            time.sleep(0.05)
        self._actors = []
        pipeline.remove_batch_temporaries(self._jobs)


class _Dispatch:
    """Batches to actors, at most IN_FLIGHT_PER_ACTOR each; a dead actor's batch goes to another, once it is up.

    An actor whose batch failed is *down* until a probe (``where``) answers: Ray restarts it
    meanwhile, and a call made while it restarts fails at once, which must not count as an attempt.
    """

    def __init__(self, actors: list, batches: list[list[tuple[int, pipeline.ResizeJob]]]) -> None:
        self.actors = actors
        self.pending = deque((batch, 1, None, False) for batch in batches)  # (batch, attempt, avoid, retry)
        self.in_flight: dict = {}  # ref -> (batch, attempt, actor index)
        self.none_up_since: float | None = None
        self.probes: dict = {}  # ref -> actor index
        self.load = [0] * len(actors)
        self.up = [True] * len(actors)
        self.done: dict[int, pipeline.FileResult] = {}

    def step(self) -> None:
        """Send what the actors that are up can take, then take in the next finished call."""
        ray = _ray()
        while self.pending and any(self.up):
            batch, attempt, avoid, retry = self.pending[0]
            choices = [i for i in range(len(self.actors)) if self.up[i] and i != avoid] or \
                      [i for i in range(len(self.actors)) if self.up[i]]
            chosen = min(choices, key=lambda i: self.load[i])  # a retried batch goes elsewhere when it can
            if self.load[chosen] >= IN_FLIGHT_PER_ACTOR:
                break
            self.pending.popleft()
            self.load[chosen] += 1
            self.in_flight[self.actors[chosen].run.remote(batch, retry)] = (batch, attempt, chosen)
        self._check_some_actor_up()
        ready, _ = ray.wait([*self.in_flight, *self.probes], num_returns=1)
        for ref in ready:
            if ref in self.probes:
                self._probed(ref, self.probes.pop(ref))
            else:
                self._finished(ref, *self.in_flight.pop(ref))

    def _finished(self, ref, batch, attempt: int, actor: int) -> None:
        ray = _ray()
        self.load[actor] -= 1
        try:
            self.done.update(ray.get(ref))
            return
        except _actor_errors() as exc:
            lost = exc
        if self.up[actor]:  # it died with this batch: an attempt spent
            self.up[actor] = False
            self.probes[self.actors[actor].where.remote()] = actor
        elif attempt > 0:
            attempt -= 1  # sent while it restarted: not an attempt
        if attempt < MAX_ATTEMPTS:  # a retry: its outputs may be complete already (see _retried_job)
            self.pending.appendleft((batch, attempt + 1, actor, True))
            return
        reason = " ".join(str(lost).split())[:200]
        for index, job in batch:
            self.done[index] = pipeline.FileResult(job.display_input, job.output, "error",
                                                   error=f"{job.display_input}: its Ray worker died {attempt} times "
                                                         f"({reason})")

    def _check_some_actor_up(self) -> None:
        if any(self.up):
            self.none_up_since = None
            return
        self.none_up_since = self.none_up_since or time.monotonic()
        if time.monotonic() - self.none_up_since > RESTART_WAIT_S:
            raise ResizerError(f"the Ray cluster has had no worker for this batch for {RESTART_WAIT_S:.0f} s")

    def _probed(self, ref, actor: int) -> None:
        ray = _ray()
        try:
            ray.get(ref)
            self.up[actor] = True
        except _actor_errors():
            time.sleep(0.2)  # still restarting: ask again
            self.probes[self.actors[actor].where.remote()] = actor


def _actor_errors() -> tuple:
    exceptions = _ray().exceptions
    return exceptions.RayActorError, exceptions.ActorUnavailableError, exceptions.WorkerCrashedError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True

