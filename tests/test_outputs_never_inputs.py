"""An output is never an input, and `--overwrite` replaces only what the same command wrote.

Each case here once ran with exit 0 and destroyed the user's file (issue 13, sections 3-4):
the refusal must name both paths, leave every input byte-identical, and never hint at an
action that would destroy one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import write_jsonl
from typer.testing import CliRunner

from vlmkit.cli import app

runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def _refused(result, *names: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for name in names:
        assert name in result.stderr, result.stderr
    assert "--overwrite" not in result.stderr.split("Hint:")[-1]
    return result.stderr


def _snapshot(*paths: Path) -> dict[Path, bytes]:
    files = []
    for path in paths:
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return {p: p.read_bytes() for p in files}


@pytest.fixture
def scored(refs_and_preds, tmp_path: Path):
    preds, refs = refs_and_preds
    scores, rows = tmp_path / "scores.json", tmp_path / "rows.jsonl"
    result = run("score", preds, refs, "--json", scores, "--per-sample", rows)
    assert result.exit_code == 0, result.output
    return preds, refs, scores, rows


@pytest.mark.parametrize(
    ("flag", "victim", "relation"),
    [
        ("--json", "preds", "would overwrite PREDS"),
        ("--per-sample", "refs", "would overwrite REFS"),
        ("--json", "baseline", "would overwrite --baseline"),
    ],
)
def test_score_never_writes_over_what_it_reads(scored, tmp_path, flag, victim, relation):
    preds, refs, _, _ = scored
    baseline = tmp_path / "base.jsonl"
    baseline.write_bytes(preds.read_bytes())
    paths = {"preds": preds, "refs": refs, "baseline": baseline}
    before = _snapshot(preds, refs, baseline)
    result = run("score", preds, refs, "--baseline", baseline, flag, paths[victim])
    _refused(result, f"{flag} {paths[victim]} {relation}")
    assert _snapshot(preds, refs, baseline) == before


def test_links_are_followed(scored, tmp_path: Path):
    preds, refs, _, _ = scored
    before = _snapshot(preds)
    (tmp_path / "soft.json").symlink_to(preds)
    os.link(preds, tmp_path / "hard.json")
    for link in ("soft.json", "hard.json"):
        _refused(run("score", preds, refs, "--json", tmp_path / link), "would overwrite PREDS")
    assert _snapshot(preds) == before


def test_two_outputs_of_one_command_are_two_files(scored, tmp_path: Path):
    preds, refs, _, _ = scored
    same = tmp_path / "out.json"
    _refused(run("score", preds, refs, "--json", same, "--per-sample", same), "the same file")


def test_an_output_inside_a_dataset_folder_is_refused(tmp_path: Path, refs_and_preds):
    preds, _ = refs_and_preds
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "metadata.jsonl", [{"id": "a", "file_name": "a.png", "target": "x"}])
    result = run("score", preds, data, "--json", data / "scores.json")
    _refused(result, "would be written inside REFS")
    assert not (data / "scores.json").exists()


def test_report_never_writes_over_what_it_reads(scored, tmp_path: Path):
    _, _, scores, rows = scored
    before = _snapshot(scores, rows)
    _refused(run("report", scores, "-o", scores), "would overwrite SCORES")
    _refused(
        run("report", scores, "--per-sample", rows, "-o", rows), "would overwrite --per-sample"
    )
    assert _snapshot(scores, rows) == before


def test_report_charts_never_write_over_an_input(scored, tmp_path: Path):
    _, _, scores, _ = scored
    charts = tmp_path / "charts"
    result = run("report", scores, "-o", tmp_path / "r.html", "--png", charts)
    assert result.exit_code == 0, result.output
    chart = sorted(charts.glob("*.png"))[0]
    disguised = chart.with_name(chart.name)  # a scores file that has a chart's name
    disguised.write_bytes(scores.read_bytes())
    before = _snapshot(disguised)
    result = run("report", disguised, "-o", tmp_path / "r2.html", "--png", charts)
    _refused(result, f"--png {charts} holds SCORES {disguised}")
    assert _snapshot(disguised) == before


def _fake_folder(folder: Path, sidecar: str) -> Path:
    folder.mkdir(parents=True)
    (folder / sidecar).write_text("{}\n")
    (folder / "payload.bin").write_bytes(b"precious")
    (folder / ".vlmkit-files").write_text(f"{sidecar}\npayload.bin\n")
    return folder


SYNTH = ("synth", "circled-letter", "--n", "2", "--workers", "1", "--image-size", "96",
         "--max-length", "5")  # fmt: skip


@pytest.mark.parametrize(
    ("command", "victim", "writer"),
    [
        (SYNTH, "tiny-model.json", "vlmkit tiny-model"),
        (SYNTH, "convert.json", "vlmkit convert"),
        (("tiny-model", "--family", "paligemma"), "synth.json", "vlmkit synth"),
        (("convert", "jsonl", "{src}"), "tiny-model.json", "vlmkit tiny-model"),
    ],
)
def test_overwrite_replaces_only_a_folder_of_its_own_kind(
    cord_imagefolder, tmp_path: Path, command, victim, writer
):
    out = _fake_folder(tmp_path / "out", victim)
    before = _snapshot(out)
    args = [a.format(src=cord_imagefolder) for a in command]
    if args[0] == "tiny-model":
        args.insert(1, str(out))
    else:
        args += ["-o", str(out)]
    result = run(*args, "--overwrite")
    _refused(result, f"--out {out}", f"was written by {writer}")
    assert _snapshot(out) == before


def test_files_a_user_added_to_a_synth_folder_are_named_and_kept(tmp_path: Path):
    out = tmp_path / "letters"
    assert run(*SYNTH, "-o", out).exit_code == 0
    (out / "notes.txt").write_text("my notes")
    (out / "images").mkdir(exist_ok=True)
    (out / "images" / "extra.png").write_bytes(b"mine")
    before = _snapshot(out)
    result = run(*SYNTH, "--seed", "9", "-o", out, "--overwrite")
    _refused(result, "holds files vlmkit synth did not write", "images/extra.png", "notes.txt")
    assert _snapshot(out) == before
    (out / "notes.txt").unlink()
    (out / "images" / "extra.png").unlink()
    assert run(*SYNTH, "--seed", "9", "-o", out, "--overwrite").exit_code == 0


def test_synth_never_writes_into_its_fonts_or_word_list(tmp_path: Path):
    from vlmkit.synth.fonts import bundled_fonts_dir

    words = tmp_path / "words.txt"
    words.write_text("alpha\nbravo\ncharlie\n")
    result = run(*SYNTH, "--words", words, "-o", words, "--overwrite")
    _refused(result, "would overwrite --words")
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for font in sorted(Path(bundled_fonts_dir()).glob("*.ttf"))[:1]:
        (fonts / font.name).write_bytes(font.read_bytes())
    _refused(run(*SYNTH, "--fonts", fonts, "-o", fonts / "out"), "would be written inside --fonts")
    _refused(run(*SYNTH, "--fonts", fonts, "-o", tmp_path, "--overwrite"), "holds --fonts")
    assert words.read_text() == "alpha\nbravo\ncharlie\n"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, torch_one_thread) -> tuple[Path, Path]:
    from model_helpers import memory_dataset

    root = tmp_path_factory.mktemp("never-inputs")
    assert run("tiny-model", root / "model", "--family", "idefics3").exit_code == 0
    return root / "model", memory_dataset(root / "data")


@pytest.mark.slow
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_infer_never_writes_over_or_into_its_dataset(tiny, overwrite):
    model, data = tiny
    before = _snapshot(data)
    for out, relation in ((data / "metadata.jsonl", "would overwrite a file inside DATASET"),
                          (data / "preds.jsonl", "would be written inside DATASET"),
                          (model / "preds.jsonl", "would be written inside --model")):  # fmt: skip
        result = run("infer", data, "--model", model, "-o", out, *overwrite)
        _refused(result, f"--out {out} {relation}")
    assert _snapshot(data) == before


@pytest.mark.slow
def test_finetune_never_writes_into_its_inputs(tiny, tmp_path: Path):
    model, data = tiny
    before = _snapshot(data, model)
    _refused(run("finetune", data, "--model", model, "-o", data / "run"),
             f"--out {data / 'run'} would be written inside TRAIN_DATASET")  # fmt: skip
    _refused(run("finetune", data, "--model", model, "-o", model.parent, "--overwrite"),
             "holds TRAIN_DATASET")  # fmt: skip
    config = tmp_path / "run.toml"
    config.write_text("max_steps = 1\n")
    _refused(run("finetune", data, "--model", model, "--config", config, "-o", config),
             "would overwrite --config")  # fmt: skip
    assert _snapshot(data, model) == before


def test_a_folder_without_its_inventory_is_not_guessed_at(tmp_path: Path):
    out = tmp_path / "letters"
    assert run(*SYNTH, "-o", out).exit_code == 0
    (out / ".vlmkit-files").unlink()  # as an older vlmkit left it
    result = run(*SYNTH, "-o", out, "--overwrite")
    _refused(result, "has no .vlmkit-files listing what vlmkit synth wrote", "metadata.jsonl")
    assert (out / "synth.json").is_file()


@pytest.mark.slow
def test_finetune_never_touches_an_input_at_its_working_names(tiny, tmp_path: Path):
    import shutil

    model, data = tiny
    out = tmp_path / "run"
    assert run("finetune", data, "--model", model, "-o", out, "--max-steps", "1").exit_code == 0
    for name in (".run.old", ".run.partial"):
        user = Path(shutil.copytree(data, tmp_path / name))
        before = _snapshot(user)
        result = run("finetune", data, "--model", model, "-o", out, "--overwrite",
                     "--eval", user, "--max-steps", "1")  # fmt: skip
        _refused(result, f"--out's {name.split('.')[-1]} folder", f"--eval {user}")
        result = run("finetune", user, "--model", model, "-o", out, "--overwrite")
        _refused(result, "TRAIN_DATASET")
        # Not an input, but not vlmkit's either: never deleted, never trained into.
        other = tmp_path / "other"
        result = run("finetune", data, "--model", model, "-o", out, "--overwrite",
                     "--max-steps", "1")  # fmt: skip
        assert result.exit_code == 2 and f"{user} is in the way" in result.stderr
        assert _snapshot(user) == before
        shutil.move(user, other)
        shutil.rmtree(other)


@pytest.mark.slow
def test_finetune_overwrite_names_files_a_user_put_among_its_checkpoints(tiny, tmp_path: Path):
    model, data = tiny
    out = tmp_path / "run"
    args = ("finetune", data, "--model", model, "-o", out, "--max-steps", "2", "--save-every",
            "1")  # fmt: skip
    assert run(*args).exit_code == 0
    (out / "checkpoints" / "my-notes.txt").write_text("mine")
    (out / "checkpoints" / "checkpoint-999-mine").mkdir()
    (out / "checkpoints" / "checkpoint-999-mine" / "a.txt").write_text("mine")
    before = _snapshot(out)
    result = run(*args, "--overwrite")
    _refused(result, "checkpoints/checkpoint-999-mine/a.txt", "checkpoints/my-notes.txt")
    assert _snapshot(out) == before


@pytest.mark.slow
def test_infer_refuses_an_adapter_whose_training_did_not_finish(tiny, tmp_path: Path):
    model, data = tiny
    out = tmp_path / "run"
    assert run("finetune", data, "--model", model, "-o", out, "--max-steps", "1").exit_code == 0
    (out / "vlmkit-adapter.json").unlink()  # as a run killed before its manifest leaves it
    result = run("infer", data, "--adapter", out, "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 1 and "its training has not finished" in result.stderr
    assert "--resume" in result.stderr


def test_convert_never_replaces_the_images_its_jsonl_file_names(cord_imagefolder, tmp_path):
    import shutil

    images = tmp_path / "images"
    images.mkdir()
    shutil.copyfile(cord_imagefolder / "test" / "receipt_00.png", images / "0.png")
    export = write_jsonl(tmp_path / "train.jsonl",
                         [{"image": "images/0.png", "prefix": "Read.", "suffix": "x"}])  # fmt: skip
    before = _snapshot(images)
    for out in (images, tmp_path / "converted"):
        result = run("convert", "jsonl", export, "-o", out, "--overwrite")
        _refused(result, f"--out {out}", f"SRC's folder {tmp_path}")
    assert _snapshot(images) == before


def test_report_never_writes_into_the_dataset_whose_images_it_shows(tmp_path: Path):
    import shutil

    from conftest import EXAMPLE_CORD

    data = Path(shutil.copytree(EXAMPLE_CORD, tmp_path / "cord"))
    scores, rows = tmp_path / "s.json", tmp_path / "rows.jsonl"
    result = run("score", data / "predictions-b.jsonl", data, "--json", scores,
                 "--per-sample", rows)  # fmt: skip
    assert result.exit_code == 0, result.output
    before = _snapshot(data)
    for flags in (["-o", data / "r.html"], ["-o", tmp_path / "r.html", "--png", data / "charts"]):
        result = run("report", scores, "--per-sample", rows, *flags)
        _refused(result, "the dataset of its images")
    assert _snapshot(data) == before and not (tmp_path / "r.html").exists()


def test_report_refuses_before_writing_anything(scored, tmp_path: Path):
    _, _, scores, _ = scored
    page = tmp_path / "r3.html"
    _refused(run("report", scores, "-o", page, "--png", page), "are the same file")
    assert not page.exists()
    (tmp_path / "taken").write_text("mine")
    result = run("report", scores, "-o", page, "--png", tmp_path / "taken")
    assert result.exit_code == 2 and "--png" in result.stderr and "is a file" in result.stderr
    assert not page.exists() and (tmp_path / "taken").read_text() == "mine"
    for png in (tmp_path / "taken" / "sub", page / "charts"):
        assert run("report", scores, "-o", page, "--png", png).exit_code == 2
        assert not page.exists()


def test_score_never_writes_over_the_references_of_a_dataset_folder(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "metadata.jsonl", [{"id": "a", "file_name": "a.png", "target": "x"}])
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "prediction": "x"}])
    os.link(data / "metadata.jsonl", tmp_path / "linked.jsonl")
    before = _snapshot(data)
    result = run("score", preds, data, "--per-sample", tmp_path / "linked.jsonl")
    _refused(result, "would overwrite REFS")
    assert _snapshot(data) == before


@pytest.mark.slow
def test_images_reached_through_a_link_are_inputs_too(tiny, tmp_path: Path):
    import shutil

    model, data = tiny
    store = Path(shutil.copytree(data / "images", tmp_path / "store"))
    linked = tmp_path / "linked"
    linked.mkdir()
    shutil.copyfile(data / "metadata.jsonl", linked / "metadata.jsonl")
    (linked / "images").symlink_to(store)
    before = _snapshot(store)
    result = run("infer", linked, "--model", model, "-o", store / "p.jsonl")
    _refused(result, "the folder of DATASET's images")
    result = run("finetune", linked, "--model", model, "-o", store / "run")
    _refused(result, "the folder of DATASET's images")
    assert _snapshot(store) == before


@pytest.mark.slow
def test_infer_never_writes_into_the_base_model_an_adapter_names(tiny, tmp_path: Path):
    model, data = tiny
    adapter = tmp_path / "adapter"
    assert run("finetune", data, "--model", model, "-o", adapter, "--max-steps", "1").exit_code == 0
    before = _snapshot(model)
    result = run("infer", data, "--adapter", adapter, "-o", model / "p.jsonl")
    _refused(result, "would be written inside --adapter's base model")
    assert _snapshot(model) == before


def test_overwrite_through_a_link_replaces_the_folder_it_points_to(tmp_path: Path):
    real, link = tmp_path / "letters", tmp_path / "link"
    assert run(*SYNTH, "-o", real).exit_code == 0
    link.symlink_to(real)
    first = (real / "metadata.jsonl").read_bytes()
    assert run(*SYNTH, "--seed", "5", "-o", link, "--overwrite").exit_code == 0
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert (real / "metadata.jsonl").read_bytes() != first


def test_score_and_report_never_write_over_images_reached_through_links(tmp_path: Path):
    import shutil

    from conftest import EXAMPLE_CORD

    store = Path(shutil.copytree(EXAMPLE_CORD / "images", tmp_path / "store"))
    data = tmp_path / "cord"
    data.mkdir()
    for name in ("metadata.jsonl", "predictions-b.jsonl"):
        shutil.copyfile(EXAMPLE_CORD / name, data / name)
    (data / "images").symlink_to(store)
    before = _snapshot(store)
    image = sorted(store.iterdir())[0]
    preds = data / "predictions-b.jsonl"
    _refused(run("score", preds, data, "--json", image), "the folder of DATASET's images")
    _refused(run("score", preds, data, "--per-sample", store / "r.jsonl"), "DATASET's images")
    scores = tmp_path / "s.json"
    assert run("score", preds, data, "--json", scores).exit_code == 0
    _refused(run("report", scores, "-o", store / "r.html"), "the folder of DATASET's images")
    assert _snapshot(store) == before


@pytest.mark.slow
def test_a_users_folder_at_a_working_name_is_never_deleted(tiny, tmp_path: Path):
    import shutil

    model, data = tiny
    out = tmp_path / "run"
    args = ("finetune", data, "--model", model, "-o", out, "--max-steps", "1")
    assert run(*args).exit_code == 0
    backup = Path(shutil.copytree(out, tmp_path / ".run.old"))  # a copy of vlmkit's own...
    (backup / "NOTES.txt").write_text("mine")  # ...with the user's notes in it
    result = run(*args, "--overwrite")
    _refused(result, f"{backup} is in the way", "NOTES.txt")
    shutil.rmtree(backup)
    (tmp_path / ".run.partial").write_text("a file")
    _refused(run(*args, "--overwrite"), ".run.partial is in the way")
    assert (tmp_path / ".run.partial").read_text() == "a file"


@pytest.mark.slow
def test_a_finished_folder_is_replaced_only_with_exactly_what_it_listed(tiny, tmp_path: Path):
    model, data = tiny
    out = tmp_path / "run"
    args = ("finetune", data, "--model", model, "-o", out, "--max-steps", "2",
            "--save-every", "1")  # fmt: skip
    assert run(*args).exit_code == 0
    for mine in ("checkpoints/checkpoint-2/notes.txt", "best/notes.txt", "merged/notes.txt"):
        (out / mine).parent.mkdir(parents=True, exist_ok=True)
        (out / mine).write_text("mine")
        _refused(run(*args, "--overwrite"), mine)
        (out / mine).unlink()
    assert run(*args, "--overwrite").exit_code == 0


@pytest.mark.slow
def test_a_resumed_run_is_unfinished_until_it_finishes(tiny, tmp_path: Path):
    from vlmkit.finetune.output import reopen_folder

    model, data = tiny
    out = tmp_path / "run"
    args = ("finetune", data, "--model", model, "-o", out, "--save-every", "1")
    assert run(*args, "--max-steps", "1").exit_code == 0
    reopen_folder(out)  # what --resume does first: a kill after it leaves this
    result = run("infer", data, "--adapter", out, "-o", tmp_path / "p.jsonl")
    assert result.exit_code == 1 and "its training has not finished" in result.stderr
    assert run(*args, "--max-steps", "2", "--resume").exit_code == 0
    manifest = json.loads((out / "vlmkit-adapter.json").read_text())
    assert manifest["training"]["steps"] == 2 and (out / ".vlmkit-files").is_file()


@pytest.mark.slow
def test_two_finetune_runs_never_write_one_folder(tiny, tmp_path: Path):
    from vlmkit.locks import RunLock

    model, data = tiny
    out = tmp_path / "run"
    with RunLock(out, "vlmkit finetune"):  # another run holds OUT
        result = run("finetune", data, "--model", model, "-o", out, "--overwrite")
        _refused(result, f"another vlmkit finetune is writing {out}")
    assert not out.exists()


@pytest.mark.slow
def test_a_swap_cut_by_a_kill_is_completed_by_the_next_run(tiny, tmp_path: Path):
    model, data = tiny
    out = tmp_path / "run"
    args = ("finetune", data, "--model", model, "-o", out, "--max-steps", "1")
    assert run(*args).exit_code == 0
    new = _snapshot(out)
    # As a kill between the two renames leaves it: the old OUT aside, the new one whole.
    assert run(*args, "-o", tmp_path / "old").exit_code == 0
    (tmp_path / "old").rename(tmp_path / ".run.old")
    out.rename(tmp_path / ".run.partial")
    result = run(*args, "--max-steps", "2", "--resume")  # any next run of OUT completes it
    assert result.exit_code == 0, result.output
    assert not (tmp_path / ".run.old").exists() and not (tmp_path / ".run.partial").exists()
    assert (out / "adapter_config.json").read_bytes() == new[out / "adapter_config.json"]


@pytest.mark.slow
def test_finetune_never_trains_into_the_current_folder(tiny, tmp_path: Path, monkeypatch):
    model, data = tiny
    monkeypatch.chdir(tmp_path)
    result = run("finetune", data, "--model", model, "-o", ".", "--overwrite")
    _refused(result, "is the current folder or holds it")
