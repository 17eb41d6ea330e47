"""Tests for sgvalues.train: label masking, the loss, stratified selection, length grouping,
checkpoint/resume equivalence and the saved adapter."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

from sgvalues import train as T
from sgvalues.params import Params
from sgvalues.split import SAMPLE_KEYS


def make_sample(q: int, group: str, target: int, n_options: int = 4) -> dict:
    """A sample with every contract key; prompt text shaped like the real ones, kept short."""
    options = {str(k): f"opt {k}" for k in range(1, n_options + 1)}
    return {
        "sample_id": f"Q{q}_{group}", "split": "train", "question_id": f"Q{q}", "theme": "T",
        "stratum": "sex", "subgroup": group, "levels": {"sex": group.split(":")[-1]},
        "target": target, "scale_min": 1, "scale_max": n_options, "options": options,
        "distribution": {str(target): 1.0}, "n_valid": 40,
        "system": "Answer with the option code only.",
        "user_shared": f"Q{q}? " + " ".join(f"{k}={v}" for k, v in options.items()) + "\n",
        "user_persona": f"You are {group}.", "open_user": "Explain.",
    }


def write_run(tmp_path, samples) -> "Path":
    data = tmp_path / "data"
    data.mkdir(parents=True)
    with (data / "samples_train.jsonl").open("w") as f:
        for s in samples:
            assert set(SAMPLE_KEYS) <= set(s)
            f.write(json.dumps(s) + "\n")
    return tmp_path


def tiny_params(**training) -> Params:
    base = {"lora_r": 2, "lora_alpha": 4, "lora_dropout": 0.1, "lr": 1e-2, "batch_size": 2,
            "grad_accum": 2, "save_every": 2, "max_steps": 4, "warmup_ratio": 0.25}
    base.update(training)
    return Params.from_dict({"name": "tiny", "seed": 3, "training": base})


TINY_SAMPLES = [make_sample(q, g, t, n)
                for q, (t, n) in enumerate([(1, 2), (3, 4), (2, 3), (10, 10), (4, 5)])
                for g in ("sex:Male", "sex:Female")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny batches here gain nothing from a second thread, and on a busy machine OpenMP's
    spin-waiting makes two threads several times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return T.build_model(tiny_params())


# ----------------------------------------------------------------------------- pure parts


def test_select_samples_is_stratified_and_seeded():
    samples = [{"sample_id": f"Q{q}_{g}", "question_id": f"Q{q}", "subgroup": g}
               for q in range(12) for g in "abcdefg"]
    picked = T.select_samples(samples, 30, seed=5)
    assert len(picked) == 30 == len({s["sample_id"] for s in picked})
    by_group = Counter(s["subgroup"] for s in picked)
    by_question = Counter(s["question_id"] for s in picked)
    # 30 over 7 subgroups -> 4 or 5 each; over 12 questions -> 2 or 3 each
    assert sorted(set(by_group.values())) == [4, 5] and len(by_group) == 7
    assert sorted(set(by_question.values())) == [2, 3] and len(by_question) == 12
    assert picked == T.select_samples(samples, 30, seed=5)
    assert picked != T.select_samples(samples, 30, seed=6)
    order = [samples.index(s) for s in picked]
    assert order == sorted(order)  # original order kept
    assert T.select_samples(samples, None, seed=0) == samples
    with pytest.raises(T.TrainError, match="missing key 'subgroup'"):
        T.select_samples([{"sample_id": "x", "question_id": "Q1"}] * 3, 1, seed=0)


def test_length_grouping_pads_each_batch_to_its_own_max_only():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 300, size=400).tolist()
    batches = T.length_grouped_batches(lengths, batch_size=8, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(400))
    examples = [T.EncodedExample(str(i), (1,) * n, (T.IGNORE_INDEX,) * (n - 1) + (1,))
                for i, n in enumerate(lengths)]
    grouped_pad = 0
    for b in batches:
        batch = T.collate([examples[i] for i in b], pad_id=0)
        assert batch["input_ids"].shape[1] == max(lengths[i] for i in b)
        assert int(batch["attention_mask"].sum()) == sum(lengths[i] for i in b)
        grouped_pad += batch["input_ids"].numel() - sum(lengths[i] for i in b)
    # the same batch size in random order pads far more
    perm = rng.permutation(400)
    random_pad = sum(8 * max(lengths[i] for i in perm[k:k + 8]) - sum(lengths[i] for i in perm[k:k + 8])
                     for k in range(0, 400, 8))
    assert grouped_pad < 0.1 * random_pad
    assert T.length_grouped_batches(lengths, 8, seed=1) == batches


# ----------------------------------------------------------------------------- with the model


@pytest.mark.slow
def test_labels_mask_everything_but_code_and_end_of_turn(model_and_tokenizer):
    _, tok = model_and_tokenizer
    sample = make_sample(3, "sex:Female", 10, n_options=10)
    ex = T.encode_sample(tok, sample)
    messages = [{"role": "system", "content": sample["system"]},
                {"role": "user", "content": sample["user_shared"] + sample["user_persona"]}]
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # by hand: the prompt ids, then "10" and SmolLM2's end-of-turn token
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tok("10", add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert list(ex.input_ids) == p_ids + a_ids
    assert list(ex.labels) == [T.IGNORE_INDEX] * len(p_ids) + a_ids
    assert tok.decode([x for x in ex.labels if x != T.IGNORE_INDEX]) == "10<|im_end|>"
    with pytest.raises(T.TrainError, match="'target'"):
        T.encode_sample(tok, {**sample, "target": "x"})


@pytest.mark.slow
def test_answer_loss_equals_manual_cross_entropy(model_and_tokenizer):
    import torch
    import torch.nn.functional as F

    model, tok = model_and_tokenizer
    examples = [T.encode_sample(tok, s) for s in TINY_SAMPLES[:4:1] + TINY_SAMPLES[6:8]]
    batch = T.collate(examples, tok.pad_token_id)
    model.eval()
    with torch.no_grad():
        loss_sum, n = T.answer_loss(model, batch)
        manual, count = 0.0, 0
        for e in examples:  # each unpadded, full logits, answer positions picked by hand
            logits = model(input_ids=torch.tensor([e.input_ids])).logits[0]
            for t, y in enumerate(e.labels):
                if y != T.IGNORE_INDEX:
                    manual -= F.log_softmax(logits[t - 1], -1)[y].item()
                    count += 1
    assert int(n) == count == sum(e.n_answer for e in examples)
    assert loss_sum.item() == pytest.approx(manual, rel=1e-4)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted tiny run (4 steps, checkpoints every 2)."""
    run = write_run(tmp_path_factory.mktemp("full"), TINY_SAMPLES)
    T.train_run(tiny_params(), run, verbose=False)
    return run


@pytest.mark.slow
def test_resume_after_crash_ends_where_uninterrupted_run_does(tmp_path, full_run):
    import torch
    from safetensors.torch import load_file

    params = tiny_params()
    crashed = write_run(tmp_path / "crashed", TINY_SAMPLES)

    def crash(row):
        if row["step"] == 3:  # checkpoint at step 2; step 3 is lost and redone
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        T.train_run(params, crashed, on_step=crash, verbose=False)
    assert [p.name for p in T._checkpoints(crashed / "checkpoints")] == ["step-00000002"]
    assert not (crashed / "adapter").exists()
    T.train_run(params, crashed, verbose=False)

    a = load_file(full_run / "adapter" / "adapter_model.safetensors")
    b = load_file(crashed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    log_a, log_b = T.read_train_log(full_run), T.read_train_log(crashed)
    assert log_a["step"].tolist() == log_b["step"].tolist() == list(range(1, 5))
    np.testing.assert_allclose(log_a["loss"], log_b["loss"], rtol=1e-4)
    np.testing.assert_allclose(log_a["lr"], log_b["lr"])
    assert log_a["tokens"].tolist() == log_b["tokens"].tolist()
    summary = json.loads((crashed / "train_summary.json").read_text())
    assert summary["resumed_from"] == "step-00000002" and summary["n_steps"] == 4
    assert not (crashed / "checkpoints").exists()
    # the same inputs again: nothing is retrained
    mtime = (full_run / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    T.train_run(params, full_run, verbose=False)
    assert (full_run / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_adapter_loads_back_with_peft_and_changes_logits(full_run, model_and_tokenizer):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    log = T.read_train_log(full_run)
    assert list(log.columns) == list(T.LOG_COLUMNS) and len(log) == 4
    assert (log["tokens"].diff().dropna() > 0).all() and (log["elapsed"].diff().dropna() >= 0).all()

    params = tiny_params()
    base = AutoModelForCausalLM.from_pretrained(T.resolve_model_path(params.model.name),
                                                dtype=torch.float32).eval()
    _, tok = model_and_tokenizer
    ex = T.encode_sample(tok, TINY_SAMPLES[3])
    n_prompt = len(ex) - ex.n_answer
    ids = torch.tensor([ex.input_ids[:n_prompt]])
    with torch.no_grad():
        before = base(input_ids=ids).logits[0, -1].clone()
        tuned = PeftModel.from_pretrained(base, full_run / "adapter").eval()
        after = tuned(input_ids=ids).logits[0, -1]
    assert (after - before).abs().max() > 1e-2
    target = ex.input_ids[n_prompt]  # the trained code's first token gains probability
    assert after.log_softmax(-1)[target] > before.log_softmax(-1)[target]


def test_cli_parser_and_clear_error_for_missing_survey_file(tmp_path, capsys):
    import argparse

    params_file = tmp_path / "p.yaml"
    params_file.write_text("name: x\ndata:\n  wvs_file: /nonexistent/wvs.csv\ntraining:\n  max_steps: 1\n")
    parser = argparse.ArgumentParser()
    T.configure_parser(parser)
    args = parser.parse_args(["--params", str(params_file), "--run-dir", str(tmp_path / "run")])
    assert T.main(args) == 2
    assert "/nonexistent/wvs.csv" in capsys.readouterr().err


def test_recipe_table_lists_ours_beside_published():
    params = dataclasses.replace(tiny_params(), training=dataclasses.replace(tiny_params().training, lr=3e-4))
    table = T.recipe_table(params, {"lr": 1e-6, "epochs": 1})
    row = table.set_index("setting").loc["learning rate"]
    assert row["ours"] == "0.0003" and row["published"] == "1e-06"
