"""The CPU bench keeps the median of its interleaved windows, and says what every window read."""

from __future__ import annotations

from bench.bench_cpu import median_round


def _window(total: float, sink: float) -> dict:
    return {"cpu_ms_per_frame": {"total": total, "sink": sink, "segmenter": total - sink}, "frames": 240}


def test_median_window_is_kept_with_every_total() -> None:
    rounds = [_window(15.5, 12.0), _window(12.1, 9.0), _window(13.3, 10.0)]
    kept = median_round(rounds)
    assert kept["cpu_ms_per_frame"] == {"total": 13.3, "sink": 10.0, "segmenter": 13.3 - 10.0}
    assert kept["rounds_cpu_ms_per_frame"] == [15.5, 12.1, 13.3]   # in the order measured


def test_even_count_keeps_the_lower_middle_and_one_window_is_itself() -> None:
    assert median_round([_window(14.0, 1), _window(11.0, 1), _window(12.0, 1), _window(13.0, 1)])[
        "cpu_ms_per_frame"]["total"] == 12.0
    one = median_round([_window(9.5, 7.0)])
    assert one["cpu_ms_per_frame"]["total"] == 9.5 and one["rounds_cpu_ms_per_frame"] == [9.5]
