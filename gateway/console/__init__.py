"""The operators' console under ``/console/`` and the API's own documentation at ``/docs``, all served locally.

``install`` adds the pages, their static files and the Swagger UI files (from the ``fastapi-offline`` package:
Swagger UI 5, which reads OpenAPI 3.1) to the app. Nothing the browser loads comes from another host, so both work
on the bureau's network without the internet.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import RedirectResponse, Response

from gateway.console import admin, operate, pages, reads
from gateway.console.render import HERE, refused
from gateway.console.session import Refused, SignInNeeded
from gateway.services.bundle import Services

DOCS_STATIC = Path(fastapi_offline.__file__).parent / "static"


def install(app: FastAPI, services: Services) -> None:
    app.state.people = services.people()  # one, kept: its dummy hash makes unknown names cost a real verify
    app.state.console_standings = reads.Standings()
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.mount("/docs-static", StaticFiles(directory=DOCS_STATIC), name="docs-static")
    app.include_router(pages.router)
    app.include_router(operate.router)
    app.include_router(admin.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(_: Request, __: SignInNeeded) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    @app.exception_handler(Refused)
    async def _refused(_: Request, exc: Refused) -> Response:
        return refused(exc.why)

    @app.get("/console", include_in_schema=False)
    async def _console() -> Response:
        return RedirectResponse("/console/", status_code=307)

    @app.get("/docs", include_in_schema=False)
    async def _docs() -> Response:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="credit-gateway API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def _redoc() -> Response:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="credit-gateway API",
            redoc_js_url="/docs-static/redoc.standalone.js",
            redoc_favicon_url="/docs-static/favicon.png",
            with_google_fonts=False,
        )
