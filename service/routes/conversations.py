"""(being written)"""

from fastapi import APIRouter

router = APIRouter()


from service.deps import CurrentUser, State  # noqa: E402


@router.get("/conversations")
async def _tmp(user: CurrentUser, state: State) -> list[str]:
    return []
