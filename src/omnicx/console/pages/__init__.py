"""The console's pages, one module per area, gathered on one router under ``/console``."""

from fastapi import APIRouter

from omnicx.console.pages import analytics, auth, customers, inbox, journeys, marketing, store

router = APIRouter(include_in_schema=False)
for module in (auth, customers, inbox, store, marketing, journeys, analytics):
    router.include_router(module.router, prefix="/console")
