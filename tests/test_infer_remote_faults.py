"""`--backend openai` against a real HTTP server on 127.0.0.1 that answers as a hosted API does
when things go wrong: a refused key, rate limits with Retry-After, server errors. The server
is Python's own (`http.server`), scripted per request; the client is vlmkit's real one."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from model_helpers import read_jsonl, vlmkit

KEY = "sk-fault-test-secret-424242"


class Scripted(ThreadingHTTPServer):
    """Answers chat completions from `script` (status, headers) in turn, then 200s."""

    def __init__(self, script: list[tuple[int, dict[str, str]]]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script, self.seen, self.lock = list(script), [], threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # /v1/models
        self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length))
        with self.server.lock:
            self.server.seen.append((time.monotonic(), self.headers.get("authorization"),
                                     request))  # fmt: skip
            status, headers = self.server.script.pop(0) if self.server.script else (200, {})
        if status == 0:  # a 200 whose body is not JSON
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", "8")
            self.end_headers()
            self.wfile.write(b"not json")
            return
        if status != 200:
            message = f"scripted {status}; your key {self.headers.get('authorization')}"
            self._send(status, {"error": {"message": message}}, headers)
            return
        text = request["messages"][0]["content"][1]["text"]
        self._send(200, {
            "id": "x", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"echo {len(text)}"}}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
        })  # fmt: skip


@pytest.fixture
def scripted(request):
    server = Scripted(getattr(request, "param", []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("remote")
    (folder / "images").mkdir()
    rows = []
    for i in range(4):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(folder / "images" / f"{i}.png")
        rows.append({"id": f"s{i}", "file_name": f"images/{i}.png", "task": "ocr",
                     "prompt": "read" * (i + 1), "target": "x"})  # fmt: skip
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _ask(server: Scripted, data: Path, out: Path, *args: str):
    return vlmkit("infer", data, "--backend", "openai", "--endpoint", server.url, "--model", "m",
                  "-o", out, "--concurrency", "1", *args)  # fmt: skip


@pytest.mark.parametrize("scripted", [[(401, {})]], indirect=True)
def test_a_refused_key_stops_the_run_and_is_never_repeated(scripted, images, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "p.jsonl"
    result = _ask(scripted, images, out)
    assert result.exit_code == 2
    assert "refused the API key from $OPENAI_API_KEY (401)" in result.stderr
    assert KEY not in result.output and not out.exists()
    assert len(scripted.seen) == 1 and scripted.seen[0][1] == f"Bearer {KEY}"


@pytest.mark.parametrize("scripted", [[(429, {"retry-after": "1"}), (503, {})]], indirect=True)
def test_rate_limits_and_server_errors_are_retried(scripted, images, tmp_path):
    out = tmp_path / "p.jsonl"
    result = _ask(scripted, images, out, "--max-retries", "2")
    assert result.exit_code == 0, result.output
    assert [line["prediction"] for line in read_jsonl(out)] == ["echo 4", "echo 8", "echo 12",
                                                                "echo 16"]  # fmt: skip
    times = [seen[0] for seen in scripted.seen]
    assert len(times) == 6  # two refusals, retried, then the four answers
    assert times[1] - times[0] >= 0.9  # Retry-After: 1 was honoured
    first = scripted.seen[2][2]
    assert first["temperature"] == 0.0 and first["max_tokens"] == 256 and "seed" not in first
    assert first["messages"][0]["content"][0]["image_url"]["url"].startswith(
        "data:image/png;base64,")  # fmt: skip
    assert "detail" not in first["messages"][0]["content"][0]["image_url"]


@pytest.mark.parametrize("scripted", [[(500, {}), (500, {})]], indirect=True)
def test_a_request_failing_after_its_retries_is_its_samples_error(
    scripted, images, tmp_path, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = tmp_path / "p.jsonl"
    result = _ask(scripted, images, out, "--max-retries", "1", "--limit", "2")
    assert result.exit_code == 0, result.output
    first, second = read_jsonl(out)
    assert first["error"].startswith("500: scripted 500") and second["prediction"] == "echo 8"
    # The server echoed the key in its message: the line holds it masked.
    assert "your key Bearer ***" in first["error"] and KEY not in out.read_text()
    result = _ask(scripted, images, out, "--max-retries", "1", "--limit", "2", "--retry-errors")
    assert result.exit_code == 0 and "error" not in read_jsonl(out)[0]


def test_rpm_spaces_the_requests(scripted, images, tmp_path):
    out = tmp_path / "p.jsonl"
    assert _ask(scripted, images, out, "--rpm", "120", "--concurrency", "4").exit_code == 0
    times = sorted(seen[0] for seen in scripted.seen)
    assert times[-1] - times[0] >= 3 * 0.5 * 0.95  # 4 starts, 0.5 s apart


@pytest.mark.parametrize("scripted", [[(0, {})]], indirect=True)
def test_a_reply_that_cannot_be_read_is_its_samples_error(scripted, images, tmp_path):
    out = tmp_path / "p.jsonl"
    result = _ask(scripted, images, out, "--max-retries", "0", "--limit", "2")
    assert result.exit_code == 0, result.output
    first, second = read_jsonl(out)
    assert "error" in first and second["prediction"] == "echo 8"


def test_the_image_detail_is_part_of_the_run(scripted, images, tmp_path):
    """A server may downscale an image sent with detail low: other answers, another run."""
    out = tmp_path / "p.jsonl"
    assert _ask(scripted, images, out, "--limit", "1", "--image-detail", "low").exit_code == 0
    assert scripted.seen[-1][2]["messages"][0]["content"][0]["image_url"]["detail"] == "low"
    result = _ask(scripted, images, out, "--limit", "2", "--image-detail", "high")
    assert result.exit_code == 2 and "another configuration" in result.stderr
