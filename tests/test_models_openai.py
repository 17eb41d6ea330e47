"""The openai backend against a real HTTP server on 127.0.0.1 that injects faults.

Every sample is accounted for: 429 then success is retried to success, persistent 500,
garbage bodies and timeouts end as ``failed`` after the configured retries, refusals are
flagged, and the API key travels only in the Authorization header.
"""

import os
import sys
import time
from pathlib import Path

import pytest

from factories import make_sample
from fault_server import FaultServer

from sgvalues.evaluate import evaluate_samples
from sgvalues.models import ResponseCache, load_model
from sgvalues.models.openai_backend import OpenAIModel, backoff_delay, resolve_api_key
from sgvalues.params import ModelSpec

SECRET = "sk-test-SECRET-0123456789"


def _sample(i: int, marker: str, answer: str = "3") -> dict:
    return make_sample(f"Q{i}", "sex:Male", target=3, options={"1": "a", "2": "b", "3": "c", "4": "d"},
                       system="Reply with a number.", user_shared=f"Question {i}? ANSWER={answer}\n",
                       user_persona=f"You are a man. [[{marker}]]")


def _spec(url, **kw):
    base = dict(backend="openai", name="test-model", base_url=url, api_key_env="SGV_TEST_KEY",
                timeout_s=0.5, max_retries=2, backoff_base_s=0.01, backoff_max_s=0.05, max_concurrency=4)
    base.update(kw)
    return ModelSpec(**base)


@pytest.fixture
def server():
    with FaultServer(sleep_s=1.5) as s:
        yield s


def test_faults_are_retried_or_recorded_and_every_sample_is_kept(server, monkeypatch, tmp_path):
    monkeypatch.setenv("SGV_TEST_KEY", SECRET)
    markers = ["ok", "429-once", "500", "garbage", "timeout", "refuse", "nologprobs"]
    samples = [_sample(i, m) for i, m in enumerate(markers)]
    model = load_model(_spec(server.base_url))
    cache = ResponseCache(tmp_path / "r.sqlite")
    t = time.time()
    df = evaluate_samples(samples, model, mode="logprob", cache=cache)
    assert time.time() - t < 20
    status = dict(zip(markers, df["status"]))
    assert len(df) == len(samples) and list(df["sample_id"]) == [s["sample_id"] for s in samples]
    assert status == {"ok": "ok", "429-once": "ok", "500": "failed", "garbage": "failed",
                      "timeout": "failed", "refuse": "refused", "nologprobs": "ok"}
    pred = dict(zip(markers, df["prediction"]))
    assert pred["ok"] == 3 and pred["429-once"] == 3 and pred["nologprobs"] == 3
    # probabilities from top logprobs: 0.7 on "3", 0.2 on "2", "I" is not an option
    import json

    probs = json.loads(df.loc[0, "probs"])
    assert probs["3"] == pytest.approx(0.7 / 0.9, abs=1e-6) and probs["2"] == pytest.approx(0.2 / 0.9, abs=1e-6)
    # calls: persistent faults use 1 + max_retries attempts, 429-once exactly 2
    per_marker = {m: sum(1 for r in server.log if r["marker"] == m) for m in markers}
    assert per_marker["500"] == 3 and per_marker["garbage"] == 3 and per_marker["timeout"] == 3
    assert per_marker["429-once"] == 2 and per_marker["ok"] == 1
    assert "500" in df.loc[2, "raw_output"] and "timeout" in df.loc[4, "raw_output"]
    # the key went in the Authorization header and nowhere else
    assert all(r["auth"] == f"Bearer {SECRET}" for r in server.log)
    assert SECRET not in df.to_csv()
    assert SECRET not in (tmp_path / "r.sqlite").read_bytes().decode("latin-1")

    # re-run: successes come from the cache, only the failures are asked again
    before = len(server.log)
    df2 = evaluate_samples(samples, model, mode="logprob", cache=cache)
    asked = {r["marker"] for r in server.log[before:]}
    assert asked == {"500", "garbage", "timeout"}
    assert list(df2["status"]) == list(df["status"])


def test_generate_mode_parses_text_and_flags_refusals(server, monkeypatch):
    monkeypatch.delenv("SGV_TEST_KEY", raising=False)  # loopback server: placeholder key
    samples = [_sample(1, "ok", "4"), _sample(2, "refuse"), _sample(3, "ok", "banana")]
    model = load_model(_spec(server.base_url))
    df = evaluate_samples(samples, model, mode="generate")
    assert list(df["status"]) == ["ok", "refused", "unparseable"]
    assert df["prediction"].iloc[0] == 4 and df["prediction"].isna().iloc[1:].all()
    assert all("logprobs" not in r["body"] for r in server.log)
    assert server.log[0]["auth"] == "Bearer not-needed"


def test_key_comes_only_from_the_environment(monkeypatch):
    monkeypatch.delenv("SGV_TEST_KEY", raising=False)
    spec = ModelSpec(backend="openai", name="gpt-4o", base_url=None, api_key_env="SGV_TEST_KEY")
    with pytest.raises(ValueError, match="SGV_TEST_KEY"):
        resolve_api_key(spec)
    monkeypatch.setenv("SGV_TEST_KEY", SECRET)
    model = OpenAIModel(spec)
    assert SECRET not in model.model_id and SECRET not in repr(model.decoding_key())


def test_backoff_is_exponential_capped_and_jittered():
    waits = [backoff_delay(a, 0.5, 3.0, u=1.0) for a in range(6)]
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    jittered = [backoff_delay(2, 0.5, 3.0) for _ in range(200)]
    assert min(jittered) >= 1.0 and max(jittered) <= 2.0 and len(set(jittered)) > 100
    assert backoff_delay(0, 0.5, 3.0, u=1.0, retry_after=2.0) == 2.0
    assert backoff_delay(0, 0.5, 3.0, u=1.0, retry_after=60.0) == 3.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_transformers_serve_integration(tmp_path):
    """Evaluate a handful of samples through `transformers serve` running the embedded model."""
    import shutil
    import subprocess
    import urllib.request

    from sgvalues.models.embedded import embedded_model_dir

    exe = shutil.which("transformers") or str(Path(sys.executable).parent / "transformers")
    if not Path(exe).exists():
        pytest.skip("the transformers CLI is not installed")
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    model_dir = str(embedded_model_dir())
    proc = subprocess.Popen([exe, "serve", model_dir, "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "serve.log", "wb"))
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail("transformers serve did not start:\n" + (tmp_path / "serve.log").read_text()[-2000:])
            time.sleep(0.5)
        spec = ModelSpec(backend="openai", name=model_dir, base_url=f"http://127.0.0.1:{port}/v1",
                         api_key_env="SGV_UNSET_KEY", timeout_s=120.0, max_retries=1, max_concurrency=2,
                         backoff_base_s=0.1)
        samples = [_sample(i, "ok") for i in range(3)]
        for s in samples:  # no fault markers here: plain questions
            s["user_persona"] = "You are a man living in Singapore."
        model = load_model(spec)
        df = evaluate_samples(samples, model, mode="logprob")
        assert len(df) == 3 and set(df["status"]) <= {"ok", "refused", "unparseable"}
        assert (df["status"] != "failed").all(), df["raw_output"].tolist()
        assert df["model"].iloc[0].startswith("openai:")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
