"""Request and response models of moderation (reports, moderator deletes) and administration (roles, jobs)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from service.sanitize import cleaned

AppRole = Literal["attendee", "dealer", "mvp_dealer", "organizer", "moderator", "admin"]
ReportStatus = Literal["pending", "resolved", "dismissed"]
Channel = Literal["direct", "community"]


class ReportCreate(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=1000), cleaned(1000)]


class Report(BaseModel):
    id: uuid.UUID
    message_id: uuid.UUID | None = Field(description="set when a direct/group message is reported")
    community_message_id: uuid.UUID | None = Field(description="set when a community message is reported")
    reason: str
    report_status: ReportStatus
    resolved_by: uuid.UUID | None = None
    resolved_at: datetime | None = None
    created_at: datetime


class QueuedReport(BaseModel):
    report_id: uuid.UUID
    message_id: uuid.UUID | None
    community_message_id: uuid.UUID | None
    reporter_id: uuid.UUID | None = Field(description="null once the reporter's account is erased")
    reason: str
    report_status: ReportStatus
    content: str | None = Field(description="the reported message's text; null once deleted")
    sender_id: uuid.UUID | None
    created_at: datetime


class ModerationDelete(BaseModel):
    message_id: uuid.UUID
    channel: Channel
    deleted: bool = Field(description="false when it was already deleted; its reports are resolved anyway")


class RoleUpdate(BaseModel):
    role: AppRole


class UserRole(BaseModel):
    id: uuid.UUID
    display_name: str
    role: AppRole


class JobRun(BaseModel):
    started_at: datetime
    finished_at: datetime
    affected: int
    outcome: Literal["ok", "error"]
    error: str | None


class JobInfo(BaseModel):
    name: str
    description: str
    schedule: str = Field(description="cron expression, UTC")
    next_run_at: datetime
    last_run: JobRun | None


class JobRunResult(BaseModel):
    job: str
    outcome: Literal["ok", "error", "skipped"]
    affected: int
    duration_ms: float
    error: str | None = None
