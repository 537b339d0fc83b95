"""Reporting: every report from one document model and one renderer.

* :mod:`.document` — the blocks a report is made of;
* :mod:`.render` — Markdown, self-contained HTML and terminal text from the same document;
* :mod:`.format` — every number's format and unit;
* :mod:`.plots` — the figures, each with a text alternative;
* :mod:`.comparison` — the comparison report, from stored records only.

The seed-claims suite builds its report from the same pieces
(:mod:`inertia.lab.claims.report`). Nothing here imports the runner or torch.
"""
