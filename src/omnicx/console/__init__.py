"""The web console at ``/console``: marketers, agents, store associates and analysts.

Server-rendered with Jinja2; the only script is the console's own few lines (``static/console.js``:
a segment editor's live count, a journey editor's validation, inbox live updates), and every page
works as plain links and forms without it. Pages read and write through the capabilities'
services only, with the API's role rules (``web.NAV`` lists which roles see which page; a store
associate sees only its own store). Charts and the journey graph are SVG drawn on the server
(``charts.py``, ``graph.py``), so a page is complete as it arrives.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from omnicx.console.pages import router
from omnicx.console.web import HERE, ConsoleError, LoginRequired, current_session, render


def install(app: FastAPI) -> None:
    """Mount the console's pages, its static files and its HTML error pages."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> RedirectResponse:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        return RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)

    @app.exception_handler(ConsoleError)
    async def _error(request: Request, exc: ConsoleError) -> HTMLResponse:
        try:
            session = await current_session(request)
        except LoginRequired:
            session = None
        return render(request, "error.html", session, exc.status, message=exc.message)
