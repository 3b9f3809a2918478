"""`farm capacity`: Erlang C and the plan, checked against cases worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from farm.planning.capacity import (
    CapacityError,
    Demand,
    Fleet,
    Throughput,
    bench_throughput,
    builtin_throughput,
    erlang_c,
    normalise_model,
    plan_capacity,
    queue_stats,
    servers_for_wait,
    wait_quantile,
)
from farm.planning.capacity_data import GPU_THROUGHPUT, GPU_TYPES, MEASURED_THROUGHPUT, MODEL_SPEED, Measured

ROOT = Path(__file__).resolve().parents[1]
FARM = Path(sys.executable).with_name("farm")  # the installed console script, as users run it
TEN_X = Throughput("test GPU", "large-v3", 10.0, "hand-made", False)


@pytest.mark.parametrize(
    ("servers", "load", "expected"),
    [
        # M/M/1: C = rho.
        (1, 0.5, 0.5),
        # c=2, a=1: a^c/c! * c/(c-a) = 1/2 * 2 = 1; sum_{k<2} a^k/k! = 1 + 1 = 2; C = 1/(2+1).
        (2, 1.0, 1 / 3),
        # c=3, a=2: 8/6 * 3/1 = 4; sum = 1 + 2 + 2 = 5; C = 4/9.
        (3, 2.0, 4 / 9),
        # c=4, a=2: 16/24 * 4/2 = 4/3; sum = 1 + 2 + 2 + 4/3 = 19/3; C = (4/3)/(23/3) = 4/23.
        (4, 2.0, 4 / 23),
        # No load never waits; load at or over capacity always waits.
        (3, 0.0, 0.0),
        (2, 2.0, 1.0),
    ],
)
def test_erlang_c_matches_hand_computed_values(servers: int, load: float, expected: float) -> None:
    assert erlang_c(servers, load) == pytest.approx(expected, rel=1e-12)


def test_wait_quantile_from_the_exponential_tail() -> None:
    # P(W > t) = C e^{-(c-a) t / S}. c=3, a=2, S=30 s: C = 4/9, so
    # t95 = 30 * ln((4/9) / 0.05) / (3 - 2) = 30 * ln(8.8889) = 30 * 2.184802 = 65.544 s.
    assert wait_quantile(3, 2.0, 30.0) == pytest.approx(30 * math.log((4 / 9) / 0.05), rel=1e-12)
    assert wait_quantile(3, 2.0, 30.0) == pytest.approx(65.544, abs=1e-3)
    # c=4: C = 4/23 = 0.173913; t95 = 30 * ln(3.478261) / 2 = 15 * 1.246532 = 18.698 s.
    assert wait_quantile(4, 2.0, 30.0) == pytest.approx(18.698, abs=1e-3)
    # When fewer than 5 % of jobs wait at all, the p95 wait is zero.
    assert wait_quantile(10, 1.0, 30.0) == 0.0
    assert wait_quantile(2, 2.0, 30.0) == math.inf


def test_queue_stats_mean_wait() -> None:
    # M/M/1, a = 0.5, S = 10 s: Wq = C * S / (c - a) = 0.5 * 10 / 0.5 = 10 s (= rho S / (1 - rho)).
    stats = queue_stats(1, 0.5, 10.0)
    assert stats.mean_wait_s == pytest.approx(10.0)
    assert stats.utilisation == pytest.approx(0.5)


def test_servers_for_wait_is_the_first_that_meets_the_target() -> None:
    assert servers_for_wait(2.0, 30.0, 60.0) == 4  # 3 GPUs: 65.5 s > 60 s; 4 GPUs: 18.7 s
    assert servers_for_wait(2.0, 30.0, 70.0) == 3
    assert servers_for_wait(0.01, 30.0, 0.0) == 1  # C = 0.01 <= 0.05: p95 wait is 0


def test_plan_worked_example() -> None:
    # 240 audio h/day, peak x2: 240 * 2 / 24 = 20 audio s per s at the peak.
    # ×RT 10: offered load a = 20 / 10 = 2 GPUs busy. Jobs of 300 s: service S = 30 s.
    # Throughput balance at <= 80 %: ceil(2 / 0.8) = ceil(2.5) = 3 GPUs.
    # Wait: 3 GPUs give p95 65.5 s > 60 s, 4 give 18.7 s -> 4 GPUs; 2 pods of 2 GPUs.
    # At the average (a = 1): ceil(1 / 0.8) = 2 for throughput; c=2: C = 1/3, p95 =
    # 30 ln(6.667) / 1 = 56.9 s <= 60 -> 2 GPUs.
    demand = Demand(240, 2.0, 60.0, job_audio_s=300, max_utilisation=0.8)
    plan = plan_capacity(demand, TEN_X, Fleet(gpus_per_pod=2, price_per_gpu_hour=2.5))
    assert (plan.gpus_for_throughput, plan.gpus_for_wait, plan.gpus) == (3, 4, 4)
    assert plan.worker_pods == 2
    assert plan.average_gpus == 2
    assert plan.peak.utilisation == pytest.approx(0.5)
    assert plan.peak.p95_wait_s == pytest.approx(18.698, abs=1e-3)
    # Cost: 4 GPUs * 2.5 per hour * 24 h = 240 per day; / 240 audio h = 1.0 per audio hour.
    assert plan.cost_per_day == pytest.approx(240.0)
    assert plan.cost_per_audio_hour == pytest.approx(1.0)


def test_redis_sizing_worked_example() -> None:
    # 240 audio h/day in 300 s jobs = 2,880 jobs/day, all kept 24 h:
    # results 240 * 256 KiB + 2,880 * 1 KiB = 62,914,560 + 2,949,120 = 65,863,680 B = 62.81 MiB.
    # Backlog for a 60 min outage at the peak: 20/300 jobs/s * 3,600 s = 240 jobs * 2 KiB
    # = 491,520 B. Times 2 for Redis overhead: 132,710,400 B = 126.6 MiB -> the 256 MiB floor.
    plan = plan_capacity(Demand(240, 2.0, 60.0), TEN_X)
    assert plan.redis.jobs_per_day == pytest.approx(2880)
    assert plan.redis.results_mb == pytest.approx(65_863_680 / 2**20)
    assert plan.redis.backlog_jobs == pytest.approx(240)
    assert plan.redis.maxmemory_mb == 256
    # Ten times the audio: 2 * (658,636,800 + 4,915,200) B = 1,265.6 MiB -> rounded up to 1,280.
    assert plan_capacity(Demand(2400, 2.0, 60.0), TEN_X).redis.maxmemory_mb == 1280


def test_demand_rejects_impossible_inputs() -> None:
    with pytest.raises(CapacityError, match="peak_ratio"):
        Demand(10, 0.5, 60)
    with pytest.raises(CapacityError, match="max_utilisation"):
        Demand(10, 2, 60, max_utilisation=1.5)


def test_builtin_table_has_every_gpu_type_with_a_source() -> None:
    for gpu in GPU_TYPES:
        rows = [row for row in GPU_THROUGHPUT if row.gpu == gpu]
        assert sum(row.anchor for row in rows) == 1, gpu
        assert all(row.source and row.xrt > 0 and row.model in MODEL_SPEED for row in rows), gpu
    for row in GPU_THROUGHPUT:
        # every row says where it came from and what was measured there; none is a guess
        assert row.source.startswith(("published: ", "measured ")), row
        assert "measured there: " in row.source or isinstance(row.origin, Measured), row
        assert not row.estimate, row


def test_no_row_claims_a_gpu_its_source_did_not_run() -> None:
    # insanely-fast-whisper's 5:02 (large-v2) and 3:16 (distil) runs are A100 80GB runs
    # (recaptioned in its commit 44c462b), not T4 ones; the P100 row was T4 x 1.15.
    assert not {"T4", "P100"} & set(GPU_TYPES)
    for row in GPU_THROUGHPUT:
        if "insanely-fast-whisper" in row.source:
            assert row.gpu == "A100" and "A100 80GB" in row.source
    with pytest.raises(CapacityError, match="gpu: unknown type 'T4'"):
        builtin_throughput("T4", "large-v2")


def test_measured_rows_say_when_where_and_how() -> None:
    origin = Measured("2026-11-28", "NVIDIA H200", "large-v3", 100, 16, "docs/gpu-check-report.json")
    assert origin.describe() == (
        "measured 2026-11-28 on NVIDIA H200: large-v3 shape, synthetic weights, 100 tokens/window, batch 16 "
        "(docs/gpu-check-report.json)"
    )
    assert "real weights" in Measured("2026-11-28", "H200", "large-v3", None, 8, "r.json").describe()
    assert all(isinstance(row.origin, Measured) for row in MEASURED_THROUGHPUT)


def test_builtin_throughput_uses_published_rows_and_scales_the_rest() -> None:
    published = builtin_throughput("a100", "openai/whisper-large-v3")
    assert (published.device, published.xrt, published.estimate) == ("A100", 91.8, False)
    assert "published: insanely-fast-whisper" in published.source and "1 min 38 s" in published.source
    # medium.en on an A100: 91.8 (large-v3) * 24.48 / 19.13 = 117.47 -> 117.5, an estimate.
    scaled = builtin_throughput("A100", "medium.en")
    assert scaled.xrt == pytest.approx(117.5) and scaled.estimate
    with pytest.raises(CapacityError, match="gpu"):
        builtin_throughput("V100", "large-v3")
    with pytest.raises(CapacityError, match="model"):
        builtin_throughput("A100", "whisper-enormous")


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("Systran/faster-whisper-large-v3", "large-v3"),
        ("openai/whisper-large-v3-turbo", "large-v3-turbo"),
        ("distil-whisper/distil-large-v3", "distil-large-v3"),
        ("Systran/faster-distil-whisper-large-v3", "distil-large-v3"),
        ("turbo", "large-v3-turbo"),
        ("tiny.en", "tiny.en"),
    ],
)
def test_model_names_are_normalised(name: str, short: str) -> None:
    assert normalise_model(name) == short


def _bench_report(path: Path) -> Path:
    result = {
        "engine": "ctranslate2", "device": "cuda", "compute_type": "float16", "beam_size": 5,
        "concurrency": 1, "audio_s": 600.0, "wer": None, "peak_rss_mb": None, "peak_vram_mb": None,
    }  # fmt: skip
    report = {
        "hardware": {"cpu": "Xeon", "cores": 8, "gpu": "NVIDIA L4", "gpu_memory_gb": 24.0},
        "versions": {},
        "results": [
            result | {"name": "b1", "model": "large-v3", "batch_size": 1, "wall_s": 60.0, "xrt": 10.0},
            result
            | {"name": "b8", "model": "Systran/faster-whisper-large-v3", "batch_size": 8, "wall_s": 20, "xrt": 30.0},
            result | {"name": "tiny", "model": "tiny.en", "batch_size": 8, "wall_s": 2.0, "xrt": 300.0},
            result
            | {
                "name": "synthetic b16",
                "model": "medium",
                "batch_size": 16,
                "wall_s": 1.0,
                "xrt": 500.0,
                "weights": "synthetic weights, 100 tokens/window",
            },
        ],
    }
    path.write_text(json.dumps(report))
    return path


def test_bench_report_gives_the_best_xrt_for_the_model(tmp_path: Path) -> None:
    report = _bench_report(tmp_path / "bench.json")
    throughput = bench_throughput(report, "large-v3")
    assert (throughput.device, throughput.xrt, throughput.estimate) == ("NVIDIA L4", 30.0, False)
    assert throughput.source == f"measured: bench report {report} (b8, cuda)"
    synthetic = bench_throughput(report, "medium")
    assert synthetic.source.endswith("(synthetic b16, cuda, synthetic weights, 100 tokens/window)")
    with pytest.raises(CapacityError, match="small"):
        bench_throughput(report, "small")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(CapacityError, match="cannot read"):
        bench_throughput(tmp_path / "bad.json", "large-v3")


def _farm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FARM), "capacity", *args], capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_cli_answers_in_under_a_second(tmp_path: Path) -> None:
    _farm("--audio-hours", "1")  # warm the file cache; the timed run is a cold process all the same
    started = time.perf_counter()
    done = _farm("--audio-hours", "240", "--bench", str(_bench_report(tmp_path / "b.json")), "--p95-wait", "60",
                 "--job-minutes", "5", "--gpus-per-pod", "2", "--price-per-gpu-hour", "2.5", "--json")  # fmt: skip
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 1.0
    [plan] = json.loads(done.stdout)
    # xRT 30: a = 20/30 = 0.667, S = 10 s. Throughput: ceil(0.667/0.8) = 1. Wait: c=1, C = 0.667,
    # p95 = 10 ln(13.33) / 0.333 = 77.7 s > 60; c=2: C = a^2/(2 - a)... = 0.1667, p95 = 10 ln(3.33)/1.333
    # = 9.0 s -> 2 GPUs in 1 pod of 2; cost 2 * 2.5 * 24 = 120 per day.
    assert (plan["gpus"], plan["worker_pods"], plan["cost_per_day"]) == (2, 1, 120.0)


def test_cli_table_and_errors() -> None:
    table = _farm("--audio-hours", "500", "--model", "large-v3", "--price-per-gpu-hour", "1")
    assert table.returncode == 0, table.stderr
    for gpu in GPU_TYPES:
        assert gpu in table.stdout
    assert "Redis: maxmemory" in table.stdout and "sources:" in table.stdout
    sources = table.stdout.split("sources:")[1]
    assert "A100: transformers fp16, batch 24, Flash Attention 2; published: insanely-fast-whisper" in sources
    assert "H100: [estimate] large-v3-turbo on H100 (404.0x; published: https://inferencebench.io" in sources
    unknown = _farm("--audio-hours", "5", "--gpu", "V100")
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: gpu:")


def test_docs_plots_are_drawn_from_the_planner(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "capacity_plots.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    drawn = sorted(p.name for p in tmp_path.glob("*.png"))
    assert drawn == ["capacity_gpus_vs_audio_hours.png", "capacity_p95_wait_vs_utilisation.png"]
    assert all((tmp_path / name).read_bytes().startswith(b"\x89PNG") for name in drawn)
    doc = (ROOT / "docs" / "capacity.md").read_text()
    for name in drawn:
        assert f"](img/{name})" in doc and (ROOT / "docs" / "img" / name).is_file()
