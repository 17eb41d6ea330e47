"""Benchmark: concurrent vs sequential requests to an OpenAI-compatible server on 127.0.0.1.

Starts a server on loopback, then evaluates the same structured samples through the openai
backend (``sgvalues.models.openai_backend``, the code path of ``model.backend: openai``) with
``max_concurrency`` 1 (sequential) and N (bounded concurrent), and prints requests/s, the
speed-up, whether the answers are identical, and a re-run through the response cache (no
request reaches the server).

Servers:

- ``--server transformers`` (default): ``transformers serve`` running the embedded SmolLM2 on
  the CPU (``--continuous-batching`` passes that flag on, so the server batches concurrent
  requests); samples are the synthetic default's OOD samples.
- ``--server fault``: the tests' loopback server (``tests/fault_server.py``) answering after a
  fixed ``--latency`` (a stand-in for a remote GPU server's round trip), no model needed.

Run: ``python benchmarks/bench_serving.py [--server transformers|fault] [--n 32] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def transformers_server(continuous_batching: bool = False, startup_s: float = 180.0):
    """``transformers serve`` with the embedded model on 127.0.0.1; yields ``(base_url, model_name)``."""
    from sgvalues.models.embedded import embedded_model_dir

    exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    if not Path(exe).exists():
        raise SystemExit("the transformers CLI is not installed (pip install 'transformers[serving]')")
    model_dir = str(embedded_model_dir())
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    cmd = [exe, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    if continuous_batching:
        cmd.append("--continuous-batching")
    log = tempfile.NamedTemporaryFile(prefix="bench_serving_", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + startup_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit("transformers serve did not start:\n" + Path(log.name).read_text()[-2000:])
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", model_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def fault_server(latency_s: float):
    """The tests' loopback server, each answer delayed by ``latency_s``; yields ``(base_url, name)``."""
    sys.path.insert(0, str(REPO / "tests"))
    from fault_server import FaultServer

    class SlowServer(FaultServer):
        def _handle(self, h, body):
            time.sleep(latency_s)
            super()._handle(h, body)

    with SlowServer() as s:
        yield s.base_url, "loopback-test-model"


def survey_samples(n: int) -> list[dict]:
    """``n`` OOD samples of the synthetic default (whole questions, seeded)."""
    from sgvalues.evaluate import stratified_limit
    from sgvalues.params import load_params
    from sgvalues.prepare import prepare_run_data
    from sgvalues.split import load_samples

    run = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    data = prepare_run_data(load_params(REPO / "params" / "smollm2-135m.yaml"), run)
    return stratified_limit(load_samples(data, "ood"), n, seed=0)


def _spec(base_url: str, name: str, concurrency: int):
    from sgvalues.params import ModelSpec

    return ModelSpec(backend="openai", name=name, base_url=base_url, api_key_env="SGV_BENCH_UNSET_KEY",
                     timeout_s=300.0, max_retries=1, backoff_base_s=0.1, max_concurrency=concurrency)


def measure(samples: list[dict], base_url: str, name: str, concurrencies=(1, 8), mode: str = "logprob",
            cache_dir: str | None = None) -> list[dict]:
    """Time ``evaluate_samples`` at each ``max_concurrency``; then a cached re-run.

    Returns one row per run: ``run, max_concurrency, requests, server_calls, seconds,
    requests_per_s, speedup`` (vs the first run) and ``same_answers`` (predictions equal to the
    first run's).
    """
    from sgvalues.evaluate import evaluate_samples
    from sgvalues.models import ResponseCache, load_model

    rows, first = [], None
    for c in concurrencies:
        model = load_model(_spec(base_url, name, c))
        t = time.perf_counter()
        df = evaluate_samples(samples, model, mode=mode, cache=None, chunk_size=len(samples))
        dt = time.perf_counter() - t
        model.close()
        failed = int((df["status"] == "failed").sum())
        if failed:
            raise RuntimeError(f"{failed} request(s) failed at max_concurrency={c}: {df['raw_output'].iloc[0]!r}")
        preds = df["prediction"].tolist()
        first = first or (dt, preds)
        rows.append({"run": "sequential" if c == 1 else "concurrent", "max_concurrency": c,
                     "requests": len(samples), "server_calls": model.calls, "seconds": round(dt, 3),
                     "requests_per_s": round(len(samples) / dt, 2), "speedup": round(first[0] / dt, 2),
                     "same_answers": preds == first[1]})
    # the response cache: a second run of the same samples asks the server nothing
    cache = ResponseCache(Path(cache_dir or tempfile.mkdtemp(prefix="bench_serving_cache_")) / "responses.sqlite")
    c = max(concurrencies)
    evaluate_samples(samples, load_model(_spec(base_url, name, c)), mode=mode, cache=cache, chunk_size=len(samples))
    model = load_model(_spec(base_url, name, c))
    t = time.perf_counter()
    df = evaluate_samples(samples, model, mode=mode, cache=cache, chunk_size=len(samples))
    dt = time.perf_counter() - t
    rows.append({"run": "cached re-run", "max_concurrency": c, "requests": len(samples),
                 "server_calls": model.calls, "seconds": round(dt, 3),
                 "requests_per_s": round(len(samples) / max(dt, 1e-9), 1), "speedup": round(first[0] / max(dt, 1e-9), 1),
                 "same_answers": df["prediction"].tolist() == first[1]})
    return rows


def _fault_samples(n: int) -> list[dict]:
    opts = {"1": "a", "2": "b", "3": "c", "4": "d"}
    return [{"sample_id": f"Q{i}_sex:Male", "split": "ood", "question_id": f"Q{i}", "theme": "T", "stratum": "sex",
             "subgroup": "sex:Male", "levels": {"sex": "Male"}, "target": 1 + i % 4, "scale_min": 1, "scale_max": 4,
             "options": opts, "system": "Reply with a number.",
             "user_shared": f"Question {i}? ANSWER={1 + i % 4}\n", "user_persona": "You are a man. [[ok]]"}
            for i in range(n)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", choices=("transformers", "fault"), default="transformers")
    ap.add_argument("--n", type=int, default=32, help="samples (requests) per run")
    ap.add_argument("--concurrency", type=int, default=8, help="max_concurrency of the concurrent run")
    ap.add_argument("--latency", type=float, default=0.2, help="seconds per answer (--server fault)")
    ap.add_argument("--continuous-batching", action="store_true", help="pass on to transformers serve")
    args = ap.parse_args(argv)
    import pandas as pd

    if args.server == "fault":
        server, samples = fault_server(args.latency), _fault_samples(args.n)
        what = f"loopback fault server, {args.latency:.2f} s per answer"
    else:
        samples = survey_samples(args.n)
        server = transformers_server(args.continuous_batching)
        what = ("transformers serve, embedded SmolLM2-135M on CPU"
                + (", continuous batching" if args.continuous_batching else ""))
    with server as (url, name):
        rows = measure(samples, url, name, concurrencies=(1, args.concurrency))
    print(f"Serving benchmark: {what}; {len(samples)} structured samples (logprob mode), CPUs: {os.cpu_count()}")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
