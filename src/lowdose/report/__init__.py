"""Saved results -> figures, report.md and a self-contained report.html (never imports torch).

A face for users (docs/architecture.md): lowdose modules never import through it.
"""

from lowdose.report.build import write_report

__all__ = ["write_report"]
