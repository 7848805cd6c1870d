"""The HTTP edge: ``build_app(settings, *, store=None, clock=None)`` mounts the routers on the services that
``gateway.compose`` builds.

Nothing connects at import time. The store (and its engine) is created here unless a test hands one in; the
FastAPI lifespan disposes of what this function created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from adapters.client import TargetClient
from gateway import console
from gateway.api import checks, docs, health, mails, operations, problems, records, reports, targets
from gateway.api.access import AccessLog
from gateway.api.bodies import BodyBudget
from gateway.api.limits import UrlLimit
from gateway.clock import Clock, SystemClock
from gateway.compose import build_services, build_worker, make_store
from gateway.jobs import Jobs
from gateway.services.keys import KeyCache
from gateway.settings import Settings
from gateway.shutdown import cancel_after, exchange_seconds
from gateway.targets import build_clients
from gateway.worker import Worker
from outbox.store import Store
from schemas import deadlines
from schemas.records import MODELS

DESCRIPTION = """
credit-gateway receives the bureau's credit records (行政许可, 行政处罚, 信用承诺, 红黑名单) from its internal
systems, checks them against the national 双公示 standard, and delivers them to 信用中国, 信用湖南, 信用怀化 and
the bureau's website. Authenticate with `Authorization: Bearer <key>`; errors are RFC 9457 problem documents.
"""


def build_app(
    settings: Settings, *, store: Store | None = None, clock: Clock | None = None, worker: Worker | None = None
) -> FastAPI:
    """The gateway; with ``settings.delivery.in_serve`` it also runs a delivery worker (``worker`` or a new one)."""
    owns_store = store is None
    rules = deadlines.from_settings(settings.deadlines)  # one calendar for ingest, the push loop and reports
    store = store or make_store(settings, rules)
    clock = clock or SystemClock()
    if worker is None and settings.delivery.in_serve:
        worker = build_worker(settings, store, clock, rules)
    own_clients: dict[str, TargetClient] = {}

    def clients() -> dict[str, TargetClient]:
        """The worker's clients when it runs here; otherwise a set of our own, made on first use."""
        if worker is not None:
            return worker.clients
        if not own_clients:
            own_clients.update(build_clients(settings, clock))
        return own_clients

    def clients_in_use() -> list[TargetClient]:
        return list(worker.clients.values()) if worker is not None else []

    services = build_services(settings, store=store, clock=clock, worker=worker, clients=clients, rules=rules)
    jobs = Jobs(services.housekeeping, services.mailer) if settings.jobs.in_serve else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            worker.start()
        if jobs is not None:
            jobs.start()
        yield
        # Jobs (reconciliation) and the worker share the targets' clients: one deadline cancels both's exchanges.
        within = exchange_seconds(settings.shutdown_grace_seconds, serves_http=True)
        with cancel_after(within, lambda: [*clients_in_use(), *own_clients.values()]):
            if jobs is not None:
                jobs.stop()
            if worker is not None:
                worker.stop()
        services.close()
        for client in own_clients.values():
            client.close()
        if owns_store:
            store.db.dispose()

    app = FastAPI(
        title="credit-gateway",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by gateway.console from local files
        redoc_url=None,
    )
    app.state.services = services
    app.state.key_cache = KeyCache(services.keys, settings.key_cache_seconds)
    app.state.body_budget = BodyBudget(settings.max_body_bytes_in_flight)
    problems.install(app)
    app.add_middleware(UrlLimit)
    app.add_middleware(AccessLog)  # outermost: the line has the status the client saw, refusals included
    app.include_router(health.router)
    app.include_router(checks.router)  # before records: /credit-checks must not read as /{kind}
    app.include_router(reports.router)  # before records: /reports/{id} must not read as /{kind}/{source_id}
    app.include_router(records.router)
    app.include_router(targets.router)
    app.include_router(operations.router)
    app.include_router(mails.router)
    console.install(app, services)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def app_from_environment() -> FastAPI:
    """The app as each ``serve --workers N`` process builds it: settings from the environment, store of its own."""
    from gateway import logs, memory

    memory.map_large_blocks()  # a process of its own, started afresh: see gateway.memory
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return build_app(settings)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated spec plus the canonical record schemas the ingest endpoints read by hand."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        documented: list[type[BaseModel]] = [*MODELS.values(), docs.Problem, *sorted(docs.BODY_MODELS, key=str)]
        _, defs = models_json_schema(
            [(m, "validation") for m in documented], by_alias=True, ref_template="#/components/schemas/{model}"
        )
        spec.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
        for operations in spec["paths"].values():  # a query parameter is absent or a value, never JSON null
            for op in operations.values():
                for param in op.get("parameters", []):
                    schema = param.get("schema", {})
                    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
                    if param["in"] == "query" and len(branches) == 1 and len(schema["anyOf"]) == 2:
                        param["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]}
        metrics = spec["paths"]["/metrics"]["get"]
        metrics["security"] = [{}, {"bearer": []}]  # a key only when METRICS_REQUIRE_KEY is set
        app.openapi_schema = spec
    return app.openapi_schema
