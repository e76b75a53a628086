"""Paired bootstrap resampling: is the tuned model better than the baseline, or is it noise?

Both systems are scored on the same resampled sets of samples (Koehn 2004). Because every metric
is a function of summed per-sample statistics, a resample is a weighted column sum, computed for
all metrics of both systems in one matrix product. The p-value follows sacrebleu's paired
bootstrap test: the resampled absolute differences are centred on zero to stand for the null
hypothesis, and p = (1 + #{centred >= observed}) / (1 + resamples). One deliberate difference:
sacrebleu counts `centred > observed`, which gives a system compared with itself (all
differences zero) p = 1/(1 + resamples), "significant"; counting ties gives it p = 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vlmkit.scoring import MetricResult

# Resamples per matrix product: bounds memory at chunk * n_samples weights.
_CHUNK = 64


@dataclass(frozen=True)
class Comparison:
    """One metric, system vs baseline."""

    metric: str
    system: float
    baseline: float
    delta: float
    """system - baseline, on the metric's own scale (negative is better for error rates)."""
    delta_ci95: tuple[float, float]
    system_ci95: tuple[float, float]
    baseline_ci95: tuple[float, float]
    p_value: float
    resamples: int

    def to_json(self) -> dict[str, object]:
        return {
            "system": self.system,
            "baseline": self.baseline,
            "delta": self.delta,
            "delta_ci95": list(self.delta_ci95),
            "system_ci95": list(self.system_ci95),
            "baseline_ci95": list(self.baseline_ci95),
            "p_value": self.p_value,
            "resamples": self.resamples,
        }


def _resample_weights(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield (chunk, n) matrices whose rows count how often each sample was drawn."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < resamples:
        chunk = min(_CHUNK, resamples - done)
        draws = rng.integers(0, n, size=(chunk, n))
        # Offsetting each row's draws by row * n lets one bincount count all rows at once.
        flat = (draws + (np.arange(chunk) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=chunk * n).reshape(chunk, n).astype(np.float64)
        done += chunk


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(
    system: dict[str, MetricResult],
    baseline: dict[str, MetricResult],
    *,
    resamples: int = 1000,
    seed: int = 12345,
) -> dict[str, Comparison]:
    """Compare two systems scored on the same samples in the same order."""
    names = [name for name in system if name in baseline]
    blocks, spans, start = [], {}, 0
    for name in names:
        for side, result in (("system", system[name]), ("baseline", baseline[name])):
            blocks.append(result.stats)
            spans[name, side] = slice(start, start + result.stats.shape[1])
            start += result.stats.shape[1]
    if not names:
        return {}
    stacked = np.hstack(blocks)
    n = stacked.shape[0]
    scores = {key: np.empty(resamples) for key in spans}
    done = 0
    for weights in _resample_weights(n, resamples, seed):
        totals = weights @ stacked
        for (name, side), cols in spans.items():
            result = system[name] if side == "system" else baseline[name]
            scores[name, side][done : done + len(totals)] = [
                result.value_of(row[cols]) for row in totals
            ]
        done += len(totals)

    out = {}
    for name in names:
        sys_value, base_value = system[name].value, baseline[name].value
        sys_scores, base_scores = scores[name, "system"], scores[name, "baseline"]
        deltas = sys_scores - base_scores
        observed = abs(sys_value - base_value)
        centred = np.abs(deltas) - np.abs(deltas).mean()
        p_value = (int(np.sum(centred >= observed)) + 1) / (resamples + 1)
        out[name] = Comparison(
            metric=name,
            system=sys_value,
            baseline=base_value,
            delta=sys_value - base_value,
            delta_ci95=_interval(deltas),
            system_ci95=_interval(sys_scores),
            baseline_ci95=_interval(base_scores),
            p_value=p_value,
            resamples=resamples,
        )
    return out
