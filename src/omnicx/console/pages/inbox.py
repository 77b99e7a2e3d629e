"""Agent inbox: queues, my conversations, the thread with the customer's 360 beside it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from omnicx.auth.service import Staff
from omnicx.console.web import CurrentSession, page_roles, render

router = APIRouter()
Agent = Annotated[Staff, Depends(page_roles("/console/inbox"))]


@router.get("/inbox", response_class=HTMLResponse)
async def inbox(request: Request, session: CurrentSession, _staff: Agent) -> HTMLResponse:
    """Queues and my conversations."""
    return render(request, "inbox.html", session, conversations=[])
