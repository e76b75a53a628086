"""The circled-letter task of *Vision Language Models Are Blind*: which letter is circled in red?

`config` says what a dataset is made of, `plan` checks it and enumerates the images, `render`
draws one (with `geometry`, the paper's canvas arithmetic), `generate` writes the folder.
"""

from vlmkit.synth.circled_letter.config import PRESETS, CircledLetterConfig, from_preset
from vlmkit.synth.circled_letter.generate import Summary, write_dataset
from vlmkit.synth.circled_letter.plan import Plan, Sample, make_plan

__all__ = [
    "PRESETS",
    "CircledLetterConfig",
    "Plan",
    "Sample",
    "Summary",
    "from_preset",
    "make_plan",
    "write_dataset",
]
