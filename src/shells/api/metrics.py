"""The registry ``/metrics`` serves: the control plane's collector (shells, actions, exec, usage)
and the request latencies this layer measures, per route template, method and status."""

from __future__ import annotations

import time
from typing import cast

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..control.service import Control

REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def install(app: FastAPI, control: Control) -> None:
    """Give ``app`` its own registry (two apps in one process never share counters)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(control.metrics)
    latency = Histogram(
        "shells_request_duration_seconds",
        "REST requests from arrival to the end of the answer",
        ["method", "route", "status"],
        buckets=REQUEST_BUCKETS_S,
        registry=registry,
    )
    app.state.metrics_registry = registry
    app.add_middleware(RequestTimer, latency=latency)


def registry_of(app: FastAPI) -> CollectorRegistry:
    return cast(CollectorRegistry, app.state.metrics_registry)


class RequestTimer:
    """Times each HTTP request to the last byte of its answer (streamed exec output included).
    Requests that matched no route are counted under the route ``unmatched``."""

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)
