"""`vlmkit report`: one self-contained HTML page (and optional PNG charts) from `score`'s files.

Light on purpose: Pillow for thumbnails, matplotlib only for `--png`; nothing here prints.
"""

from __future__ import annotations

from vlmkit.report.build import Report, ReportOptions, build_report
from vlmkit.report.page import render_page

__all__ = ["Report", "ReportOptions", "build_report", "render_page"]
