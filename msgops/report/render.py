"""Rendering: HTML (Jinja2, self-contained), a Markdown summary, and the report's metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from msgops.errors import UserError
from msgops.probes import registry
from msgops.report import inline_md
from msgops.report.model import SIGNOFF_ROLES, ReportModel
from msgops.report.signoff import Signature

META_ID = "msgops-report-meta"

_env = Environment(loader=PackageLoader("msgops.report", "templates"),
                   autoescape=select_autoescape(["html", "html.j2"], default_for_string=False, default=False),
                   trim_blocks=True, lstrip_blocks=True)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


_env.filters["pretty"] = _pretty


_env.filters["md"] = inline_md.to_html  # HTML: the seed wording's inline Markdown, everything else escaped
_env.filters["md_text"] = inline_md.md_text  # summary.md: Markdown text on one line
_env.filters["md_code"] = inline_md.md_code  # summary.md: one code span, nothing escaped inside


def _docs() -> dict[str, Any]:
    return {kind: probe.doc for kind, probe in registry().items()}


def html(model: ReportModel, signatures: list[Signature], meta: dict[str, Any]) -> str:
    meta_json = json.dumps(meta, sort_keys=True).replace("</", "<\\/")
    return _env.get_template("report.html.j2").render(
        m=model, signatures=signatures, roles=SIGNOFF_ROLES, docs=_docs(),
        meta=Markup(meta_json), meta_id=META_ID,
    )


def markdown(model: ReportModel, signatures: list[Signature]) -> str:
    return _env.get_template("summary.md.j2").render(m=model, signatures=signatures)


def meta(report: Path, inputs: list[Path], previous: list[Path], content_hash: str) -> dict[str, Any]:
    """What `msgops signoff` needs to re-render the report: input paths relative to the report."""

    def rel(p: Path) -> str:
        return os.path.relpath(p.resolve(), report.resolve().parent)

    return {"inputs": [rel(p) for p in inputs], "previous": [rel(p) for p in previous],
            "content_hash": content_hash}


def read_meta(report: Path) -> dict[str, Any]:
    try:
        text = report.read_text()
    except FileNotFoundError:
        raise UserError(f"report {report} not found; render it with `msgops report --out {report}`") from None
    marker = f'<script type="application/json" id="{META_ID}">'
    start = text.find(marker)
    if start < 0:
        raise UserError(f"{report} is not a msgops report (no metadata block); re-render it with `msgops report`")
    end = text.find("</script>", start)
    data: dict[str, Any] = json.loads(text[start + len(marker):end].replace("<\\/", "</"))
    base = report.resolve().parent
    data["inputs"] = [base / p for p in data["inputs"]]
    data["previous"] = [base / p for p in data["previous"]]
    return data
