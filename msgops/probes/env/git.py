"""env.dotenv_ignored and env.no_secrets_in_git: what the target's git repository gives away.

Both run `git` against `target.repo` (msgops.yaml `repo:`, default the current directory) and skip
when it is not a git work tree or git is not installed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import posixpath
import shutil
from pathlib import Path
from typing import Any

from msgops.probes import probe
from msgops.probes.context import CannotEvaluate, Context, NotRun
from msgops.probes.env.secret_patterns import PATTERN_NAMES, PRAGMA, scan_line
from msgops.results import Outcome, failed, passed

MAX_COMMITS = 5000          # newest commits (all refs) the history scan reads
MAX_BYTES = 64 * 1024 * 1024  # of `git log -p` output
MAX_LINE = 4096             # longer lines (minified files) are scanned up to here
MAX_FINDINGS = 20           # shown in evidence
_TEMPLATE_SUFFIXES = frozenset({"example", "sample", "template", "dist", "tmpl", "schema"})
_DOTENV_PATHSPECS = (":(glob)**/.env", ":(glob)**/.env.*", ":(glob)**/*.env")


def is_dotenv(path: str) -> bool:
    """`.env`, `.env.production`, `prod.env` — but not `.env.example` and friends."""
    name = posixpath.basename(path)
    if name == ".env" or (name.endswith(".env") and len(name) > 4):
        return True
    return name.startswith(".env.") and name.rsplit(".", 1)[-1].lower() not in _TEMPLATE_SUFFIXES


async def _git(repo: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("git", "-C", str(repo), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def work_tree(ctx: Context) -> Path:
    """The top of the target's git work tree, or NotRun saying why there is none."""
    if shutil.which("git") is None:
        raise NotRun("git is not installed: install git to inspect the repository")
    repo = Path(ctx.target.repo)
    if not repo.is_dir():
        raise NotRun(f"{repo} is not a directory: set `repo:` in msgops.yaml to the project's git repository")
    code, out = await _git(repo, "rev-parse", "--show-toplevel")
    if code != 0:
        raise NotRun(f"{repo} is not a git repository: set `repo:` in msgops.yaml to the project's repository")
    return Path(out.strip())


@probe(
    "env.dotenv_ignored",
    what="In the target's git repository, `.env` is ignored by .gitignore, no .env file is tracked, and none "
         "was ever added in any branch's history.",
    why="A committed .env publishes every secret in it to everyone with the repository, forever (history "
        "keeps it after the file is deleted).",
    example="`.env` added in commit 1a2b3c4 and later removed still fails: the secrets are in history.",
    fix="Add `.env` to .gitignore, `git rm --cached .env`, rotate every secret it held, and purge it from "
        "history (git filter-repo) if the repository is shared.",
)
async def dotenv_ignored(ctx: Context) -> Outcome:
    top = await work_tree(ctx)
    code, rule = await _git(top, "check-ignore", "--no-index", "-v", ".env")
    if code not in (0, 1):
        raise CannotEvaluate(f"git check-ignore failed in {top}")
    ignored = code == 0
    _, listed = await _git(top, "ls-files", "-z", "--", *_DOTENV_PATHSPECS)
    tracked = sorted(p for p in listed.split("\0") if p and is_dotenv(p))
    _, log = await _git(top, "log", "--all", "--diff-filter=A", "--name-only", "--format=%x00%h %cs",
                        "--", *_DOTENV_PATHSPECS)
    added: list[dict[str, str]] = []
    commit, date = "", ""
    for line in log.splitlines():
        if line.startswith("\0"):
            commit, _, date = line[1:].strip().partition(" ")
        elif line.strip() and is_dotenv(line.strip()):
            added.append({"commit": commit, "date": date, "path": line.strip()})
    evidence: dict[str, Any] = {"repo": str(top), "ignored": ignored,
                                "ignore_rule": rule.split("\t")[0] if ignored else None,
                                "tracked": tracked, "added_in_history": added[:MAX_FINDINGS]}
    problems = [] if ignored else [".env is not ignored by .gitignore"]
    if tracked:
        problems.append(f"tracked: {', '.join(tracked)}")
    if added:
        first = added[-1]  # git log lists newest first
        problems.append(f"{len(added)} .env file(s) added in history (e.g. {first['path']} in {first['commit']})")
    if problems:
        return failed("; ".join(problems), **evidence)
    return passed(".env is ignored and was never committed", **evidence)


class _HistoryScan:
    """Reads `git log -p` output line by line, keeping the current commit and file."""

    def __init__(self) -> None:
        self.commit = ""
        self.date = ""
        self.path = ""
        self.in_hunk = False
        self.commits = 0
        self.findings: list[dict[str, str]] = []
        self.seen: set[tuple[str, str, str]] = set()

    def feed(self, line: str) -> None:
        if line.startswith("\0"):
            self.commit, _, self.date = line[1:].strip().partition(" ")
            self.in_hunk = False
            self.commits += 1
        elif line.startswith("diff --git "):
            self.in_hunk, self.path = False, line.rsplit(" b/", 1)[-1]
        elif line.startswith("+++ ") and not self.in_hunk:
            self.path = line[6:] if line.startswith("+++ b/") else self.path
        elif line.startswith("@@"):
            self.in_hunk = True
        elif self.in_hunk and line.startswith("+"):
            for match in scan_line(line[1:MAX_LINE]):
                key = (match.pattern, match.masked, self.path)
                if key not in self.seen:
                    self.seen.add(key)
                    self.findings.append({"commit": self.commit, "date": self.date, "file": self.path,
                                          "pattern": match.pattern, "match": match.masked})


ALLOW_FILE = ".msgops-allow-secrets"


def allowed_paths(top: Path) -> list[str]:
    """Path globs whose findings are known fixtures (like gitleaks' allowlisted paths), one per line."""
    path = top / ALLOW_FILE
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(errors="replace").splitlines())
    return [line for line in lines if line]


async def _scan_history(top: Path) -> tuple[_HistoryScan, bool]:
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", str(top), "log", "-p", "--all", "--no-color", "--no-ext-diff", "--no-textconv", "-U0",
        f"--max-count={MAX_COMMITS}", "--format=%x00%h %cs", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, limit=MAX_LINE * 64)
    assert proc.stdout is not None
    scan, read, truncated = _HistoryScan(), 0, False
    try:
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line beyond the buffer limit: skip what is left of it
                raw = await proc.stdout.read(MAX_LINE * 64)
                read += len(raw)
                continue
            if not raw:
                break
            read += len(raw)
            if read > MAX_BYTES:
                truncated = True
                break
            scan.feed(raw.decode(errors="replace").rstrip("\n"))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return scan, truncated


@probe(
    "env.no_secrets_in_git",
    what="Scans every branch's git history (added lines of the newest commits) for credentials: private keys, "
         "AWS access key ids, service_role JWTs, PostgreSQL URLs with passwords, Slack tokens and webhooks, and "
         "high-entropy SECRET/TOKEN/PASSWORD assignments.",
    why="A secret pushed once stays readable in history after it is deleted; scrapers find public ones in minutes.",
    example="Commit 9f8e7d6 adding `AWS_ACCESS_KEY_ID=AKIA…` to deploy/config.sh fails, naming the commit and file.",
    fix=f"Rotate the secret first, then remove it from history (git filter-repo) and load it from the environment. "
        f"A line that is a known false positive can carry `{PRAGMA}`; files of known fixtures (a secret "
        f"scanner's own tests) can be listed as path globs in `{ALLOW_FILE}` at the repository root.",
)
async def no_secrets_in_git(ctx: Context) -> Outcome:
    top = await work_tree(ctx)
    scan, truncated = await _scan_history(top)
    allow = allowed_paths(top)
    allowed = [f for f in scan.findings if any(fnmatch.fnmatch(f["file"], glob) for glob in allow)]
    scan.findings = [f for f in scan.findings if f not in allowed]
    evidence: dict[str, Any] = {"repo": str(top), "commits_scanned": scan.commits, "patterns": list(PATTERN_NAMES),
                                "findings": scan.findings[:MAX_FINDINGS], "findings_total": len(scan.findings)}
    if allow:  # never silent: what the allowlist hid is part of the evidence
        evidence["allowlist"] = {"file": ALLOW_FILE, "paths": allow, "findings_allowed": len(allowed)}
    if truncated or scan.commits >= MAX_COMMITS:
        evidence["bounded"] = f"newest {scan.commits} commits (limits: {MAX_COMMITS} commits, {MAX_BYTES >> 20} MiB)"
    if scan.findings:
        first = scan.findings[0]
        return failed(f"{len(scan.findings)} secret(s) in git history, e.g. {first['pattern']} in {first['file']} "
                      f"at {first['commit']}", **evidence)
    scope = evidence.get("bounded", f"{scan.commits} commits")
    return passed(f"no secrets found in {scope}", **evidence)
