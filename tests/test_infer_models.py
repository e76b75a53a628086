"""`vlmkit infer` end to end on tiny models of every family: infer -> score, batching, resume."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from model_helpers import letters_dataset, predictions, read_jsonl, vlmkit, vlmkit_process

from vlmkit.models.families import FAMILIES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """`tiny(family)`: the folder of a tiny model of that family, built once per session."""
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            result = vlmkit("tiny-model", root / family, "--family", family)
            assert result.exit_code == 0, result.output
            built[family] = root / family
        return built[family]

    return get


@pytest.fixture(scope="session")
def letters(tmp_path_factory) -> Path:
    return letters_dataset(tmp_path_factory.mktemp("data") / "letters", n=6)


@pytest.fixture(scope="session")
def many_letters(tmp_path_factory) -> Path:
    """Enough samples that a run is still going when a test interrupts it."""
    return letters_dataset(tmp_path_factory.mktemp("data") / "letters", n=40)


def _infer(dataset: Path, model: Path, out: Path, *extra: str | Path):
    return vlmkit("infer", dataset, "--model", model, "-o", out, "--max-new-tokens", "6", *extra)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_infer_then_score_with_every_family(tiny, letters, tmp_path, family):
    out = tmp_path / "preds.jsonl"
    result = _infer(letters, tiny(family), out, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    lines = read_jsonl(out)
    assert [line["id"] for line in lines] == [
        r["id"] for r in read_jsonl(letters / "metadata.jsonl")
    ]
    for line in lines:
        assert "error" not in line, line
        assert isinstance(line["prediction"], str)
        assert 0 <= line["new_tokens"] <= 6 and line["latency_s"] >= 0
        # The prompt never leaks into the answer.
        assert "circled" not in line["prediction"]
    run = json.loads((tmp_path / "preds.run.json").read_text("utf-8"))
    assert run["status"] == "complete"
    assert run["model"]["family"] == family
    assert run["model"]["prompt_format"]["style"] == FAMILIES[family].prompt_style
    assert run["generation"]["do_sample"] is False
    assert run["versions"]["transformers"] and run["counts"]["answered"] == 6
    scored = vlmkit("score", out, letters, "--json", tmp_path / "scores.json")
    assert scored.exit_code == 0, scored.output


@pytest.mark.parametrize("family", list(FAMILIES))
def test_batched_equals_one_at_a_time(tiny, letters, tmp_path, family):
    one, batched = tmp_path / "one.jsonl", tmp_path / "batched.jsonl"
    assert _infer(letters, tiny(family), one, "--batch-size", "1").exit_code == 0
    assert _infer(letters, tiny(family), batched, "--batch-size", "6").exit_code == 0
    assert predictions(batched) == predictions(one)


def test_a_rerun_of_a_finished_run_does_nothing(tiny, letters, tmp_path):
    out = tmp_path / "preds.jsonl"
    assert _infer(letters, tiny("paligemma"), out).exit_code == 0
    before = (out.read_bytes(), out.stat().st_mtime_ns)
    result = _infer(letters, tiny("paligemma"), out)
    assert result.exit_code == 0
    assert "nothing to do" in result.stderr
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before


def test_limit_then_more_extends_the_same_file(tiny, letters, tmp_path):
    out, whole = tmp_path / "preds.jsonl", tmp_path / "whole.jsonl"
    assert _infer(letters, tiny("idefics3"), out, "--limit", "2").exit_code == 0
    assert len(read_jsonl(out)) == 2
    result = _infer(letters, tiny("idefics3"), out)
    assert result.exit_code == 0 and "2 of 6 samples already answered" in result.stderr
    assert _infer(letters, tiny("idefics3"), whole).exit_code == 0
    assert predictions(out) == predictions(whole)


def test_a_changed_configuration_is_refused_unless_overwrite(tiny, letters, tmp_path):
    out = tmp_path / "preds.jsonl"
    assert _infer(letters, tiny("paligemma"), out, "--limit", "2").exit_code == 0
    result = vlmkit(
        "infer", letters, "--model", tiny("paligemma"), "-o", out, "--max-new-tokens", "3"
    )
    assert result.exit_code == 2
    assert "another configuration" in result.stderr and "max_new_tokens" in result.stderr
    result = vlmkit(
        "infer",
        letters,
        "--model",
        tiny("paligemma"),
        "-o",
        out,
        "--max-new-tokens",
        "3",
        "--overwrite",
    )
    assert result.exit_code == 0, result.output
    assert len(read_jsonl(out)) == 6


def test_shards_concatenate_into_the_whole_run(tiny, letters, tmp_path):
    model = tiny("qwen2-vl")
    assert _infer(letters, model, tmp_path / "whole.jsonl").exit_code == 0
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"part{k}.jsonl"
        assert _infer(letters, model, part, "--shard", f"{k}/3").exit_code == 0
        parts += predictions(part)
    assert sorted(parts) == sorted(predictions(tmp_path / "whole.jsonl"))


def test_a_bad_image_is_recorded_and_retried(tiny, letters, tmp_path):
    data = tmp_path / "letters"
    shutil.copytree(letters, data)
    victim = read_jsonl(data / "metadata.jsonl")[2]
    image = data / victim["file_name"]
    good = image.read_bytes()
    image.write_bytes(b"not a png")
    out = tmp_path / "preds.jsonl"
    result = _infer(data, tiny("gemma3"), out, "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "1 samples failed" in result.stderr and "--retry-errors" in result.stderr
    failed = [line for line in read_jsonl(out) if "error" in line]
    assert [line["id"] for line in failed] == [victim["id"]]
    assert "is not an image Pillow can read" in failed[0]["error"]
    image.write_bytes(good)
    result = _infer(data, tiny("gemma3"), out, "--retry-errors")
    assert result.exit_code == 0, result.output
    assert "5 of 6 samples already answered" in result.stderr
    lines = read_jsonl(out)
    assert len(lines) == 6 and not any("error" in line for line in lines)
    assert [line["id"] for line in lines] == [r["id"] for r in read_jsonl(data / "metadata.jsonl")]


def test_prompts_too_long_for_the_model_fail_each_sample_and_the_run(tiny, letters, tmp_path):
    out = tmp_path / "preds.jsonl"
    result = vlmkit(
        "infer", letters, "--model", tiny("llava"), "-o", out, "--max-new-tokens", "1000000"
    )
    assert result.exit_code == 1
    assert "every one of the 6 samples answered failed" in result.stderr
    assert all("exceeds the model's context" in line["error"] for line in read_jsonl(out))


def _wait_for_lines(process, partial: Path, lines: int) -> Path:
    """Wait until the running `process` has written `lines` lines to `partial`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be interrupted"
    return partial


def test_kill_mid_run_then_resume_gives_the_uninterrupted_file(tiny, many_letters, tmp_path):
    letters = many_letters
    model = tiny("paligemma2")
    whole, out = tmp_path / "whole.jsonl", tmp_path / "preds.jsonl"
    assert _infer(letters, model, whole, "--batch-size", "1").exit_code == 0
    args = (
        "infer",
        letters,
        "--model",
        model,
        "-o",
        out,
        "--max-new-tokens",
        "6",
        "--batch-size",
        "1",
    )
    process = vlmkit_process(*args)
    partial = _wait_for_lines(process, Path(f"{out}.partial"), 2)
    process.kill()
    process.communicate()
    assert not out.exists()
    # A kill can land mid-write: make sure the repair of a torn line is exercised as well.
    with open(partial, "ab") as handle:
        handle.write(b'{"id": "torn')
    resumed = vlmkit(*args)
    assert resumed.exit_code == 0, resumed.output
    assert "already answered" in resumed.stderr
    assert predictions(out) == predictions(whole)


def test_ctrl_c_finishes_the_batch_and_says_how_to_resume(tiny, many_letters, tmp_path):
    letters = many_letters
    out = tmp_path / "preds.jsonl"
    args = (
        "infer",
        letters,
        "--model",
        tiny("mllama"),
        "-o",
        out,
        "--max-new-tokens",
        "6",
        "--batch-size",
        "1",
    )
    process = vlmkit_process(*args)
    partial = _wait_for_lines(process, Path(f"{out}.partial"), 1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Rerun the same command to resume" in stderr
    header, *written = read_jsonl(partial)
    assert header["vlmkit_partial_run"]["generation"]["max_new_tokens"] == 6
    assert 1 <= len(written) < 40 and all(line["prediction"] is not None for line in written)
    run = json.loads((tmp_path / "preds.run.json").read_text("utf-8"))
    assert run["status"] == "interrupted"
    assert vlmkit(*args).exit_code == 0
    assert len(read_jsonl(out)) == 40


def test_a_batch_out_of_gpu_memory_is_split_and_retried(tiny, letters):
    """Fault injection: CUDA cannot run here, so generate() raises CUDA's OOM error itself."""
    import torch

    from vlmkit.infer.backends.hf_transformers import TransformersBackend
    from vlmkit.infer.selection import select_samples
    from vlmkit.infer.settings import GenerationSettings, RunOptions
    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source

    loaded = load_model(resolve_source(str(tiny("llava")), None), LoadOptions())
    samples = select_samples(letters, None, RunOptions()).samples
    settings = GenerationSettings(max_new_tokens=6)
    alone = [TransformersBackend(loaded, settings).predict([sample])[0] for sample in samples]
    real, sizes = loaded.model.generate, []

    def generate(**kwargs):
        sizes.append(len(kwargs["input_ids"]))
        if sizes[-1] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(**kwargs)

    loaded.model.generate = generate
    records = TransformersBackend(loaded, settings).predict(samples)
    assert sizes == [6, 3, 1, 2, 3, 1, 2]
    assert records == [
        type(r)(
            r.id,
            r.prediction,
            latency_s=records[i].latency_s,
            new_tokens=r.new_tokens,
            truncated=r.truncated,
        )
        for i, r in enumerate(alone)
    ]


def test_sampling_is_asked_for_and_seeded(tiny, letters, tmp_path):
    model = tiny("qwen2.5-vl")
    runs = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        out = tmp_path / f"{name}.jsonl"
        result = _infer(letters, model, out, "--sample", "--temperature", "5", "--seed", seed,
                        "--prompt", "Read the letter.")  # fmt: skip
        assert result.exit_code == 0, result.output
        runs.append(predictions(out))
    assert runs[0] == runs[1] != runs[2]
    run = json.loads((tmp_path / "a.run.json").read_text("utf-8"))
    assert run["generation"]["do_sample"] is True and run["key"]["prompt"] == "Read the letter."


def test_overwrite_and_a_smaller_limit_never_keep_another_runs_lines(tiny, letters, tmp_path):
    model, out = tiny("paligemma"), tmp_path / "preds.jsonl"
    assert _infer(letters, model, out, "--limit", "4").exit_code == 0
    assert _infer(letters, model, out, "--limit", "2").exit_code == 0
    assert len(read_jsonl(out)) == 2  # what an uninterrupted --limit 2 run writes
    result = vlmkit("infer", letters, "--model", model, "-o", out, "--limit", "3",
                    "--max-new-tokens", "2", "--overwrite")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(line["new_tokens"] <= 2 for line in read_jsonl(out))
    assert len(read_jsonl(out)) == 3


def test_an_empty_shard_writes_an_empty_file(tiny, letters, tmp_path):
    out = tmp_path / "preds.jsonl"
    result = _infer(letters, tiny("paligemma"), out, "--limit", "2", "--shard", "3/4")
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b""


@pytest.mark.parametrize("family", list(FAMILIES))
def test_prompts_start_with_exactly_one_bos(tiny, letters, family):
    """Chat templates that write BOS must not get a second; LLaVA's leaves it to the tokenizer."""
    from vlmkit.infer.backends.hf_transformers import TransformersBackend
    from vlmkit.infer.selection import select_samples
    from vlmkit.infer.settings import GenerationSettings, RunOptions
    from vlmkit.models.loading import load_model
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import resolve_source

    loaded = load_model(resolve_source(str(tiny(family)), None), LoadOptions())
    predictor = TransformersBackend(loaded, GenerationSettings())
    sample = select_samples(letters, None, RunOptions(limit=1)).samples[0]
    from vlmkit.images import open_rgb
    from vlmkit.infer.backends.base import Prepared

    prepared = Prepared(sample, predictor.request(sample, open_rgb(sample.image)))
    ids = predictor._encode([prepared])["input_ids"][0].tolist()
    bos = loaded.processor.tokenizer.bos_token_id
    if bos is None:  # Qwen's tokenizer has none, as on the hub
        return
    assert ids.count(bos) == 1
    if family not in ("paligemma", "paligemma2"):  # PaliGemma: image tokens, then <bos>
        assert ids[0] == bos


@pytest.mark.parametrize("family", list(FAMILIES))
def test_vllm_is_given_the_tokens_transformers_and_training_use(tiny, letters, family):
    """vLLM tokenizes a text prompt adding special tokens: the request must come to the same
    ids as `--backend transformers` (Idefics3's template starts with `<|im_start|>`, which no
    tokenizer adds back; others write a BOS the tokenizer would double). Runs without vLLM."""
    from vlmkit.infer.backends.vllm_engine import prompt_request
    from vlmkit.models.loading import load_processor
    from vlmkit.models.options import LoadOptions
    from vlmkit.models.sources import model_family, resolve_source
    from vlmkit.prompts import adds_special_tokens, format_prompt

    source = resolve_source(str(tiny(family)), None)
    kind = model_family(source.config, source.model)
    if kind.prompt_style == "prefix":  # PaliGemma: vLLM completes the prefix prompt itself
        return
    processor = load_processor(source, kind, LoadOptions())
    tokenizer = processor.tokenizer
    text = format_prompt(processor, kind, "Which letter is circled?")
    wanted = tokenizer(text, add_special_tokens=adds_special_tokens(processor, text)).input_ids
    request = prompt_request(processor, kind, "Which letter is circled?", image=None)
    sent = request.get("prompt_token_ids") or tokenizer(request["prompt"]).input_ids
    assert sent == wanted


def test_vllm_lora_rank_rounds_up_to_one_it_accepts(tmp_path):
    from vlmkit.errors import UsageError
    from vlmkit.infer.backends.vllm_engine import lora_rank_for

    for rank, accepted in ((4, 8), (8, 8), (12, 16), (48, 64), (300, 320), (512, 512)):
        (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank}))
        assert lora_rank_for(tmp_path) == accepted
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(UsageError, match="vLLM serves ranks up to 512"):
        lora_rank_for(tmp_path)


def test_vllm_records_the_dtype_it_used_not_auto():
    """What `--dtype auto` became in vLLM's model config (a torch dtype) is what the run records."""
    import types

    import torch

    from vlmkit.infer.backends.vllm_engine import used_dtype

    engine = types.SimpleNamespace(model_config=types.SimpleNamespace(dtype=torch.bfloat16))
    assert used_dtype(types.SimpleNamespace(llm_engine=engine)) == "bfloat16"


def test_an_overwrite_killed_early_never_passes_old_lines_off_as_new(tiny, letters, tmp_path):
    model, out = tiny("paligemma"), tmp_path / "preds.jsonl"
    assert _infer(letters, model, out, "--limit", "3").exit_code == 0
    process = vlmkit_process("infer", letters, "--model", model, "-o", out, "--limit", "3",
                             "--max-new-tokens", "2", "--overwrite")  # fmt: skip
    time.sleep(1.0)  # still importing or loading: nothing of the new run is written yet
    process.kill()
    process.communicate()
    again = vlmkit("infer", letters, "--model", model, "-o", out, "--limit", "3",
                   "--max-new-tokens", "2")  # fmt: skip
    assert again.exit_code == 2 and "another configuration" in again.stderr


def test_ctrl_c_of_an_overwrite_keeps_the_finished_file_and_its_record(
    tiny, many_letters, tmp_path
):
    model, out = tiny("paligemma"), tmp_path / "preds.jsonl"
    original = ("infer", many_letters, "--model", model, "-o", out, "--max-new-tokens", "6")
    assert vlmkit(*original).exit_code == 0
    sidecar = tmp_path / "preds.run.json"
    before = (out.read_bytes(), sidecar.read_bytes())
    process = vlmkit_process(*original, "--prompt", "What?", "--overwrite", "--batch-size", "1")
    _wait_for_lines(process, Path(f"{out}.partial"), 2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert (out.read_bytes(), sidecar.read_bytes()) == before
    Path(f"{out}.partial").unlink()  # what the hint of the next run offers
    again = vlmkit(*original)
    assert again.exit_code == 0 and "nothing to do" in again.stderr
