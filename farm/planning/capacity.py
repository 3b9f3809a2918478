"""``farm capacity``: how many GPUs, worker pods and how much Redis a daily load needs.

Two checks size the GPU fleet for the peak hour, and the larger answer wins:

* throughput balance: the peak audio rate must fit in the fleet's ×RT at no more than
  ``max_utilisation`` (headroom for retries, model loads and uneven jobs);
* queueing: with jobs arriving at random (Poisson) and exponential service times, a
  fleet of ``c`` GPUs is an M/M/c queue; Erlang C gives the chance a job waits, and the
  wait tail gives the p95 wait, which must stay under the target.

A GPU is one server: its batching and concurrency are already inside its ×RT figure.
docs/capacity.md has the formulas and worked examples.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from farm.errors import PermanentError
from farm.planning.capacity_data import (
    GPU_THROUGHPUT,
    GPU_TYPES,
    MESSAGE_BYTES,
    MODEL_ALIASES,
    MODEL_SPEED,
    MODEL_SPEED_SOURCE,
    REDIS_MIN_MAXMEMORY_MB,
    REDIS_OVERHEAD,
    RESULT_BYTES_PER_AUDIO_HOUR,
    RESULT_META_BYTES,
)

MIB = 1024 * 1024
WAIT_QUANTILE = 0.95
MAX_GPUS = 100_000  # a search bound, far above any farm this plans


class CapacityError(PermanentError):
    """The planner's inputs cannot give a plan (unknown GPU or model, unreadable report)."""


@dataclass(frozen=True)
class Demand:
    """The load to plan for: audio per day, how peaky it is, and the wait users accept."""

    audio_hours_per_day: float
    peak_ratio: float
    p95_wait_s: float
    job_audio_s: float = 300.0
    max_utilisation: float = 0.8

    def __post_init__(self) -> None:
        checks = {
            "audio_hours_per_day": self.audio_hours_per_day > 0,
            "peak_ratio": self.peak_ratio >= 1,
            "p95_wait_s": self.p95_wait_s >= 0,
            "job_audio_s": self.job_audio_s > 0,
            "max_utilisation": 0 < self.max_utilisation <= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise CapacityError(f"{name}: out of range ({getattr(self, name)})")

    @property
    def peak_audio_rate(self) -> float:
        """Seconds of audio arriving per second in the peak hour."""
        return self.audio_hours_per_day * self.peak_ratio / 24

    def at_average(self) -> Demand:
        return Demand(self.audio_hours_per_day, 1.0, self.p95_wait_s, self.job_audio_s, self.max_utilisation)


@dataclass(frozen=True)
class Fleet:
    """How GPUs are packaged and paid for, and how long Redis keeps what."""

    gpus_per_pod: int = 1
    price_per_gpu_hour: float | None = None
    result_ttl_hours: float = 24.0
    outage_minutes: float = 60.0  # queue that Redis must hold while every worker is down


@dataclass(frozen=True)
class Throughput:
    """One GPU's ×RT for a model, and where the figure comes from."""

    device: str
    model: str
    xrt: float
    source: str
    estimate: bool


@dataclass(frozen=True)
class QueueStats:
    servers: int
    offered_load: float  # Erlangs: busy GPUs needed on average
    utilisation: float
    wait_probability: float  # Erlang C
    mean_wait_s: float
    p95_wait_s: float


@dataclass(frozen=True)
class RedisSizing:
    jobs_per_day: float
    results_mb: float
    backlog_jobs: float
    backlog_mb: float
    maxmemory_mb: int


@dataclass(frozen=True)
class CapacityPlan:
    demand: Demand
    throughput: Throughput
    gpus: int
    gpus_for_throughput: int
    gpus_for_wait: int
    worker_pods: int
    peak: QueueStats
    average_gpus: int
    redis: RedisSizing
    cost_per_day: float | None
    cost_per_audio_hour: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- queueing -------------------------------------------------------------------------


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability, by the stable recursion B(k) = aB(k-1) / (k + aB(k-1))."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arriving job waits, for ``servers`` GPUs and ``load`` Erlangs."""
    if load <= 0:
        return 0.0
    if load >= servers:
        return 1.0
    return _c_from_b(servers, load, erlang_b(servers, load))


def _c_from_b(servers: int, load: float, blocking: float) -> float:
    return servers * blocking / (servers - load * (1 - blocking))


def wait_quantile(servers: int, load: float, service_s: float, quantile: float = WAIT_QUANTILE) -> float:
    """Queue wait not exceeded by ``quantile`` of jobs: P(W > t) = C e^-(c-a)t/S."""
    if load >= servers:
        return math.inf
    return _wait_quantile(servers, load, service_s, erlang_c(servers, load), quantile)


def _wait_quantile(servers: int, load: float, service_s: float, waits: float, quantile: float) -> float:
    if waits <= 1 - quantile:
        return 0.0
    return service_s * math.log(waits / (1 - quantile)) / (servers - load)


def queue_stats(servers: int, load: float, service_s: float) -> QueueStats:
    waits = erlang_c(servers, load)
    stable = load < servers
    return QueueStats(
        servers=servers,
        offered_load=load,
        utilisation=load / servers,
        wait_probability=waits,
        mean_wait_s=waits * service_s / (servers - load) if stable else math.inf,
        p95_wait_s=wait_quantile(servers, load, service_s),
    )


def servers_for_wait(load: float, service_s: float, target_s: float) -> int:
    """Fewest servers whose p95 wait is within ``target_s``; Erlang B is built up as c grows."""
    blocking = 1.0
    for servers in range(1, MAX_GPUS + 1):
        blocking = load * blocking / (servers + load * blocking)
        if load < servers:
            waits = _c_from_b(servers, load, blocking)
            if _wait_quantile(servers, load, service_s, waits, WAIT_QUANTILE) <= target_s:
                return servers
    raise CapacityError(f"more than {MAX_GPUS} GPUs would be needed")


# --- planning -------------------------------------------------------------------------


def gpus_for(demand: Demand, xrt: float) -> tuple[int, int]:
    """GPUs the throughput balance needs, and GPUs the wait target needs, at the peak."""
    load = demand.peak_audio_rate / xrt
    # A tiny epsilon keeps 2.0000000001 (float noise) from becoming 3 GPUs.
    for_throughput = max(1, math.ceil(load / demand.max_utilisation - 1e-9))
    for_wait = servers_for_wait(load, demand.job_audio_s / xrt, demand.p95_wait_s)
    return for_throughput, for_wait


def redis_sizing(demand: Demand, fleet: Fleet) -> RedisSizing:
    jobs_per_day = demand.audio_hours_per_day * 3600 / demand.job_audio_s
    kept = fleet.result_ttl_hours / 24
    results = demand.audio_hours_per_day * kept * RESULT_BYTES_PER_AUDIO_HOUR + jobs_per_day * kept * RESULT_META_BYTES
    backlog_jobs = demand.peak_audio_rate / demand.job_audio_s * fleet.outage_minutes * 60
    backlog = backlog_jobs * MESSAGE_BYTES
    needed = math.ceil((results + backlog) * REDIS_OVERHEAD / MIB)
    return RedisSizing(
        jobs_per_day=jobs_per_day,
        results_mb=results / MIB,
        backlog_jobs=backlog_jobs,
        backlog_mb=backlog / MIB,
        maxmemory_mb=max(REDIS_MIN_MAXMEMORY_MB, 64 * math.ceil(needed / 64)),
    )


def plan_capacity(demand: Demand, throughput: Throughput, fleet: Fleet | None = None) -> CapacityPlan:
    """Size GPUs, pods and Redis for ``demand`` on GPUs that run at ``throughput``."""
    fleet = fleet or Fleet()
    for_throughput, for_wait = gpus_for(demand, throughput.xrt)
    gpus = max(for_throughput, for_wait)
    service_s = demand.job_audio_s / throughput.xrt
    cost = None if fleet.price_per_gpu_hour is None else gpus * fleet.price_per_gpu_hour * 24
    return CapacityPlan(
        demand=demand,
        throughput=throughput,
        gpus=gpus,
        gpus_for_throughput=for_throughput,
        gpus_for_wait=for_wait,
        worker_pods=math.ceil(gpus / fleet.gpus_per_pod),
        peak=queue_stats(gpus, demand.peak_audio_rate / throughput.xrt, service_s),
        average_gpus=max(gpus_for(demand.at_average(), throughput.xrt)),
        redis=redis_sizing(demand, fleet),
        cost_per_day=cost,
        cost_per_audio_hour=None if cost is None else cost / demand.audio_hours_per_day,
    )


# --- throughput sources ---------------------------------------------------------------


def normalise_model(name: str) -> str:
    """ "Systran/faster-whisper-large-v3" and "openai/whisper-large-v3" -> "large-v3"."""
    short = name.strip().lower().rstrip("/").rsplit("/", 1)[-1]
    short = short.replace("distil-whisper-", "distil-")
    for prefix in ("faster-whisper-", "faster-", "whisper-"):
        short = short.removeprefix(prefix)
    return MODEL_ALIASES.get(short, short)


def builtin_throughput(gpu: str, model: str) -> Throughput:
    """×RT of ``model`` on ``gpu`` from the published table, scaled when not measured."""
    gpu_key = _gpu_key(gpu)
    wanted = normalise_model(model)
    rows = [row for row in GPU_THROUGHPUT if row.gpu == gpu_key]
    for row in rows:
        if row.model == wanted:
            return Throughput(gpu_key, wanted, row.xrt, f"{row.setup}; {row.source}", row.estimate)
    if wanted not in MODEL_SPEED:
        raise CapacityError(f"model: no published speed for {model!r}; known: {', '.join(MODEL_SPEED)}")
    anchor = next(row for row in rows if row.anchor)
    xrt = anchor.xrt * MODEL_SPEED[wanted] / MODEL_SPEED[anchor.model]
    source = f"{anchor.model} on {gpu_key} ({anchor.xrt}x; {anchor.source}) x model speed ratio ({MODEL_SPEED_SOURCE})"
    return Throughput(gpu_key, wanted, round(xrt, 1), source, True)


def _gpu_key(gpu: str) -> str:
    for known in GPU_TYPES:
        if known.lower() == gpu.strip().lower():
            return known
    raise CapacityError(f"gpu: unknown type {gpu!r}; known: {', '.join(GPU_TYPES)} (or pass --bench)")


@dataclass(frozen=True)
class BenchResult:
    name: str
    model: str
    device: str
    xrt: float
    weights: str = ""  # e.g. "synthetic weights, 100 tokens/window" (bench/gpu_check.py)


@dataclass(frozen=True)
class BenchReport:
    """The parts of a ``farm bench`` JSON report the planner reads."""

    hardware: str
    results: tuple[BenchResult, ...]

    @classmethod
    def load(cls, path: Path) -> BenchReport:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            hardware = raw["hardware"]
            results = tuple(
                BenchResult(
                    str(r["name"]), str(r["model"]), str(r["device"]), float(r["xrt"]), str(r.get("weights") or "")
                )
                for r in raw["results"]
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CapacityError(f"bench: cannot read report {path}: {exc!r}") from exc
        return cls(str(hardware.get("gpu") or hardware.get("cpu") or "unknown device"), results)


def bench_throughput(path: Path, model: str) -> Throughput:
    """The best measured ×RT for ``model`` in a ``farm bench`` report (per device)."""
    report = BenchReport.load(path)
    wanted = normalise_model(model)
    matching = [r for r in report.results if normalise_model(r.model) == wanted and r.xrt > 0]
    if not matching:
        found = sorted({r.model for r in report.results})
        raise CapacityError(f"model: {model!r} not in bench report {path} (it has: {', '.join(found) or 'nothing'})")
    best = max(matching, key=lambda r: r.xrt)
    label = ", ".join(part for part in (best.name, best.device, best.weights) if part)
    return Throughput(report.hardware, wanted, best.xrt, f"measured: bench report {path} ({label})", False)


# --- output ---------------------------------------------------------------------------


def render(plans: list[CapacityPlan]) -> str:
    """A human-readable plan: one line per GPU type, then Redis and the sources."""
    demand = plans[0].demand
    lines = [
        f"{plans[0].throughput.model}: {demand.audio_hours_per_day:g} audio h/day, peak x{demand.peak_ratio:g} "
        f"({demand.peak_audio_rate:.2f} audio s/s), p95 wait <= {demand.p95_wait_s:g} s, "
        f"jobs of {demand.job_audio_s:g} s, utilisation <= {demand.max_utilisation:g}",
        "",
        f"{'device':<16} {'xRT':>7} {'GPUs':>5} {'(tput/wait)':>11} {'avg':>4} {'pods':>5} "
        f"{'util':>5} {'p95 wait':>9} {'cost/day':>9} {'cost/audio h':>12}",
    ]
    lines += [_plan_line(plan) for plan in plans]
    redis = plans[0].redis
    lines += [
        "",
        f"Redis: maxmemory {redis.maxmemory_mb} MiB ({redis.jobs_per_day:,.0f} jobs/day; results "
        f"{redis.results_mb:.1f} MiB kept; backlog {redis.backlog_jobs:,.0f} jobs = {redis.backlog_mb:.1f} MiB)",
        "",
        "sources:",
    ]
    lines += [
        f"  {p.throughput.device}: {'[estimate] ' if p.throughput.estimate else ''}{p.throughput.source}" for p in plans
    ]
    return "\n".join(lines) + "\n"


def _plan_line(plan: CapacityPlan) -> str:
    split = f"({plan.gpus_for_throughput}/{plan.gpus_for_wait})"
    xrt = f"{plan.throughput.xrt:g}{'*' if plan.throughput.estimate else ''}"
    return (
        f"{plan.throughput.device[:16]:<16} {xrt:>7} {plan.gpus:>5} {split:>11} {plan.average_gpus:>4} "
        f"{plan.worker_pods:>5} {plan.peak.utilisation:>5.0%} {plan.peak.p95_wait_s:>8.1f}s "
        f"{_money(plan.cost_per_day):>9} {_money(plan.cost_per_audio_hour, 3):>12}"
    )


def _money(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"
