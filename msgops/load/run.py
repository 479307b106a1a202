"""One `msgops load` run: profile -> target -> provision -> Locust -> cleanup -> results -> verdict."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from msgops import apimap, config, realtimemap
from msgops.errors import EXIT_NOT_EVALUATED, UserError
from msgops.load import identities, locust_process, operations, summary
from msgops.load.display import render
from msgops.load.measure import Measurements
from msgops.load.memory import MemoryProbe, http_client
from msgops.load.plan import Plan, organizers_needed, seed_limit_problem
from msgops.load.profile import Profile, ProfileError, load_profile
from msgops.load.progress import LiveProgress
from msgops.load.provision import Provisioned, Provisioner
from msgops.loadresults import LoadResults, write_results
from msgops.paths import loadtests_dir
from msgops.personas import model as personas_model
from msgops.verdict import Verdict, evaluate


@dataclass
class LoadOptions:
    profile: str = "smoke"
    target_file: Path | None = None
    api_url: str | None = None
    database_url: str | None = None
    users: int | None = None
    connections: int | None = None
    rate: float | None = None
    duration: float | None = None
    processes: int = 1
    master: bool = False
    expect_workers: int = 1
    master_bind_port: int | None = None
    worker: bool = False
    master_host: str | None = None
    master_port: int | None = None
    json_out: Path = Path("msgops-out") / "load.json"
    html_out: Path | None = None
    keep_data: bool = False
    show_progress: bool = True
    target: config.Target | None = None  # already resolved (msgops gate); else resolved from the options


def _profile(opts: LoadOptions) -> Profile:
    profile = load_profile(opts.profile)
    try:
        return profile.with_overrides(opts.users, opts.connections, opts.rate, opts.duration)
    except ValueError as exc:
        raise ProfileError(f"{opts.profile}: the overrides make the profile invalid: {exc}") from None


def _health(api_url: str) -> dict[str, Any]:
    try:
        with http_client(api_url, timeout=10) as http:
            r = http.get(api_url.rstrip("/") + "/health")
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach {api_url} ({type(exc).__name__}): start the target or fix --api-url",
                        EXIT_NOT_EVALUATED) from None
    try:
        body = r.json()
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}


def _generators(opts: LoadOptions) -> int:
    if opts.master:
        return max(1, opts.expect_workers)
    return max(1, opts.processes)


def _notes(profile: Profile, results: LoadResults) -> list[str]:
    notes = []
    limited = int(results.metric("http.rate_limited") or 0)
    if limited:
        if profile.requires.rate_limits == "off":
            notes.append(f"{limited} requests were rate limited (429): this profile needs the target to run "
                         "with MSGOPS_RATE_LIMITS=off (`MSGOPS_RATE_LIMITS=off msgops serve`)")
        else:
            notes.append(f"{limited} requests were rate limited (429): provision more users "
                         "(provision.users) so each stays under the per-user limits")
    reason = getattr(results.generator, "reason", None)
    if reason and not results.generator.saturated:
        notes.append(str(reason))
    return notes


def run_worker(opts: LoadOptions, console: Console) -> int:
    """This machine adds workers to a master elsewhere; the master has the plan and the results."""
    run_dir = Path(tempfile.mkdtemp(prefix="msgops-load-worker-"))
    options = locust_process.LocustOptions(
        locustfile=loadtests_dir() / "messaging.py", host="", users=0, spawn_rate=1, run_s=0,
        processes=opts.processes, worker=True, master_host=opts.master_host, master_port=opts.master_port)
    console.print(f"worker(s) for the master at {opts.master_host}; Ctrl-C to stop")
    try:
        locust_process.run(options, run_dir, None, timeout_s=7 * 24 * 3600)
    except locust_process.LocustFailed as exc:
        raise UserError(str(exc), EXIT_NOT_EVALUATED) from None
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def execute(opts: LoadOptions, console: Console) -> tuple[LoadResults, Verdict]:
    profile = _profile(opts)
    if profile.requires.rate_limits == "seed":
        problem = seed_limit_problem(profile)
        if problem:
            raise ProfileError(f"{opts.profile}: {problem}")
    target = opts.target or config.resolve(opts.target_file, api_url=opts.api_url, database_url=opts.database_url)
    if not target.api_url:
        raise UserError("no target: pass --api-url, set MSGOPS_API_URL, or start `msgops serve`")
    signing, key = identities.signing_source(target.personas, {**os.environ, **dict(target.env)}, target.jwt_secret)
    api = apimap.parse(target.api)
    requests = operations.bind(api, operations.workload(profile))  # exit 3 before the target is contacted
    people = personas_model.parse(target.personas or {"source": "hs256"})
    if not opts.master:  # a master's workers run elsewhere, under their own limits
        locust_process.file_descriptors(profile.users.listener, _generators(opts))
    api_url = target.api_url.rstrip("/")
    run_id = uuid.uuid4().hex[:8]
    signer = identities.LoadSigner(signing, key, ttl_s=int(profile.run_s) + 3600, label=f"msgops load {run_id}")
    provisioner = Provisioner(api_url, signer, run_id, database_url=target.database_url, api=api, people=people)
    provisioner.check(profile)  # exit 3 before the target is contacted
    health = _health(api_url)
    if profile.requires.rate_limits == "off":
        console.print("[dim]this profile needs the target's rate limits off (MSGOPS_RATE_LIMITS=off)[/]")
    run_dir = Path(tempfile.mkdtemp(prefix=f"msgops-load-{run_id}-"))
    organizers = organizers_needed(profile)
    with console.status(f"provisioning for {profile.name} ({profile.provision.via})") as status:
        provisioned = asyncio.run(provisioner.provision(profile, organizers, lambda s: status.update(s)))
    ok = False
    try:
        plan = _plan(profile, provisioned, signer, run_id, api_url, run_dir, _generators(opts))
        plan.operations = {action: op.to_dict() for action, op in requests.items()}
        realtime = realtimemap.parse(target.realtime)  # msgops.yaml realtime: (the probes' adapter)
        plan.realtime_protocol, plan.realtime_path = realtime.protocol, realtime.path
        plan.realtime_namespace = realtime.namespace
        plan.realtime_auth, plan.realtime_events = dict(realtime.auth), dict(realtime.events)
        plan.realtime_fields = dict(realtime.fields)
        plan.live = opts.show_progress
        realtime_label = (f"Socket.IO ({realtime.path}, namespace {realtime.namespace})"
                          if realtime.protocol == "socketio" else f"WebSocket ({realtime.path})")
        plan_file = run_dir / "plan.json"
        plan.write(plan_file)
        final, started, finished, memory = _run_locust(opts, profile, plan, plan_file, run_dir, console, key)
        ok = True
    finally:
        if not opts.keep_data:
            with console.status("removing the run's users and conversations"):
                asyncio.run(provisioner.cleanup(provisioned))
            for line in provisioner.leftovers:
                console.print(f"[yellow]{line}[/]")
        if not ok:
            console.print(f"[dim]run files kept in {run_dir}[/]")
    environment = health.get("environment") or target.environment
    info = summary.RunInfo(profile=profile, api_url=api_url, environment=environment,
                           version=health.get("version"), started_at=started, finished_at=finished,
                           memory_mb=memory, users_planned=max(1, profile.users.total),
                           realtime=realtime_label, operations=requests)
    results = summary.build(Measurements.from_dict(final), info)
    write_results(results, opts.json_out)
    # The profile's own copy, so that checks of several profiles each find their run.
    write_results(results, opts.json_out.with_name(f"load-{profile.name}.json"))
    verdict = evaluate([], loads=[results])
    render(console, results, verdict, _notes(profile, results))
    log = opts.json_out.with_suffix(".locust.log")
    shutil.copyfile(run_dir / "locust.log", log)  # Locust's own errors, for when numbers look odd
    console.print(f"[dim]results: {opts.json_out}; Locust's log: {log}"
                  + (f"; Locust's report: {opts.html_out}" if opts.html_out else "") + "[/]")
    shutil.rmtree(run_dir, ignore_errors=True)
    return results, verdict


def _plan(profile: Profile, provisioned: Provisioned, signer: identities.LoadSigner, run_id: str, api_url: str,
          run_dir: Path, generators: int) -> Plan:
    seeded = provisioned.ids_from_seed
    return Plan(
        run_id=run_id, api_url=api_url, out_dir=str(run_dir), generators=generators,
        layout=provisioned.layout, signing=signer.plan_entry(),
        conversations=[] if seeded else provisioned.conversations,
        communities=[] if seeded else provisioned.communities,
        users=profile.users.model_dump(),
        pacing=profile.pacing.model_dump(), reader_mix=profile.reader_mix.model_dump(),
        open=profile.open.model_dump(), send_after_s=profile.send_after_s, send_for_s=profile.duration,
        drain_s=profile.drain_s, delivery_timeout_s=profile.delivery_timeout, http_timeout_s=profile.http_timeout,
    )


def _run_locust(opts: LoadOptions, profile: Profile, plan: Plan, plan_file: Path, run_dir: Path,
                console: Console, key: str) -> tuple[dict[str, Any], Any, Any, float | None]:
    users = profile.users.total or 1  # the Idle class stands in for a pure open-model profile
    options = locust_process.LocustOptions(
        locustfile=loadtests_dir() / "messaging.py", host=plan.api_url, users=users,
        spawn_rate=profile.spawn_rate, run_s=plan.run_s, processes=opts.processes, master=opts.master,
        expect_workers=opts.expect_workers, master_bind_port=opts.master_bind_port, html=opts.html_out)
    memory = MemoryProbe(plan.api_url)
    started = summary.now()
    title = f"{profile.name}: {users} users" + (f", {profile.open.messages:g} msg/s" if profile.open.messages else "")
    try:
        with LiveProgress(console, title, plan.run_s, opts.show_progress) as progress:

            def tick(live: dict[str, Any] | None) -> None:
                memory.sample()
                progress.update(live)

            # The signing key reaches the Locust processes on this machine through their environment
            # only; workers elsewhere without it receive their share's tokens from the master.
            final = locust_process.run(options, run_dir, plan_file, tick,
                                       timeout_s=plan.run_s + math.ceil(max(120.0, plan.run_s)),
                                       env={identities.KEY_ENV: key})
    except locust_process.LocustFailed as exc:
        raise UserError(str(exc), EXIT_NOT_EVALUATED) from None
    finally:
        memory.close()
    assert final is not None
    return final, started, summary.now(), memory.peak_mb
