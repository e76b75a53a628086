"""`vlmkit infer --backend openai` against a real server (`transformers serve` on 127.0.0.1):
the same answers as the local backend, concurrency that changes nothing, kills and resumes,
a server lost mid-run, and each mistake one clear error. Nothing but 127.0.0.1 is reached."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from model_helpers import letters_dataset, predictions, read_jsonl, vlmkit, vlmkit_process
from served_model import Server, free_port

pytestmark = pytest.mark.slow
KEY = "sk-test-never-written-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny Idefics3 served by `transformers serve`, its letters, and the local answers."""
    root = tmp_path_factory.mktemp("served")
    assert vlmkit("tiny-model", root / "idefics3", "--family", "idefics3").exit_code == 0
    letters = letters_dataset(root / "letters", n=8)
    local = root / "local.jsonl"
    result = vlmkit("infer", letters, "--model", root / "idefics3", "-o", local,
                    "--max-new-tokens", "6")  # fmt: skip
    assert result.exit_code == 0, result.output
    server = Server(root / "idefics3", root).start()
    yield server, letters, local
    server.stop()


def _ask(served, out: Path, *args: str | Path):
    server, letters, _ = served
    return vlmkit("infer", letters, "--backend", "openai", "--endpoint", server.url,
                  "--model", server.model, "-o", out, "--max-new-tokens", "6", *args)  # fmt: skip


def test_a_served_model_answers_as_the_local_one(served, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    _, _, local = served
    out = tmp_path / "served.jsonl"
    result = _ask(served, out, "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert [p[:2] for p in predictions(out)] == [p[:2] for p in predictions(local)]
    lines = read_jsonl(out)
    assert all(line["prompt_tokens"] > 0 and line["new_tokens"] <= 6 for line in lines)
    assert all(line["finish_reason"] in ("stop", "length") for line in lines)
    assert all(line.get("truncated") == (line["finish_reason"] == "length") or
               (not line.get("truncated") and line["finish_reason"] == "stop")
               for line in lines)  # fmt: skip
    run = json.loads(out.with_suffix(".run.json").read_text())
    assert run["model"]["backend"] == "openai" and run["model"]["endpoint"] == served[0].url
    assert run["key"]["endpoint"] == served[0].url and run["key"]["model_files"] is None
    # The key is read from the environment, and written nowhere.
    for path in (out, out.with_suffix(".run.json")):
        assert KEY not in path.read_text()
    # More requests in flight change nothing but the time.
    again = tmp_path / "concurrent.jsonl"
    assert _ask(served, again, "--concurrency", "4").exit_code == 0
    assert predictions(again) == predictions(out)


def test_a_killed_run_resumes_to_the_same_file(served, tmp_path):
    server, letters, local = served
    out = tmp_path / "killed.jsonl"
    process = vlmkit_process(
        "infer", letters, "--backend", "openai", "--endpoint", server.url, "--model",
        server.model, "-o", out, "--max-new-tokens", "6", "--batch-size", "1",
        "--concurrency", "1", "--rpm", "240", start_new_session=True,
    )  # fmt: skip
    partial = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + 120
    while not (partial.is_file() and len(partial.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    result = _ask(served, out)
    assert result.exit_code == 0, result.output
    assert "Resuming" in result.stderr
    assert [p[:2] for p in predictions(out)] == [p[:2] for p in predictions(local)]


def test_a_server_lost_mid_run_stops_it_and_a_rerun_completes(served, tmp_path):
    _, letters, local = served
    server = Server(served[0].model, tmp_path).start()
    out = tmp_path / "lost.jsonl"
    process = vlmkit_process(
        "infer", letters, "--backend", "openai", "--endpoint", server.url, "--model",
        server.model, "-o", out, "--max-new-tokens", "6", "--batch-size", "1",
        "--concurrency", "1", "--rpm", "240", "--max-retries", "0", "--timeout", "5",
    )  # fmt: skip
    partial = out.with_name(out.name + ".partial")
    deadline = time.monotonic() + 120
    while not (partial.is_file() and len(partial.read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    server.stop()
    _, stderr = process.communicate(timeout=120)
    # A request or two fail (their samples' errors); then the run stops instead of going on.
    assert process.returncode == 1, stderr
    assert "stopped answering: 3 requests in a row could not reach it" in " ".join(stderr.split())
    lines = read_jsonl(partial)[1:]  # after the header: the answers kept for the next run
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 2 and all("Connection" in line["error"] for line in errors), lines
    server.start()
    try:
        result = _ask((server, letters, local), out, "--retry-errors", "--max-retries", "0",
                      "--timeout", "5")  # fmt: skip
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert [p[:2] for p in predictions(out)] == [p[:2] for p in predictions(local)]
    assert not any("error" in line for line in read_jsonl(out))
    result = _ask((server, letters, local), out)
    assert "all 8 samples already answered" in result.stderr


def test_a_wrong_model_or_port_is_one_clear_error(served, tmp_path):
    out = tmp_path / "wrong.jsonl"
    result = _ask(served, out, "--model", "no-such-model")
    assert result.exit_code == 2
    assert "--model no-such-model is not served by" in result.stderr
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    _, letters, _ = served
    started = time.monotonic()
    result = vlmkit("infer", letters, "--backend", "openai", "--endpoint",
                    f"http://127.0.0.1:{free_port()}/v1", "--model", "m", "-o", out)  # fmt: skip
    assert result.exit_code == 2 and "does not answer" in result.stderr
    assert time.monotonic() - started < 15  # no retries before the first request


def test_flags_that_do_not_fit_the_backend(served, tmp_path):
    server, letters, _ = served
    out = tmp_path / "x.jsonl"
    checks = [
        (("--backend", "openai", "--model", "m"), "--backend openai needs --endpoint URL"),
        (("--backend", "openai", "--endpoint", "127.0.0.1:8000", "--model", "m"),
         "is not an http(s) URL"),
        (("--backend", "openai", "--endpoint", server.url, "--model", "m", "--adapter",
          tmp_path), "a server serves a whole model"),
        (("--backend", "openai", "--endpoint", server.url, "--model", "m", "--concurrency",
          "0"), "--concurrency must be at least 1"),
        (("--model", server.model, "--concurrency", "4", "--rpm", "10"),
         "--concurrency, --rpm apply to a served model"),
        (("--backend", "openia", "--model", "m"), "'openai'"),
        (("--model", server.model, "--max-model-len", "100"),
         "--max-model-len is for --backend vllm"),
    ]  # fmt: skip
    for args, expected in checks:
        result = vlmkit("infer", letters, "-o", out, *args)
        assert result.exit_code != 0 and expected in " ".join(result.stderr.split()), args
    assert not out.exists()
