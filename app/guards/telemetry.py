"""Prometheus metrics, one registry per app (no process-global state): requests, latency, batches, scores.

The per-class score histogram is labelled with the served model's own labels (``pathology="<label>"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
_SCORE_BUCKETS = tuple(round(x, 2) for x in np.linspace(0.05, 1.0, 20))


class Telemetry:
    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)  # the model's K labels: the values of the score histogram's "pathology" label
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "chexnet_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "chexnet_request_seconds", "request latency", ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.batch_size = Histogram(
            "chexnet_batch_size", "images per forward pass", buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "chexnet_batch_seconds", "forward pass time per batch", buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("chexnet_queue_depth", "requests waiting for the model", registry=self.registry)
        self.in_progress = Gauge("chexnet_requests_in_progress", "HTTP requests being served", registry=self.registry)
        self.upload_backlog = Gauge(
            "chexnet_upload_backlog", "admitted uploads outside the model's queue", registry=self.registry
        )
        self.scores = Histogram(
            "chexnet_score",
            "predicted probability per pathology (a cheap drift signal)",
            ["pathology"],
            buckets=_SCORE_BUCKETS,
            registry=self.registry,
        )

    def on_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def on_scores(self, probs: npt.NDArray[np.float32]) -> None:
        """One image's (K,) probabilities, in the model's label order."""
        for name, value in zip(self.labels, probs, strict=True):
            self.scores.labels(pathology=name).observe(float(value))

    def render(self) -> bytes:
        return generate_latest(self.registry)
