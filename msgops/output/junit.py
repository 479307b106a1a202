"""JUnit XML for CI systems: one test suite per checklist section, one test case per item."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from msgops.results import Result

# Not evaluated, so never a passed test case: not applicable, not run (msgops lacked what it needs), manual.
_SKIPPED = ("skip", "not_run", "manual")


def render(results: Sequence[Result]) -> str:
    suites: dict[str, list[Result]] = {}
    for r in results:
        suites.setdefault(" / ".join([r.checklist, *r.section]), []).append(r)
    root = ET.Element("testsuites", name="msgops", tests=str(len(results)))
    for name, members in suites.items():
        suite = ET.SubElement(
            root, "testsuite", name=name, tests=str(len(members)),
            failures=str(sum(r.status == "fail" for r in members)),
            errors=str(sum(r.status == "error" for r in members)),
            skipped=str(sum(r.status in _SKIPPED for r in members)),
            time=f"{sum(r.duration_ms for r in members) / 1000:.3f}",
        )
        for r in members:
            case = ET.SubElement(suite, "testcase", name=f"{r.id.split('/', 1)[-1]}: {r.text}"[:200],
                                 classname=r.checklist, time=f"{r.duration_ms / 1000:.3f}")
            detail = json.dumps(r.evidence, indent=1, default=str)[:20000]
            if r.status == "fail":
                ET.SubElement(case, "failure", message=r.message, type=r.severity).text = detail
            elif r.status == "error":
                ET.SubElement(case, "error", message=r.message, type=r.severity).text = detail
            elif r.status in _SKIPPED:
                label = "not run: " if r.status == "not_run" else ""
                ET.SubElement(case, "skipped", message=label + r.message, type=r.status)
            if r.status in ("waived", "attested"):
                ET.SubElement(case, "system-out").text = r.message
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def write(results: Sequence[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results))
