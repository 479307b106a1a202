"""The Python API: what the CLI does, callable from code.

    import msgops

    target = msgops.resolve_target(api_url="https://staging.example.com")   # flags > env > msgops.yaml
    run = msgops.run_checks(target, msgops.Selection(tags=("rls",)))
    print(run.verdict.headline)              # "GO — 12 of 12 automated checks ran (scoped: tags rls)"
    run.write_json("out/results.json")
    raise SystemExit(run.verdict.exit_code)

Nothing here prints: the CLI parses flags, calls these functions and renders what they return.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from msgops import config, preflight
from msgops.checklist import Checklist, ChecklistError, Item, load_checklists, load_selection, split_selection
from msgops.checklist.loader import looks_like_path
from msgops.engine import RunOptions, run_items
from msgops.errors import UserError
from msgops.loadresults import LoadResults
from msgops.output import json_report, junit
from msgops.probes import Context
from msgops.results import Result
from msgops.verdict import GatePolicy, Verdict, evaluate
from msgops.waivers import load_attestations, load_waivers, unknown_ids

Target = config.Target
OnResult = Callable[[Result], None]


def resolve_target(config_path: str | os.PathLike[str] | None = None, *, api_url: str | None = None,
                   database_url: str | None = None, environment: str | None = None) -> Target:
    """The target to check: flags (these arguments) > environment > msgops.yaml > a local `msgops serve`."""
    return config.resolve(Path(config_path) if config_path else None, api_url=api_url, database_url=database_url,
                          environment=environment)


@dataclass(frozen=True)
class Selection:
    """Which items run. Any narrowing makes the run *scoped*: gated items outside it are not run on
    purpose, and the verdict and report say so.

    `checklists` holds built-in ids (`000-messaging-production`) or paths to checklist files/folders."""

    checklists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    reason: str | None = None  # why the run is scoped (from msgops.yaml's `scope:`)

    @property
    def scoped(self) -> bool:
        return bool(self.checklists or self.tags or self.only)

    def describe(self) -> str | None:
        if not self.scoped:
            return None
        parts = [f"{name} {', '.join(values)}" for name, values in
                 (("checklists", self.checklists), ("tags", self.tags), ("only", self.only)) if values]
        return "; ".join(parts) + (f" — {self.reason}" if self.reason else "")

    def merged(self, other: Selection) -> Selection:
        """This selection narrowed further by `other` (flags on top of msgops.yaml's scope)."""
        return Selection(self.checklists + other.checklists, self.tags + other.tags, self.only + other.only,
                         self.reason or other.reason)


def target_selection(target: Target) -> Selection:
    """The `scope:` a target's msgops.yaml declares, as a selection."""
    scope = getattr(target, "scope", None)
    if scope is None:
        return Selection()
    return Selection(tuple(scope.checklists), tuple(scope.tags), tuple(scope.only), scope.reason)


def load(selection: Selection = Selection(), extra: Sequence[str | os.PathLike[str]] = ()) -> list[Checklist]:
    """The checklists a run draws from: every built-in plus the files `extra` names (msgops.yaml's
    `checklists:`), narrowed to what `selection.checklists` names — ids of those, or paths of other
    checklist files and folders. Every problem of every file is reported at once (UserError)."""
    try:
        available = load_selection(None, list(extra))
        if not selection.checklists:
            return available
        by_id = {c.id: c for c in available}
        ids = [s for s in selection.checklists if s in by_id and not looks_like_path(s)]
        _, paths = split_selection([s for s in selection.checklists if s not in ids])
        custom = load_checklists(paths) if paths else []
    except ChecklistError as exc:
        raise UserError("\n".join(exc.problems)) from None
    chosen = {i: by_id[i] for i in dict.fromkeys(ids)}
    for checklist in custom:
        same = chosen.get(checklist.id) or by_id.get(checklist.id)
        if same is not None and same.path != checklist.path:
            raise UserError(f"checklist id {checklist.id!r} is used by {same.path} and {checklist.path}: "
                            "give the custom checklist another id")
        chosen[checklist.id] = checklist
    return list(chosen.values())


def select(checklists: Sequence[Checklist], selection: Selection) -> list[Item]:
    items = [i for c in checklists for i in c.items]
    if selection.tags:
        items = [i for i in items if set(selection.tags) & set(i.tags)]
    if selection.only:
        items = [i for i in items if i.full_id in selection.only or i.id in selection.only]
        found = {i.full_id for i in items} | {i.id for i in items}
        missing = [o for o in selection.only if o not in found]
        if missing:
            raise UserError(f"--only: no item {missing[0]!r} in the selected checklists "
                            "(see `msgops checklists list`)")
    if not items:
        raise UserError("no checklist item matches the selection (--checklist/--tags/--only, or scope: "
                        "in msgops.yaml)")
    return items


@dataclass
class CheckRun:
    """One run of checks: its results in checklist order, the verdict, and what was asked."""

    target: Target
    checklists: list[Checklist]
    results: list[Result]
    verdict: Verdict
    policy: GatePolicy
    selection: Selection
    preflight: preflight.Preflight
    started_at: datetime
    finished_at: datetime
    warnings: list[str] = field(default_factory=list)

    @property
    def document(self) -> dict[str, Any]:
        """The versioned JSON results (schema msgops.check-results)."""
        return json_report.build(self.results, self.checklists, self.target.describe(), self.policy, self.verdict,
                                 self.started_at, self.finished_at, scope=self.selection.describe(),
                                 preflight=self.preflight.to_dict())

    def write_json(self, path: str | os.PathLike[str]) -> None:
        json_report.write(self.document, Path(path))

    def write_junit(self, path: str | os.PathLike[str]) -> None:
        junit.write(self.results, Path(path))


def _options(target: Target, options: RunOptions | None, waivers: Path | None,
             attestations: Path | None) -> RunOptions:
    opts = options or RunOptions(concurrency=target.checks.concurrency, timeout_s=target.checks.timeout_s,
                                 retries=target.checks.retries)
    waiver_path, attest_path = waivers or target.waivers, attestations or target.attestations
    if waiver_path:
        opts.waivers = load_waivers(waiver_path)
    if attest_path:
        opts.attestations = load_attestations(attest_path)
    return opts


def _unknown_ids(opts: RunOptions, checklists: Sequence[Checklist]) -> list[str]:
    known = [i.full_id for c in checklists for i in c.items]
    return ([f"waiver for {wid!r} names no checklist item; check the id (msgops checklists list)"
             for wid in unknown_ids(opts.waivers, known)]
            + [f"attestation for {aid!r} names no checklist item; check the id (msgops checklists list)"
               for aid in unknown_ids(opts.attestations, known)])


@dataclass
class Planned:
    """What a run will do: the selection in force (msgops.yaml's scope plus flags), its items, and
    the preflight (what can run against this target, what cannot and why)."""

    selection: Selection
    checklists: list[Checklist]
    items: list[Item]
    preflight: preflight.Preflight


def select_items(target: Target, selection: Selection = Selection()) -> tuple[Selection, list[Checklist], list[Item]]:
    """The selection in force (msgops.yaml's scope plus `selection`), its checklists and items."""
    selection = target_selection(target).merged(selection)
    available = load(selection, getattr(target, "checklists", ()))
    items = select(available, selection)
    chosen_ids = {i.checklist_id for i in items}
    return selection, [c for c in available if c.id in chosen_ids], items


def plan(target: Target, selection: Selection = Selection()) -> Planned:
    """What a run would do, without running anything. Raises UserError for bad input, including a
    target with nothing configured for the selected checks."""
    selection, checklists, items = select_items(target, selection)
    return Planned(selection, checklists, items, preflight.describe(target, items))


async def run_checks_async(target: Target, selection: Selection = Selection(), policy: GatePolicy = GatePolicy(),
                           options: RunOptions | None = None, *, waivers: Path | None = None,
                           attestations: Path | None = None, on_result: OnResult | None = None,
                           on_plan: Callable[[Planned], None] | None = None) -> CheckRun:
    """Run the selected checks against `target` and judge them. Raises UserError for bad input."""
    planned = plan(target, selection)
    opts = _options(target, options, waivers, attestations)
    warnings = _unknown_ids(opts, planned.checklists)
    started = json_report.now()
    families = {i.check.family for i in planned.items if i.check}
    opts.unreachable = await preflight.unreachable(target, families)
    planned.preflight.mark_unreachable(opts.unreachable)
    if on_plan:
        on_plan(planned)
    ctx = Context(target)
    try:
        results = await run_items(planned.items, ctx, opts, on_result)
    finally:
        await ctx.close()
    warnings += [f"left in the target: {line}" for line in ctx.leftovers]  # clean-up says what it could not erase
    finished = json_report.now()
    verdict = evaluate(results, policy, scope=planned.selection.describe())
    return CheckRun(target, planned.checklists, results, verdict, policy, planned.selection, planned.preflight,
                    started, finished, warnings)


def run_checks(target: Target, selection: Selection = Selection(), policy: GatePolicy = GatePolicy(),
               options: RunOptions | None = None, **kwargs: Any) -> CheckRun:
    """`run_checks_async` for code that has no event loop running."""
    return asyncio.run(run_checks_async(target, selection, policy, options, **kwargs))


def judge(run: CheckRun | None = None, loads: Sequence[LoadResults] = ()) -> Verdict:
    """The verdict over a check run and load runs together (what `msgops gate` decides on)."""
    if run is None:
        return evaluate([], loads=loads)
    return evaluate(run.results, run.policy, loads, run.selection.describe())
