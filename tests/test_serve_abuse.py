"""benchmarks/serving/serve_abuse.py's pure parts: percentiles, phase summaries, targets."""

import copy

import pytest

from benchmarks.serving import serve_abuse


def test_percentiles_are_nearest_rank():
  values = [0.5, 0.1, 0.4, 0.2, 0.3]
  assert serve_abuse.percentile(values, 50) == 0.3
  assert serve_abuse.percentile(values, 99) == 0.5
  assert serve_abuse.percentile(values, 20) == 0.1
  assert serve_abuse.percentile(list(range(1, 101)), 99) == 99
  assert serve_abuse.percentile([], 99) is None


def test_a_phase_summary_counts_the_failed_requests():
  summary = serve_abuse.latency_summary([0.2, 0.1, 0.3], failed=1)
  assert summary == {
    "requests": 4,
    "failed": 1,
    "success_rate": 0.75,
    "latency_p50": 0.2,
    "latency_p99": 0.3,
  }
  assert serve_abuse.latency_summary([], 0)["success_rate"] is None


def _record() -> dict:
  phase = {"requests": 100, "failed": 0, "latency_p99": 0.02}
  return {
    "good": {"quiet": dict(phase), "abuse": dict(phase, latency_p99=0.06), "after": dict(phase)},
    "status_5xx": 0,
    "rss_mib": {"growth": 99.0},
    "read_timeout": 3.0,
    "idle_connections": {"opened": 1000, "closed": 1000, "latest_close_s": 3.2},
    "open_files": {"before": 14, "after": 14},
  }


@pytest.mark.parametrize(
  "change, target",
  [
    (lambda r: r["good"]["after"].update(failed=1), "no_good_request_failed"),
    (lambda r: r["good"]["quiet"].update(requests=0), "no_good_request_failed"),
    (lambda r: r.update(status_5xx=2), "no_5xx"),
    (lambda r: r["good"]["abuse"].update(latency_p99=0.0601), "p99_under_abuse_at_most_3x"),
    (lambda r: r["rss_mib"].update(growth=100.0), "rss_growth_under_100_mib"),
    (lambda r: r["idle_connections"].update(closed=999), "idle_closed_within_read_timeout"),
    (lambda r: r["idle_connections"].update(latest_close_s=4.5), "idle_closed_within_read_timeout"),
    (lambda r: r["open_files"].update(after=15), "descriptors_back_to_baseline"),
  ],
)
def test_each_target_fails_on_its_own_measurement(change, target):
  assert all(serve_abuse.verdict(_record()).values())
  record = copy.deepcopy(_record())
  change(record)
  failed = [name for name, met in serve_abuse.verdict(record).items() if not met]
  assert failed == [target]
