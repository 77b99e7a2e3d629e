"""Customer 360: search, then one page with everything known about the person.

Where a capability has no service function for what the page shows (a profile's messages), the
page calls that capability's API handler in-process with the console user as the caller, so the
same role rules apply and no other package's tables are read here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from omnicx.analytics import service as analytics
from omnicx.auth.service import Staff
from omnicx.commerce import service as commerce
from omnicx.console import conversations_view
from omnicx.console.web import CurrentSession, page_roles, render
from omnicx.db import Database
from omnicx.journeys import stats as journey_stats
from omnicx.messaging.router import profile_messages
from omnicx.profiles import service as profiles
from omnicx.profiles.record import rules_from
from omnicx.segments import service as segments

router = APIRouter()
Viewer = Annotated[Staff, Depends(page_roles("/console/customers"))]

# Timeline filters: what a person thinks of as a channel, mapped to event channels.
CHANNEL_FILTERS = ("web", "ios", "android", "pos", "support", "server")
KIND_FILTERS = {
    "orders": ("Order Completed", "Order Updated", "Order Refunded", "Order Cancelled"),
    "messages": ("Message Sent", "Message Delivered", "Message Opened", "Message Clicked"),
    "pickups": ("Pickup Ready", "Pickup Reminder", "Order Collected", "Pickup Expired"),
    "journeys": ("Journey Entered", "Journey Step", "Journey Exited", "Journey Converted"),
    "conversations": ("Conversation Started", "Conversation Message", "Conversation Resolved"),
}


async def profile_360(db: Database, staff: Staff, profile_id: str) -> dict[str, Any] | None:
    """Everything the 360 page and the inbox/store sidebars show about one profile."""
    secret = db.settings.secret_key.get_secret_value()
    async with db.session() as session:
        profile = await profiles.get_by_external_id(
            session, external_id=profile_id, rules=rules_from(db.settings)
        )
        if profile is None:
            return None
        read = await profiles.read(session, profile=profile)
        data: dict[str, Any] = {
            "profile": read,
            "computed": await analytics.computed_traits(session, profile_id=profile.id),
            "cart": await commerce.get_cart(session, profile_id=profile.id),
            "wishlist": await commerce.get_wishlist(session, profile_id=profile.id),
            "orders": await commerce.list_orders(
                session, profile_id=profile.id, limit=20, secret=secret
            ),
            "segments": await segments.of_profile(session, profile_id=profile.id),
            "runs": await journey_stats.profile_runs(session, profile_id=profile.id),
        }
    data["messages"] = (await profile_messages(db, staff, profile.id, 20)).items
    data["conversations"] = await conversations_view.of_profile(db, staff, profile.id)
    browsing = await profiles_timeline(db, profile.id, "Product Viewed")
    data["browsing"] = browsing
    return data


async def profiles_timeline(db: Database, profile_id: str, event: str) -> list[Any]:
    """The profile's latest events of one name (browsing history for the sidebars)."""
    async with db.session() as session:
        page = await profiles.timeline(session, profile_id=profile_id, limit=8, event_name=event)
    return list(page.items)


def display_name(traits: dict[str, Any], fallback: str) -> str:
    first, last = traits.get("first_name"), traits.get("last_name")
    if first or last:
        return " ".join(str(p) for p in (first, last) if p)
    return str(traits.get("name") or traits.get("email") or fallback)


@router.get("/customers", response_class=HTMLResponse)
async def customers(
    request: Request,
    session: CurrentSession,
    _staff: Viewer,
    q: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """Find a customer by email, phone, id or trait."""
    db: Database = request.app.state.db
    found = []
    if q.strip():
        async with db.session() as s:
            found = await profiles.search(s, q=q, rules=rules_from(db.settings), limit=50)
    return render(request, "customers.html", session, q=q, found=found, display_name=display_name)


@router.get("/customers/{profile_id}", response_class=HTMLResponse)
async def customer(
    request: Request,
    session: CurrentSession,
    staff: Viewer,
    profile_id: str,
    channel: Annotated[str, Query(max_length=40)] = "",
    kind: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[str, Query(max_length=80)] = "",
) -> HTMLResponse:
    """The customer's whole story on one page."""
    db: Database = request.app.state.db
    data = await profile_360(db, staff, profile_id)
    if data is None:
        return render(request, "error.html", session, 404, message="No such customer.")
    cursor = None
    if before:
        try:
            cursor = profiles.parse_cursor(before)
        except ValueError:
            cursor = None
    names = KIND_FILTERS.get(kind)
    async with db.session() as s:
        # Filters apply to a window of recent events (the API filters by one event name only).
        page = await profiles.timeline(
            s, profile_id=data["profile"].id, limit=200 if channel or names else 50, before=cursor
        )
    events = [
        e
        for e in page.items
        if (not channel or e.channel == channel) and (not names or e.event in names)
    ]
    return render(
        request,
        "customer.html",
        session,
        **data,
        name=display_name(data["profile"].traits, data["profile"].id),
        events=events,
        next=page.next,
        channel=channel,
        kind=kind,
        channel_filters=CHANNEL_FILTERS,
        kind_filters=list(KIND_FILTERS),
    )
