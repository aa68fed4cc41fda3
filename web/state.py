"""Accessors for what create_app built, so views never build their own connections."""

from __future__ import annotations

from flask import current_app
from redis import Redis
from rq import Queue

from engine.settings import Settings


def redis() -> Redis:
    return current_app.extensions["redis"]


def queues() -> dict[str, Queue]:
    return current_app.extensions["queues"]


def settings() -> Settings:
    return current_app.extensions["settings"]
