"""Request and response models of broadcasts: one sender to an audience, within a quota per show phase."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.schemas.communities import MessageContent

Audience = Literal["attendees", "dealers", "everyone"]
Phase = Literal["pre_show", "during_show", "post_show"]


class BroadcastCreate(BaseModel):
    audience: Audience
    phase: Phase
    content: MessageContent


class Broadcast(BaseModel):
    id: uuid.UUID
    sender_id: uuid.UUID | None = Field(description="null once the sender's account is erased")
    audience: Audience
    phase: Phase
    content: str
    created_at: datetime


class PhaseQuota(BaseModel):
    phase: Phase
    used: int
    allowed: int = Field(description="broadcasts allowed in this phase until the next reset; 0: none")
    audiences: list[Audience] = Field(description="audiences the caller's role may address in this phase")


class BroadcastQuota(BaseModel):
    role: str
    resets_at: datetime = Field(description="next quota reset (daily, 02:00 UTC)")
    phases: list[PhaseQuota]
