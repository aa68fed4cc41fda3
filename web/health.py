"""Liveness and readiness probes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from redis.exceptions import RedisError

from engine.health import live_workers
from web import state

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 while the process is up; touches nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """200 when Redis answers a PING (and, with READYZ_REQUIRE_WORKER, a worker is alive); 503 otherwise."""
    try:
        state.redis().ping()
        if state.settings().readyz_require_worker:
            workers = len(live_workers(state.redis()))
            if workers == 0:
                return jsonify(status="unavailable", redis="ok", workers=0), 503
            return jsonify(status="ok", redis="ok", workers=workers)
    except RedisError as exc:
        return jsonify(status="unavailable", redis=type(exc).__name__), 503
    return jsonify(status="ok", redis="ok")
