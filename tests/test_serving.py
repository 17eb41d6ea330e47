"""Many requests to an OpenAI-compatible server: bounded concurrency, order kept, cache makes a re-run free.

Against the tests' loopback server (``fault_server.py``), slowed down and counting how many
requests it holds at once.
"""

import importlib.util
import threading
import time
from pathlib import Path

import pytest

from factories import make_sample
from fault_server import FaultServer

from sgvalues.evaluate import evaluate_samples
from sgvalues.models import ResponseCache, load_model
from sgvalues.params import ModelSpec

REPO = Path(__file__).resolve().parents[1]


class CountingServer(FaultServer):
    """Answers after a delay that shrinks with the question number (later requests finish first)."""

    def __init__(self, n: int, delay_s: float = 0.02):
        super().__init__()
        self.n, self.delay_s = n, delay_s
        self.in_flight = self.max_in_flight = 0
        self._count = threading.Lock()

    def _handle(self, h, body):
        with self._count:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            i = int(body["messages"][-1]["content"].split("Question ")[1].split("?")[0])
            time.sleep(self.delay_s * (self.n - i))
            super()._handle(h, body)
        finally:
            with self._count:
                self.in_flight -= 1


def _samples(n: int) -> list[dict]:
    opts = {"1": "a", "2": "b", "3": "c", "4": "d"}
    return [make_sample(f"Q{i}", "sex:Male", target=1 + i % 4, options=opts, system="Reply with a number.",
                        user_shared=f"Question {i}? ANSWER={1 + (i * 7) % 4}\n", user_persona="You are a man. [[ok]]")
            for i in range(n)]


def _spec(url, concurrency):
    return ModelSpec(backend="openai", name="test-model", base_url=url, api_key_env="SGV_UNSET_KEY",
                     timeout_s=10.0, max_retries=0, max_concurrency=concurrency)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_bound_respected_and_order_kept(concurrency):
    n = 12
    samples = _samples(n)
    with CountingServer(n) as server:
        df = evaluate_samples(samples, load_model(_spec(server.base_url, concurrency)), cache=None, chunk_size=5)
        assert len(server.log) == n
        # never more than the bound at once, and the bound is used when it is > 1
        assert server.max_in_flight == concurrency
        if concurrency > 1:
            # later questions answer sooner, so the server saw completions out of order
            assert [int(e["body"]["messages"][-1]["content"].split("Question ")[1].split("?")[0])
                    for e in server.log][:2] != [0, 1]
    assert df["sample_id"].tolist() == [s["sample_id"] for s in samples]
    assert df["prediction"].tolist() == [1 + (i * 7) % 4 for i in range(n)]


def test_cache_makes_a_rerun_free(tmp_path):
    samples = _samples(6)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    with CountingServer(6, delay_s=0.0) as server:
        first = evaluate_samples(samples, load_model(_spec(server.base_url, 4)), cache=cache)
        calls = len(server.log)
        again = evaluate_samples(samples, load_model(_spec(server.base_url, 4)), cache=cache)
        assert calls == 6 and len(server.log) == calls
    assert again["prediction"].tolist() == first["prediction"].tolist()


def test_bench_serving_concurrent_beats_sequential():
    spec = importlib.util.spec_from_file_location("bench_serving", REPO / "benchmarks" / "bench_serving.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    n, latency = 8, 0.1
    with bench.fault_server(latency) as (url, name):
        rows = bench.measure(bench._fault_samples(n), url, name, concurrencies=(1, 4))
    seq, conc, cached = rows
    assert seq["seconds"] >= n * latency                      # one at a time
    assert conc["seconds"] < seq["seconds"] / 2               # four at a time: about n/4 latencies
    assert conc["same_answers"] and cached["same_answers"] and cached["server_calls"] == 0
