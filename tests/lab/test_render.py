"""One document, three renderings: Markdown, self-contained HTML and terminal text agree."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inertia.lab.reporting import format as fmt  # noqa: E402
from inertia.lab.reporting import render  # noqa: E402
from inertia.lab.reporting.document import Bullets, Document, Figure, Heading, Paragraph, Table  # noqa: E402


def test_one_document_three_outputs(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "f.png")
    plt.close(fig)
    doc = Document("Title").add(
        Heading("Section"), Paragraph("**Verdict.** a `code` [link](x.html) <tag>", "verdict", terminal=True),
        Bullets(["one | two"], terminal=True), Table(["a", "b"], [["1", "x|y"]], align=["r", "l"], note="a note"),
        Figure(tmp_path / "f.png", "Caption", "A line from 1 down to 0."))
    md = render.markdown(doc)
    assert "> **Verdict.**" in md and "| 1 | x\\|y |" in md and "|---:|---|" in md
    assert "![A line from 1 down to 0.](f.png)" in md and "a note" in md
    page = render.html(doc)
    assert "<strong>Verdict.</strong>" in page and "<code>code</code>" in page and '<a href="x.html">link</a>' in page
    assert "&lt;tag&gt;" in page and "alt='A line from 1 down to 0.'" in page and "data:image/png;base64," in page
    text = render.text(doc, width=80)
    assert "Verdict. a code link (x.html) <tag>" in text and "- one | two" in text
    assert "a  b" in text.splitlines()[text.splitlines().index("Section") + 4].replace(" ", "  ")[:4] or "x|y" in text
    assert "A line from" not in text  # figures stay in the files
    assert "A line from" in render.text(doc, width=80, everything=True)


def test_number_formats():
    assert fmt.metric(0.93612, "accuracy") == "93.6%" and fmt.metric(float("nan"), "accuracy", "diverged") == "diverged"
    assert fmt.metric(3.517e-06, "f(x, y)") == "3.517e-6" and fmt.metric(0.91234, "rmse") == "0.9123"
    assert fmt.lr(3e-4) == "3e-4" and fmt.lr(0.01) == "0.01" and fmt.lr(1e-5) == "1e-5"
    assert fmt.seconds(0.35) == "350 ms" and fmt.seconds(2.314) == "2.31 s" and fmt.seconds(185) == "3 min 05 s"
    assert fmt.seconds(float("inf")) == "never" and fmt.steps(float("inf")) == "never"
    assert fmt.nbytes(1536) == "1.5 KiB" and fmt.pvalue(0.0004) == "p < 0.001"
    assert fmt.interval(120, 100, 140, fmt.steps) == "120 [100–140]" and fmt.interval(5, 5, 5, fmt.steps) == "5"
    assert fmt.metric_difference(0.012, "accuracy") == "1.2 points"
