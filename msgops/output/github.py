"""GitHub Actions workflow commands: each item that needs a look becomes an annotation on the run.

`::error` for what keeps the verdict from GO (gated failures, errors, items not run, missed or
unmeasured load thresholds), `::warning` for what is below the gate or accepted (ungated failures,
waivers, gated items not run in a run scoped on purpose), and one `::notice` with the verdict's
headline. Values are escaped as the Actions runner expects (see @actions/core's command.ts).
"""

from collections.abc import Sequence

from msgops.report.inline_md import to_plain
from msgops.results import Result
from msgops.verdict import SEVERITY_ORDER, Verdict

_ATTENTION = ("fail", "error", "not_run")


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, **properties: str) -> str:
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{kind}{' ' + props if props else ''}::{escape_data(message)}"


def _gated(verdict: Verdict, r: Result) -> bool:
    return r.severity in verdict.gate.split(",") and not r.optional


def _item(kind: str, r: Result, status: str) -> str:
    title = f"{status} [{r.severity}] {r.id}"
    return command(kind, f"{to_plain(r.text)}\n{to_plain(r.message)}", title=title)


def annotations(results: Sequence[Result], verdict: Verdict) -> str:
    """The workflow commands for a run, one per line, most severe first; ends with the verdict."""
    blocking = {b.id for b in verdict.blockers}
    errors: list[str] = []
    warnings: list[str] = []
    ordered = sorted(results, key=lambda r: SEVERITY_ORDER.index(r.severity) if r.severity in SEVERITY_ORDER
                     else len(SEVERITY_ORDER))
    for r in ordered:
        if r.status == "waived":
            why = (r.waiver or {}).get("justification") or r.message
            warnings.append(command("warning", f"{to_plain(r.text)}\nwaived: {to_plain(str(why))}",
                                    title=f"waived [{r.severity}] {r.id}"))
        elif r.status in _ATTENTION:
            status = r.status.replace("_", " ")
            if r.status == "not_run" and _gated(verdict, r) and verdict.scope and r.id not in blocking:
                warnings.append(_item("warning", r, f"{status} (scoped run)"))
            elif r.id in blocking or _gated(verdict, r):
                errors.append(_item("error", r, status))
            else:
                warnings.append(_item("warning", r, status))
    known = {r.id for r in results}
    for b in verdict.blockers + verdict.not_evaluated:
        if b.id not in known:  # load thresholds and the load generator
            known.add(b.id)
            errors.append(command("error", to_plain(b.reason), title=f"{b.status} [{b.severity}] {b.id}"))
    notice = command("notice", f"{verdict.headline}\n{to_plain(verdict.reason)}",
                     title=f"msgops verdict: {verdict.decision}")
    return "\n".join([*errors, *warnings, notice]) + "\n"


render = annotations  # `msgops check --output-format github` calls it by this name
