"""The `db` probe family: catalog facts, splinter-style lints, RLS by impersonation, query plans.

Importing the package registers every `db.*` kind; each submodule holds one idea.
"""

from msgops.probes.db import catalog, functions, get_or_create, lints, plans, rls, rls_model

__all__ = ["catalog", "functions", "get_or_create", "lints", "plans", "rls", "rls_model"]
