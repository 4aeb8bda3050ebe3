"""Sphinx configuration of the fastbn documentation.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
fastbn must be importable (installed, or ``PYTHONPATH=src`` after ``setup.py build_ext --inplace``):
the API pages are generated from the docstrings of the compiled package.
"""
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives

import fastbn

project = "fastbn"
author = "the fastbn developers"
copyright = "the fastbn developers"
release = fastbn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
]
# The performance report is Markdown (written by the benchmark), read by the directive below.
exclude_patterns = ["_build", "_templates", "benchmark-report*.md"]
templates_path = ["_templates"]
html_theme = "alabaster"
html_title = f"fastbn {release}"
html_static_path = []

autosummary_generate = True          # one page per public name, under api/generated/
autodoc_typehints = "none"           # the numpydoc Parameters sections say the types
autodoc_preserve_defaults = True    # signatures show `dtype=np.float32`, as written
numpydoc_show_class_members = False  # the class pages list their methods through autosummary
numpydoc_class_members_toctree = False
# No network at build time: intersphinx links are off unless a mapping is added here.
intersphinx_mapping = {}


# ---- the benchmark report ---------------------------------------------------------------------
# `python -m fastbn.bench --update-readme docs/benchmark-report.md` rewrites the Markdown between
# the bench markers of that file; `.. bench-report:: benchmark-report.md` renders its paragraphs and
# pipe tables here, so the report has one source and needs no Markdown parser.

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _markdown_inline(text):
    """Markdown `code` as reStructuredText ``code``."""
    return re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", text)


def _table(lines):
    """A docutils table from Markdown pipe-table lines (header, rule, rows)."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    header, body = rows[0], [r for r in rows[2:]]
    width = len(header)
    table = nodes.table(classes=["bench-report"])
    group = nodes.tgroup(cols=width)
    table += group
    for _ in range(width):
        group += nodes.colspec(colwidth=1)

    def row(cells):
        r = nodes.row()
        for cell in (cells + [""] * width)[:width]:
            entry = nodes.entry()
            entry += nodes.paragraph(text=cell)
            r += entry
        return r

    head = nodes.thead()
    head += row(header)
    group += head
    tbody = nodes.tbody()
    for cells in body:
        tbody += row(cells)
    group += tbody
    return table


class BenchReport(Directive):
    """Render the Markdown between the bench markers of a file (paragraphs and pipe tables)."""

    required_arguments = 1
    has_content = False
    option_spec = {"encoding": directives.encoding}

    def run(self):
        env = self.state.document.settings.env
        rel, path = env.relfn2path(self.arguments[0])
        env.note_dependency(rel)
        text = Path(path).read_text(encoding="utf-8")
        if START not in text or END not in text:
            raise self.error(f"{rel}: no {START} ... {END} markers")
        block = text.split(START, 1)[1].split(END, 1)[0]
        result, table, para = [], [], []

        def flush():
            if table:
                result.append(_table(table))
                table.clear()
            if para:
                container = nodes.container()
                self.state.nested_parse(
                    self._string_list([_markdown_inline(" ".join(para))], path),
                    self.content_offset, container)
                result.extend(container.children)
                para.clear()

        for line in block.splitlines():
            if line.lstrip().startswith("|"):
                if para:
                    flush()
                table.append(line)
            elif line.strip():
                if table:
                    flush()
                para.append(line.strip())
            else:
                flush()
        flush()
        return result

    @staticmethod
    def _string_list(lines, source):
        from docutils.statemachine import StringList
        return StringList(lines, source=source)


def setup(app):
    app.add_directive("bench-report", BenchReport)
    return {"parallel_read_safe": True}
