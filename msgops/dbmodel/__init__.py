"""The messaging model of a database (rooms, membership, messages, users, staff), discovered from its
catalog and correctable under `schema:` in msgops.yaml."""

from msgops.dbmodel.discover import discover, infer, read_catalog
from msgops.dbmodel.model import Membership, MessageTable, Model, Room, Staff, UserTable

__all__ = ["Membership", "MessageTable", "Model", "Room", "Staff", "UserTable", "discover", "infer", "read_catalog"]
