"""The model of the target's database: the `schema:` section of msgops.yaml when a person wrote one,
otherwise discovered from the catalog once per run (shared by every probe through the context cache)."""

from __future__ import annotations

from typing import Any

from msgops.dbmodel.discover import discover
from msgops.dbmodel.model import Model
from msgops.probes.context import CannotEvaluate, Context

_KEY = "db.model"


async def target_model(ctx: Context) -> Model:
    cached = ctx.cache.get(_KEY)
    if isinstance(cached, Model):
        return cached
    written: Any = getattr(ctx.target, "schema", None)
    if written:
        try:
            model = Model.from_mapping(dict(written))
        except (ValueError, TypeError, KeyError) as exc:
            raise CannotEvaluate(f"msgops.yaml {exc}: fix the schema: section (or delete it and run "
                                 "`msgops discover`)") from None
    else:
        async with ctx.db() as conn:
            model = await discover(conn)
    ctx.cache[_KEY] = model
    return model
