"""`vlmkit score PREDS REFS`: metrics, breakdowns, baseline comparison and Makefile gates."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vlmkit.cli import console
from vlmkit.cli.options import (
    AggregationChoice,
    IdField,
    JsonOut,
    Norm,
    PredField,
    RefField,
    TaskChoice,
    Workers,
    given,
)
from vlmkit.errors import GateFailed, UsageError
from vlmkit.peers import PEERS, recognise
from vlmkit.records import write_jsonl_atomic, write_text_atomic


def parse_gate(spec: str, flag: str) -> tuple[str, float]:
    """`cer=0.1` -> ("cer", 0.1), with errors naming the flag."""
    from vlmkit.metrics import resolve_metric_names

    name, sep, raw = spec.partition("=")
    name = name.strip().lower()
    try:
        if not sep:
            raise ValueError
        threshold = float(raw)
        if not math.isfinite(threshold):
            raise ValueError
    except ValueError:
        raise UsageError(
            f"{flag} {spec!r}: expected METRIC=VALUE", hint=f"e.g. {flag} cer=0.05"
        ) from None
    resolve_metric_names(name, flag=flag)
    return name, threshold


def parse_variant(spec: str) -> tuple[str, str]:
    """`anls=lmms-eval` -> ("anls", "lmms-eval"): a metric that has that variant."""
    from vlmkit.metrics import METRICS, metric_class, resolve_metric_names

    name, sep, variant = (part.strip() for part in spec.partition("="))
    with_variants = [n for n in METRICS if metric_class(n).variants]
    if "," in spec:
        raise UsageError(
            f"--variant {spec!r}: one METRIC=VARIANT per --variant",
            hint="repeat the flag: --variant anls=lmms-eval --variant ocrbench_match=hme",
        )
    if not sep or not variant or not name:
        raise UsageError(
            f"--variant {spec!r}: expected METRIC=VARIANT",
            hint=f"e.g. --variant vqa_accuracy=lmms-eval (metrics with variants: "
            f"{', '.join(with_variants)}; see vlmkit metrics)",
        )
    [name] = resolve_metric_names(name, flag="--variant")
    known = metric_class(name).variants
    if variant not in known:
        choices = ", ".join(known) if known else "none: it has one definition"
        raise UsageError(
            f"--variant {spec}: {name} has no variant {variant!r}",
            hint=f"its variants: {choices}",
        )
    return name, variant


def _warn_other_preprocessing(preds: Path, baseline: Path) -> None:
    """Two runs whose images were preprocessed differently (another resolution, tiles) are
    compared as asked, but never unknowingly: their sidecars say how each was made."""
    from vlmkit.infer.journal import sidecar_path

    def preprocessing(path: Path) -> Any:
        try:
            record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
            return (record.get("model") or {}).get("image_preprocessing")
        except (OSError, ValueError, AttributeError):
            return None  # no sidecar (another tool's file): nothing to compare

    ours, theirs = preprocessing(preds), preprocessing(baseline)
    if ours and theirs and ours.get("effective") != theirs.get("effective"):
        default = "the processor's own"
        mine, other = ours.get("settings") or default, theirs.get("settings") or default
        console.warn(
            f"PREDS and --baseline preprocessed images differently ({mine} against {other}; "
            "see their .run.json): the comparison mixes resolution with whatever else differs"
        )


def _variants(specs: list[str]) -> tuple[tuple[str, str], ...]:
    chosen: dict[str, str] = {}
    for spec in specs:
        name, variant = parse_variant(spec)
        if chosen.get(name, variant) != variant:
            raise UsageError(
                f"--variant: {name} is given two variants ({chosen[name]}, {variant})",
                hint="give each metric one --variant",
            )
        chosen[name] = variant
    return tuple(chosen.items())


def check_gate_names(
    computed: list[str],
    under: list[tuple[str, float]],
    over: list[tuple[str, float]],
    variants: tuple[tuple[str, str], ...] = (),
) -> None:
    """Before scoring: every gated metric, and every metric given a variant, must be among
    those that will be computed."""
    for name, variant in variants:
        if name not in computed:
            raise UsageError(
                f"--variant {name}={variant}: {name} is not computed",
                hint=f"add it to --metrics (computed: {', '.join(computed)})",
            )
    for flag, gates in (("--fail-under", under), ("--fail-over", over)):
        for name, threshold in gates:
            if name not in computed:
                raise UsageError(
                    f"{flag} {name}={threshold:g}: {name} was not computed",
                    hint=f"add it to --metrics (computed: {', '.join(computed)})",
                )


def _layout(ctx: typer.Context, preds: Path, tool: str | None, fmt: str | None,
            *, refs: Path | None = None) -> Any:  # fmt: skip
    """The peer layout to read PREDS with: `--from`'s, or the one its first record shows when
    it has no `prediction` field (said in a note). Field flags given beside it win, field by
    field."""
    if tool == "none":
        return None
    if tool is not None:
        return PEERS[tool]
    from vlmkit.records import has_field
    from vlmkit.tables import iter_records

    if not preds.is_file():
        return None  # the join names what is wrong with it
    first = next(iter_records(preds, fmt), None)
    if first is None or (has_field(first.data, "prediction") and "index" not in first.data):
        return None
    if given(ctx, "pred_field") and has_field(first.data, ctx.params["pred_field"]):
        return None  # the user says where the answer is: the file is read as told
    name = recognise(first.data)
    if name is None:
        return None
    layout = PEERS[name]
    same = refs is not None and refs.resolve() == preds.resolve()
    labels = f", its own {layout.ref_field!r} as the reference" if same else ""
    ids = "paired by position" if layout.join_by == "line" else f"ids from {layout.id_field!r}"
    console.note(
        f"{preds} looks like {layout.tool}'s output: its answer from {layout.pred_field!r}, "
        f"{ids}{labels} (--from none reads it as vlmkit's)"
    )
    return layout


def check_gates(
    values: dict[str, float], under: list[tuple[str, float]], over: list[tuple[str, float]]
) -> None:
    failures = []
    for flag, gates, fails in (
        ("--fail-under", under, lambda v, t: v < t),
        ("--fail-over", over, lambda v, t: v > t),
    ):
        for name, threshold in gates:
            if fails(values[name], threshold):
                failures.append(f"{name} = {values[name]:.6g} ({flag} {name}={threshold:g})")
    if failures:
        raise GateFailed(
            "quality gate failed: " + "; ".join(failures),
            hint="the scores above are complete; the exit status is for Make and CI",
        )


def _write_json(target: Path, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
    if str(target) == "-":
        console.write_stdout(text)
    else:
        write_text_atomic(target, text)
        console.note(f"wrote {target}")


FromChoice = Enum("FromChoice", {name: name for name in (*PEERS, "none")}, type=str)  # type: ignore[misc]


class JoinChoice(str, Enum):
    id = "id"
    line = "line"


class FormatChoice(str, Enum):  # vlmkit.tables.FORMATS, listed for --help
    jsonl = "jsonl"
    json = "json"
    csv = "csv"
    tsv = "tsv"
    xlsx = "xlsx"


def score(
    ctx: typer.Context,
    preds: Annotated[
        list[Path],
        typer.Argument(
            metavar="PREDS...",
            help="Predictions JSONL (one {id, prediction} a line); several: the shards of one "
            "run, read as one.",
        ),
    ],
    refs: Annotated[
        Path,
        typer.Argument(
            metavar="REFS",
            help="Dataset folder, its metadata.jsonl, or a JSONL with id + reference.",
        ),
    ],
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            "-m",
            help="Comma-separated metrics.",
            show_default="the records' task's, see vlmkit metrics",
        ),
    ] = None,
    task: Annotated[
        TaskChoice | None,
        typer.Option("--task", help="Use this task's default metrics, whatever the records say."),
    ] = None,
    norm: Norm = "none",
    aggregation: Annotated[
        AggregationChoice,
        typer.Option(
            "--aggregation",
            help="corpus: pool statistics (jiwer, sacrebleu); mean: of samples.",
        ),
    ] = AggregationChoice.corpus,
    split: Annotated[
        str | None,
        typer.Option(help="The split of REFS (a dataset folder with splits) to score against."),
    ] = None,
    from_tool: Annotated[
        FromChoice | None,
        typer.Option(
            "--from",
            help="PREDS were written by this tool: read its fields its way "
            "(flags given beside it win); none: as vlmkit's, no detection.",
            show_default="recognised from the first record, and said",
        ),
    ] = None,
    join_by: Annotated[
        JoinChoice,
        typer.Option(
            "--join",
            help="id: pair predictions with references by id; line: by "
            "position, for files without ids (both must hold as many records).",
        ),
    ] = JoinChoice.id,
    pred_format: Annotated[
        FormatChoice | None,
        typer.Option(
            "--format",
            help="PREDS' format: jsonl, json (an array), csv, tsv, xlsx.",
            show_default="from each file's name, else its content",
        ),
    ] = None,
    id_field: IdField = "id",
    pred_field: PredField = "prediction",
    ref_field: RefField = "target",
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="A reference without a prediction is an error (without it: an empty one).",
        ),
    ] = False,
    json_out: JsonOut = None,
    per_sample: Annotated[
        Path | None, typer.Option("--per-sample", help="Write every sample's scores as JSONL here.")
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option("--by", help="Break down by a record field, e.g. meta.font (repeatable)."),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Baseline predictions to compare with (same REFS)."),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=10, help="With --baseline: bootstrap resamples.")
    ] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="With --baseline: bootstrap random seed.")
    ] = 12345,
    fail_under: Annotated[
        list[str] | None,
        typer.Option("--fail-under", help="Exit non-zero if METRIC < VALUE, e.g. field_f1=0.8."),
    ] = None,
    fail_over: Annotated[
        list[str] | None,
        typer.Option("--fail-over", help="Exit non-zero if METRIC > VALUE, e.g. cer=0.05."),
    ] = None,
    letter_case_sensitive: Annotated[
        bool,
        typer.Option("--letter-case-sensitive", help="letter_accuracy: 'E' differs from 'e'."),
    ] = False,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant",
            metavar="METRIC=VARIANT",
            help="Compute a metric as a harness defines it instead of the official evaluation, "
            "e.g. vqa_accuracy=lmms-eval, ocrbench_match=hme (variants: vlmkit metrics).",
        ),
    ] = None,
    workers: Workers = None,
) -> None:
    """Score predictions against references, joined by id.

    Metrics default to the records' task (see `vlmkit metrics`). Every value is on its
    library's own scale (jiwer fractions, sacrebleu 0-100, accuracies 0-1) and carries a
    signature. Failed or missing predictions score as empty and are reported.

    Examples:

        vlmkit score preds.jsonl data/test

        vlmkit score preds.jsonl data/test -m cer,wer --norm whitespace --json scores.json

        vlmkit score tuned.jsonl data/test --baseline base.jsonl --by meta.font

        vlmkit score preds.jsonl refs.jsonl --ref-field text --fail-over cer=0.05

        vlmkit score part-1.jsonl part-2.jsonl part-3.jsonl data/test     (a --shard run)
    """
    # The library loads here, not at import time, so `vlmkit --help` stays fast.
    from vlmkit.metrics import resolve_metric_names
    from vlmkit.metrics.base import MetricOptions
    from vlmkit.normalize import Normalization
    from vlmkit.outputs import dataset_image_folders, refuse_overlaps
    from vlmkit.records import METADATA_FILE, check_writable
    from vlmkit.scoring import (
        ScoreConfig,
        breakdown,
        check_breakdown,
        choose_metrics,
        evaluate,
        join,
        per_sample_rows,
        summary_json,
    )

    # Validate every flag before reading any file, so a typo costs nothing.
    under = [parse_gate(g, "--fail-under") for g in fail_under or []]
    over = [parse_gate(g, "--fail-over") for g in fail_over or []]
    options = MetricOptions(
        normalization=Normalization.parse(norm),
        letter_case_sensitive=letter_case_sensitive,
        workers=workers,
        variants=_variants(variant or []),
    )
    layout = _layout(ctx, preds[0], from_tool.value if from_tool else None,
                     pred_format.value if pred_format else None, refs=refs)  # fmt: skip
    pred_id_field = None
    if layout is not None:  # its fields, where no flag names another
        # Its own file as REFS keeps its ids and labels; other REFS (a vlmkit dataset) keep
        # theirs, and the tool's id field is read in PREDS only.
        same = refs.resolve() == preds[0].resolve()
        if not given(ctx, "id_field"):
            if same:
                id_field = layout.id_field
            else:
                pred_id_field = layout.id_field
        pred_field = pred_field if given(ctx, "pred_field") else layout.pred_field
        ref_field = layout.ref_field if same and not given(ctx, "ref_field") else ref_field
        if not given(ctx, "join_by"):
            join_by = JoinChoice(layout.join_by)
    config = ScoreConfig(
        metrics=tuple(resolve_metric_names(metrics)) if metrics is not None else None,
        task=task.value if task else None,
        aggregation=aggregation.value,
        options=options,
        id_field=id_field,
        pred_field=pred_field,
        ref_field=ref_field,
        pred_format=pred_format.value if pred_format else None,
        pred_id_field=pred_id_field,
        join_by=join_by.value,
        strict=strict,
    )

    if json_out is not None and str(json_out) != "-":
        check_writable(json_out, "--json")
    if per_sample is not None:
        check_writable(per_sample, "--per-sample")
    has_splits = refs.is_dir() and any((p / METADATA_FILE).is_file() for p in refs.iterdir())
    if refs.is_dir() and (split is not None or has_splits):
        from vlmkit.infer.selection import dataset_folder

        # A dataset with splits: one is named, as `infer` takes it.
        refs = dataset_folder(refs, split, flag="REFS")
    elif split is not None:
        raise UsageError(f"--split {split!r} is for a dataset folder, and REFS {refs} is a file",
                         hint="drop --split, or give the dataset folder as REFS")  # fmt: skip
    refuse_overlaps(
        [("--json", json_out), ("--per-sample", per_sample)],
        [*(("PREDS", path) for path in preds), ("REFS", refs), ("REFS", refs / METADATA_FILE),
         ("--baseline", baseline), *dataset_image_folders(refs, "REFS")],
    )  # fmt: skip

    joined = join(preds, refs, config)
    # Everything that can be checked without scoring is checked now, before minutes of work.
    check_gate_names(choose_metrics(joined, config)[1], under, over, options.variants)
    for path in by or []:
        check_breakdown(joined, path)
    base_joined = None
    if baseline:  # read its own way: a vlmkit file beside a peer's, or a peer's of its own
        base_layout = _layout(ctx, baseline, None, None, refs=refs)
        base_config = config
        if base_layout is not None or layout is not None:
            base_config = replace(
                config,
                pred_field=base_layout.pred_field if base_layout else "prediction",
                pred_id_field=(base_layout.id_field if base_layout else None),
                join_by=base_layout.join_by if base_layout else "id",
            )  # fmt: skip
        base_joined = join(baseline, refs, base_config, flag="--baseline")
        _warn_other_preprocessing(preds[0], baseline)
    with console.stderr.status("scoring…"):
        evaluation = evaluate(joined, config)
        comparisons = None
        base_eval = None
        if base_joined is not None:
            from vlmkit.significance import paired_bootstrap

            base_eval = evaluate(base_joined, config)
            comparisons = paired_bootstrap(
                evaluation.results, base_eval.results, resamples=bootstrap, seed=seed
            )
        groups = {path: breakdown(evaluation, path) for path in by or []}

    payload = summary_json(evaluation)
    if groups:
        payload["by"] = groups
    if comparisons is not None and base_eval is not None:
        payload["baseline"] = {
            "predictions": str(base_eval.joined.prediction_path),
            "metrics": {name: r.report for name, r in base_eval.results.items()},
            "signatures": {name: r.signature for name, r in base_eval.results.items()},
            "missing_predictions": len(base_eval.joined.missing),
            "errored_predictions": len(base_eval.joined.errored),
            "truncated_predictions": len(base_eval.joined.truncated),
            "details": base_eval.details,
        }
        payload["comparison"] = {name: c.to_json() for name, c in comparisons.items()}
        payload["comparison_method"] = f"paired bootstrap, {bootstrap} resamples, seed {seed}"

    # Files first: a problem while drawing the table must not cost the results.
    if json_out is not None:
        _write_json(json_out, payload)
    if per_sample is not None:
        count = write_jsonl_atomic(per_sample, per_sample_rows(evaluation))
        console.note(f"wrote {count} per-sample rows to {per_sample}")
    if json_out is None or str(json_out) != "-":
        _render(evaluation, comparisons, groups)
    _report_gaps(joined, base_eval)
    check_gates(evaluation.values(), under, over)


def _render(evaluation, comparisons, groups) -> None:
    from rich.markup import escape

    from vlmkit.cli import render

    out = console.stdout
    for part in render.metric_tables(out, evaluation, comparisons):
        out.print(part)
    if comparisons:
        out.print(
            "[dim]delta = system - baseline; CI and p from a paired bootstrap "
            "(p < 0.05 coloured: green better, red worse)[/dim]",
            soft_wrap=False,  # prose wraps to the width; signatures below stay whole lines
        )
    details = evaluation.details.get("field_f1", {})
    if details.get("per_field"):
        for part in render.field_tables(out, details["per_field"]):
            out.print(part)
    for path, table_groups in groups.items():
        for table in render.breakdown_tables(out, path, table_groups, evaluation):
            out.print(table)
    for name, extra in evaluation.details.items():
        for key in ("parse_methods", "extraction"):
            if key in extra:
                counts = ", ".join(f"{k}: {v}" for k, v in extra[key].items())
                out.print(f"[dim]{name} {key.replace('_', ' ')}: {counts}[/dim]")
    out.print("[dim]signatures:[/dim]")
    for line in render.signature_lines(evaluation):
        out.print(f"[dim]  {escape(line)}[/dim]")


def _report_gaps(joined, base_eval) -> None:
    for label, j in (
        ("predictions", joined),
        ("baseline", base_eval.joined if base_eval else None),
    ):
        if j is None:
            continue
        for note in j.notes if label == "predictions" else ():  # a baseline's would repeat them
            console.note(note)
        if j.missing:
            console.warn(
                f"{len(j.missing)} of {len(j.references)} references have no prediction in "
                f"{j.predictions_label} ({label}: no line, or a null one); scored as empty "
                "predictions "
                f"(first: {j.missing[0]!r}; --strict makes this an error)"
            )
        if j.errored:
            lines = "line carries" if len(j.errored) == 1 else "lines carry"
            console.warn(
                f"{len(j.errored)} {lines} an error field in {j.predictions_label} ({label}); "
                f"scored as empty predictions (first: {j.errored[0]!r})"
            )
        if j.truncated:
            were = "answer was" if len(j.truncated) == 1 else "answers were"
            console.warn(
                f"{len(j.truncated)} of {len(j.references)} {were} cut at the token limit in "
                f"{j.predictions_label} ({label}): scored as they are, unfinished (first: "
                f"{j.truncated[0]!r}; infer's --max-new-tokens sets the limit)"
            )


def metrics_command() -> None:
    """List every metric, the task defaults and the normalisation presets.

    Examples:

        vlmkit metrics
    """
    from rich.table import Table

    from vlmkit.finetune.rewards import FORMAT, TASK_REWARDS, reward_rule
    from vlmkit.metrics import ANNOTATED_ANSWERS, METRICS, TASK_DEFAULTS, metric_class
    from vlmkit.normalize import describe_presets

    table = Table(title="metrics", title_justify="left")
    for column in ("name", "better", "scale", "what it is"):
        table.add_column(column)
    for name in METRICS:
        cls = metric_class(name)
        table.add_row(name, "higher" if cls.higher_is_better else "lower", cls.scale, cls.summary)
    console.stdout.print(table)
    variants = Table(title="variants (--variant METRIC=VARIANT; the first is the default)",
                     title_justify="left")  # fmt: skip
    for column in ("metric", "variant", "definition"):
        variants.add_column(column)
    for name in METRICS:
        for variant, definition in metric_class(name).variants.items():
            variants.add_row(name, variant, definition)
    console.stdout.print(variants)
    rewards = Table(title="rewards (finetune --objective grpo --reward NAME[=WEIGHT],...)",
                    title_justify="left")  # fmt: skip
    for column in ("reward", "from the per-sample value", "tasks"):
        rewards.add_column(column)
    for name in [*METRICS, FORMAT]:
        tasks_of = [task for task, names in TASK_REWARDS.items() if name in names]
        if name != FORMAT and metric_class(name).corpus_only:
            rewards.add_row(name, "no: a corpus-level figure, no per-sample value", "-")
        else:
            rewards.add_row(name, reward_rule(name), ", ".join(tasks_of))
    console.stdout.print(rewards)
    tasks = Table(title="defaults by task", title_justify="left")
    tasks.add_column("task")
    tasks.add_column("metrics")
    for name, names in TASK_DEFAULTS.items():
        extra = (
            f" (+ vqa_accuracy where every sample has {ANNOTATED_ANSWERS}+ answers)"
            if name == "vqa"
            else ""
        )
        tasks.add_row(name, ", ".join(names) + extra)
    console.stdout.print(tasks)
    presets = Table(title="normalisation (--norm)", title_justify="left")
    presets.add_column("name")
    presets.add_column("effect")
    for name, doc in describe_presets().items():
        presets.add_row(name, doc)
    console.stdout.print(presets)
