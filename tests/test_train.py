"""Tests for sgvalues.train: label masking, the loss, stratified selection, length grouping,
checkpoint/resume equivalence, the saved adapter, and training reading (never preparing) the run's data."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from sgvalues import train as T
from sgvalues.params import Params
from sgvalues.split import SAMPLE_KEYS
from sgvalues.train.loop import _checkpoints, _schedule
from factories import params_error


def make_sample(q: int, group: str, target: int, n_options: int = 4) -> dict:
    """A sample with every contract key; prompt text shaped like the real ones, kept short."""
    options = {str(k): f"opt {k}" for k in range(1, n_options + 1)}
    return {
        "sample_id": f"Q{q}_{group}", "split": "train", "question_id": f"Q{q}", "theme": "T", "wording": f"Q{q}?",
        "stratum": "sex", "subgroup": group, "levels": {"sex": group.split(":")[-1]},
        "target": target, "targets": [target], "scale_min": 1, "scale_max": n_options, "options": options,
        "distribution": {str(target): 1.0}, "n_valid": 40,
        "system": "Answer with the option code only.",
        "user_shared": f"Q{q}? " + " ".join(f"{k}={v}" for k, v in options.items()) + "\n",
        "user_persona": f"You are {group}.", "open_user": "Explain.",
    }


def write_run(tmp_path, samples) -> Path:
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


def _theme_grid(n_themes=(5, 3, 2, 1), groups="abcd"):
    """Samples of questions T<t>_<k> in themes of the given sizes, every subgroup each."""
    out = []
    for t, size in enumerate(n_themes):
        for k in range(size):
            for g in groups:
                out.append({"sample_id": f"T{t}_{k}_{g}", "question_id": f"T{t}_{k}",
                            "theme": f"theme {t}", "subgroup": g})
    return out


def test_select_questions_is_stratified_by_theme_and_seeded():
    samples = _theme_grid()
    themes = {s["question_id"]: s["theme"] for s in samples}
    # 4 questions over 4 themes: one from each
    q4 = T.select_questions(samples, 4, seed=1)
    assert len(q4) == 4 and len({themes[q] for q in q4}) == 4
    # 7 questions: round robin gives 2 from each theme with >= 2 questions, then the single one
    q7 = T.select_questions(samples, 7, seed=1)
    counts = Counter(themes[q] for q in q7)
    assert counts == Counter({"theme 0": 2, "theme 1": 2, "theme 2": 2, "theme 3": 1})
    # 9: theme 2 and 3 run out, the rest goes to the themes that still have questions
    q9 = Counter(themes[q] for q in T.select_questions(samples, 9, seed=1))
    assert q9["theme 2"] == 2 and q9["theme 3"] == 1 and q9["theme 0"] + q9["theme 1"] == 6
    assert max(q9["theme 0"], q9["theme 1"]) - min(q9["theme 0"], q9["theme 1"]) <= 1
    # deterministic, independent of the input order; other seeds pick other questions
    assert q7 == T.select_questions(list(reversed(samples)), 7, seed=1) == sorted(q7)
    assert len({tuple(T.select_questions(samples, 3, seed=s)) for s in range(8)}) > 1
    assert T.select_questions(samples, 99, seed=0) == sorted(themes)
    with pytest.raises(T.TrainError, match="missing key 'theme'"):
        T.select_questions([{"sample_id": "x", "question_id": "Q1"}], 1, seed=0)
    with pytest.raises(T.TrainError, match="training.questions = 0"):
        T.select_questions(samples, 0, seed=0)


def test_load_train_samples_keeps_every_subgroup_of_the_chosen_questions(tmp_path):
    samples = [{**make_sample(q, g, 1), "theme": f"theme {q % 3}"}
               for q in range(9) for g in ("sex:Male", "sex:Female", "age:Young")]
    run = write_run(tmp_path, samples)
    params = tiny_params(questions=3, max_samples=None)
    chosen = T.training_questions(params, run)
    assert chosen == T.select_questions(samples, 3, params.seed)
    assert len({samples[3 * int(q[1:])]["theme"] for q in chosen}) == 3  # one per theme
    got = T.load_train_samples(params, run)
    want = [s for s in samples if s["question_id"] in chosen]  # by hand: all subgroups, in order
    assert got == want and len(got) == 9
    unseen = T.unseen_questions(params, run, 3)
    assert len(unseen) == 3 and not set(unseen) & set(chosen)
    assert T.training_questions(tiny_params(), run) is None
    assert len(T.load_train_samples(tiny_params(max_samples=None), run)) == len(samples)
    # max_samples thins what the question filter leaves
    assert len(T.load_train_samples(tiny_params(questions=3, max_samples=4), run)) == 4
    with pytest.raises(ValueError, match="training.questions = 0"):
        tiny_params(questions=0)


def test_training_reads_the_prepared_data_and_never_prepares_it(tmp_path):
    """Data flow one way: a run folder without samples is an error naming the file and the
    commands that write it, and nothing is prepared (or written) behind the caller's back."""
    run = tmp_path / "fresh"
    want = r"fresh/data/samples_train\.jsonl: no prepared samples; .*`sgvalues prepare --wvs FILE --out .*notebooks 01-03"
    with pytest.raises(T.TrainError, match=want):
        T.train_run(tiny_params(), run, verbose=False)
    with pytest.raises(T.TrainError, match=want):
        T.training_questions(tiny_params(questions=2), run)
    with pytest.raises(T.TrainError, match=r"samples_ood\.jsonl: no prepared samples"):
        T.evaluate_questions(tiny_params(), run, "ood", "base", None, log=None)
    assert not run.exists()


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


@pytest.mark.slow
def test_shared_prefix_loss_and_gradients_equal_unshared(model_and_tokenizer):
    model, tok = model_and_tokenizer
    # one question's subgroups: personas of different lengths, a two-token code ("10")
    group = [make_sample(7, g, t, n_options=10) for g, t in
             (("sex:Male", 3), ("age:Young adults aged 18 to 34", 10), ("edu:Tertiary", 1))]
    examples = [T.encode_sample(tok, s) for s in group]
    model.eval()  # no dropout, so both computations see the same function
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    def run(loss_fn, batch):
        model.zero_grad(set_to_none=True)
        loss_sum, n = loss_fn(model, batch)
        loss_sum.backward()
        return loss_sum.item(), int(n), {name: p.grad.clone() for name, p in trainable}

    shared = T.collate_shared(examples, tok.pad_token_id)
    assert shared["prefix_ids"].shape[1] > 20  # the question's prompt really is shared
    ref_loss, ref_n, ref_grads = run(T.answer_loss, T.collate(examples, tok.pad_token_id))
    loss, n, grads = run(T.shared_prefix_loss, shared)
    model.zero_grad(set_to_none=True)
    assert n == ref_n == sum(e.n_answer for e in examples)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    # LoRA B starts at zero, so only B's gradients are non-zero at init; they include the
    # k/v projections, whose gradient comes through the prefix cache
    assert any(("k_proj" in k or "v_proj" in k) and g.abs().max() > 0 for k, g in ref_grads.items())
    for name, ref in ref_grads.items():
        # fp32 sums in a different order: compare each tensor by its relative error norm
        err = float((grads[name] - ref).norm() / ref.norm().clamp(min=1e-12))
        assert err < 1e-4 or float(ref.abs().max()) == float(grads[name].abs().max()) == 0.0, name


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
    assert [p.name for p in _checkpoints(crashed / "checkpoints")] == ["step-00000002"]
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
def test_share_prefix_training_batches_by_question_and_logs_the_base_loss(tmp_path, model_and_tokenizer):
    import torch

    params = tiny_params(share_prefix=True, lora_dropout=0.0, max_steps=2, save_every=0)
    run = write_run(tmp_path, TINY_SAMPLES)
    T.train_run(params, run, verbose=False)
    log = T.read_train_log(run)
    assert log["step"].tolist() == [1, 2]
    # step 1: LoRA B starts at zero, so its loss is the base model's mean answer cross-entropy
    # on the first two micro-batches, computed here unshared on the schedule's batches
    _, tok = model_and_tokenizer
    examples = [T.encode_sample(tok, s) for s in TINY_SAMPLES]
    questions = [s["question_id"] for s in TINY_SAMPLES]
    order, _ = _schedule(4, 5, params.training.batch_size, [len(e) for e in examples],
                         params.seed, questions)
    assert all(len({questions[i] for i in b}) == 1 for b in order)
    base = model_and_tokenizer[0].eval()  # fresh LoRA (B = 0, never stepped): the base model
    with torch.no_grad():
        parts = [T.answer_loss(base, T.collate([examples[i] for i in b], tok.pad_token_id))
                 for b in order[:2]]
    want = sum(float(loss) for loss, _ in parts) / sum(int(n) for _, n in parts)
    assert log["loss"].iloc[0] == pytest.approx(want, rel=1e-4)
    # the shared prefix counts once: fewer tokens than the two batches' full rows
    full = sum(len(examples[i]) for b in order[:2] for i in b)
    assert log["tokens"].iloc[0] < full
    # ...while the summary's sample_tokens counts every sample seen at its own full length
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["sample_tokens"] == sum(len(examples[i]) for b in order for i in b)
    assert summary["tokens"] < summary["sample_tokens"]
    assert (run / "adapter" / "adapter_config.json").is_file()


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


@pytest.mark.slow
def test_evaluation_engine_scores_what_training_trains(full_run):
    """The engine (hf backend, adapter merged) reads the same prompt tokens and code tokens that
    training puts loss on: its option probabilities equal the unmerged peft model's next-token
    probabilities after ``encode_sample``'s prompt, renormalised over the option codes."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sgvalues.evaluate import sample_request
    from sgvalues.models.hf import HFModel

    params = tiny_params()
    engine = HFModel(params.model, adapter=full_run / "adapter")
    tok = engine.tokenizer
    base = AutoModelForCausalLM.from_pretrained(T.resolve_model_path(params.model.name),
                                                dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, full_run / "adapter").eval()
    for sample in (TINY_SAMPLES[1], TINY_SAMPLES[4], TINY_SAMPLES[9]):
        ex = T.encode_sample(tok, sample)
        n_prompt = len(ex) - ex.n_answer
        request = sample_request(sample)
        assert engine.prompt_ids(request.messages) == list(ex.input_ids[:n_prompt])
        code_ids = {c: tok(c, add_special_tokens=False)["input_ids"] for c in request.option_codes}
        assert ex.input_ids[n_prompt] == code_ids[str(sample["target"])][0]
        with torch.no_grad():
            lp = tuned(input_ids=torch.tensor([ex.input_ids[:n_prompt]])).logits[0, -1].log_softmax(-1)
        raw = {c: float(lp[ids[0]].exp()) for c, ids in code_ids.items()}
        want = {c: v / sum(raw.values()) for c, v in raw.items()}
        got = engine.score_answers([request])[0].probs
        assert got.keys() == want.keys()
        for c in want:
            assert got[c] == pytest.approx(want[c], abs=1e-4)
    engine.close()


def test_cli_parser_and_clear_error_for_missing_survey_file(tmp_path, capsys):
    import argparse

    params_file = tmp_path / "p.yaml"
    params_file.write_text("name: x\ndata:\n  wvs_file: /nonexistent/wvs.csv\ntraining:\n  max_steps: 1\n")
    parser = argparse.ArgumentParser()
    T.configure_parser(parser)
    args = parser.parse_args(["--params", str(params_file), "--run-dir", str(tmp_path / "run")])
    assert T.main(args) == 2
    assert "/nonexistent/wvs.csv" in capsys.readouterr().err


def test_package_runs_as_a_module_for_accelerate_launch():
    """`accelerate launch -m sgvalues.train ...` runs the package's __main__: the same options as `sgvalues train`."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "sgvalues.train", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--run-dir" in proc.stdout and "--all-seeds" in proc.stdout and "LoRA supervised fine-tuning" in proc.stdout


def test_recipe_table_lists_ours_beside_published():
    params = dataclasses.replace(tiny_params(), training=dataclasses.replace(tiny_params().training, lr=3e-4))
    table = T.recipe_table(params, {"lr": 1e-6, "epochs": 1})
    row = table.set_index("setting").loc["learning rate"]
    assert row["ours"] == "0.0003" and row["published"] == "1e-06"


# ----------------------------------------------------------------------------- training seeds


@pytest.mark.parametrize("seeds,expected", [
    ("[]", "non-empty"),
    ("[1, 2, 1]", "[1] repeated"),
    ("[1, two]", "training.seeds"),
    ("3", "training.seeds"),
])
def test_training_seeds_are_validated_on_load(tmp_path, seeds, expected):
    path, msg = params_error(tmp_path, f"training:\n  seeds: {seeds}\n")
    assert path in msg and "training" in msg and expected in msg


def test_training_seeds_default_to_the_run_seed_and_keep_the_main_adapter_paths(tmp_path):
    assert T.training_seeds(tiny_params()) == [3]  # tiny_params' top-level seed
    params = tiny_params(seeds=[3, 0, 7])
    assert params.training.seeds == (3, 0, 7) and T.training_seeds(params) == [3, 0, 7]
    assert [T.seed_tag(params, s) for s in (3, 0)] == ["sft", "sft-seed0"]
    assert T.seed_dir(params, tmp_path, 3) == tmp_path
    assert T.seed_dir(params, tmp_path, 7) == tmp_path / "adapters" / "seed-7"
    # listing seeds does not invalidate an adapter trained before; the training seed does
    assert T.inputs_fingerprint(params, TINY_SAMPLES) == T.inputs_fingerprint(tiny_params(), TINY_SAMPLES)
    assert T.inputs_fingerprint(params, TINY_SAMPLES, 3) == T.inputs_fingerprint(params, TINY_SAMPLES)
    assert T.inputs_fingerprint(params, TINY_SAMPLES, 7) != T.inputs_fingerprint(params, TINY_SAMPLES)


def test_seed_spread_equals_numpy_on_the_per_seed_rows():
    import pandas as pd

    rng = np.random.default_rng(0)
    t = pd.DataFrame({"seed": [0, 1, 2] * 2, "split": ["ood"] * 3 + ["train"] * 3,
                      **{m: rng.random(6) for m in T.SEED_METRICS}})
    s = T.seed_spread(t).set_index(["split", "metric"])
    for split in ("ood", "train"):
        for m in T.SEED_METRICS:
            v = t.loc[t["split"] == split, m].to_numpy()
            row = s.loc[(split, m)]
            assert row["n_seeds"] == 3
            assert row["mean"] == pytest.approx(np.mean(v))
            assert (row["min"], row["max"]) == (pytest.approx(np.min(v)), pytest.approx(np.max(v)))
            assert row["range"] == pytest.approx(np.ptp(v))


def _seed_run(path):
    ood = [dict(make_sample(q, "sex:Other", t, n), split="ood")
           for q, (t, n) in enumerate([(2, 2), (1, 4), (3, 3), (7, 10), (5, 5)])]
    run = write_run(path, TINY_SAMPLES)
    with (run / "data" / "samples_ood.jsonl").open("w") as f:
        for s in ood:
            f.write(json.dumps(s) + "\n")
    return run


@pytest.mark.slow
def test_train_over_seeds_one_adapter_per_seed_same_seed_same_files(tmp_path):
    import pandas as pd
    from safetensors.torch import load_file

    from sgvalues.evaluate import load_predictions, predictions_path

    params = tiny_params(seeds=[3, 5], max_steps=1, grad_accum=1, save_every=0, share_prefix=True)
    params = dataclasses.replace(params, model=dataclasses.replace(params.model, cpu_threads=1))
    a, b = _seed_run(tmp_path / "a"), _seed_run(tmp_path / "b")
    table = T.train_over_seeds(params, a, splits=("ood",), cache=False)
    adapters = {s: T.seed_dir(params, a, s) / "adapter" / "adapter_model.safetensors" for s in (3, 5)}
    assert adapters[3] == a / "adapter" / "adapter_model.safetensors"  # the main adapter, as ever
    assert all(p.is_file() for p in adapters.values())
    assert (a / "adapters" / "seed-5" / "train_log.csv").is_file()
    # different seeds, different weights
    w3, w5 = (load_file(adapters[s]) for s in (3, 5))
    assert w3.keys() == w5.keys() and any(not (w3[k] == w5[k]).all() for k in w3)
    # seed 5 again, in another run folder: a byte-identical adapter and the same scores
    only5 = dataclasses.replace(params, training=dataclasses.replace(params.training, seeds=(5,)))
    again = T.train_over_seeds(only5, b, splits=("ood",), cache=False)
    rel = adapters[5].relative_to(a)
    assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert not (b / "adapter").exists()  # the run seed was not asked for
    pd.testing.assert_frame_equal(again.reset_index(drop=True),
                                  table[table["seed"] == 5].reset_index(drop=True))
    # one row per (seed, split); scores recomputed here from the predictions files
    t = pd.read_csv(a / "seeds.csv")
    assert list(t.columns) == list(T.SEED_COLUMNS)
    assert list(zip(t["seed"], t["split"], t["tag"])) == [(3, "ood", "sft"), (5, "ood", "sft-seed5")]
    pd.testing.assert_frame_equal(t, table, check_dtype=False)
    for row in t.itertuples():
        for state, tag in (("base", "base"), ("sft", row.tag)):
            df = load_predictions(predictions_path(a, tag, row.split))
            hit = (df["prediction"] == df["target"]).mean()
            nmae = ((df["prediction"] - df["target"]).abs() / (df["scale_max"] - df["scale_min"])).mean()
            assert getattr(row, f"{state}_accuracy") == pytest.approx(hit)
            assert getattr(row, f"{state}_nmae") == pytest.approx(nmae)
        assert row.n == len(df) == 5
        assert row.accuracy_change == pytest.approx(row.sft_accuracy - row.base_accuracy)
        assert row.nmae_change == pytest.approx(row.sft_nmae - row.base_nmae)


@pytest.mark.slow
def test_cli_all_seeds_trains_one_adapter_per_training_seed(tmp_path):
    import argparse

    run = write_run(tmp_path / "run", TINY_SAMPLES)
    params_file = tmp_path / "p.yaml"
    params_file.write_text("name: x\nseed: 3\nmodel:\n  cpu_threads: 1\ntraining:\n  seeds: [3, 8]\n"
                           "  max_steps: 1\n  batch_size: 2\n  lora_r: 2\n  lora_alpha: 4\n  save_every: 0\n")
    parser = argparse.ArgumentParser()
    T.configure_parser(parser)
    assert T.main(parser.parse_args(["--params", str(params_file), "--run-dir", str(run), "--all-seeds"])) == 0
    seeds = {json.loads((d / "train_summary.json").read_text())["seed"] for d in (run, run / "adapters" / "seed-8")}
    assert seeds == {3, 8}
    assert (run / "adapters" / "seed-8" / "adapter" / "adapter_config.json").is_file()
