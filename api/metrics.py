"""Prometheus metrics of the API process."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Histogram(
    "nextbest_request_seconds", "API request latency", ["route", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
EVENTS = Counter("nextbest_events_total", "Events received by the API", ["result"])
DECISIONS = Counter("nextbest_decisions_total", "Decisions served", ["channel", "explored"])
DECISION_PATHS = Counter(
    "nextbest_decision_paths_total",
    "How decisions were answered: ranked (scored, with exploration), consistency (the customer's"
    " lead offer of moments ago kept), empty (nothing could be shown: caps, consent, conditions)",
    ["path"])
FEEDBACK = Counter("nextbest_feedback_total", "Feedback received", ["outcome"])
FALLBACKS = Counter("nextbest_decision_fallbacks_total", "Decisions served from the fallback")
# gauges mirror shared state (Redis), so with several workers any worker's value will do
PENDING = Gauge("nextbest_pending_events", "Accepted events the flow has not processed yet",
                multiprocess_mode="max")
DEADLETTERED = Gauge("nextbest_deadlettered_total", "Events sent to the dead-letter stream",
                     multiprocess_mode="max")
UNCONVERTED = Gauge("nextbest_unconverted_transactions_total",
                    "Transactions taken in a currency with no exchange rate to the engine's",
                    ["currency"], multiprocess_mode="max")
MODELS = Gauge("nextbest_model_examples", "Examples learned per model", ["model"],
               multiprocess_mode="max")
MODEL_AUC = Gauge("nextbest_model_auc", "Progressive ROC AUC per model", ["model"],
                  multiprocess_mode="max")
MODEL_DRIFTS = Gauge("nextbest_model_drifts", "Quality drifts detected per model", ["model"],
                     multiprocess_mode="max")
ACCEPTANCE = Gauge("nextbest_offer_acceptance_rate", "Acceptance rate per offer", ["offer"],
                   multiprocess_mode="max")
REDIS_ROUND_TRIPS = Counter("nextbest_redis_round_trips_total",
                            "Redis round trips of batched request pipelines (api/batching.py)")
REDIS_BATCHED = Counter("nextbest_redis_batched_pipelines_total",
                        "Request pipelines sent in those round trips")
WEBHOOKS = Gauge("nextbest_webhook_deliveries_total",
                 "Webhook deliveries by result (delivered, retried, failed), from the worker",
                 ["result"], multiprocess_mode="max")


def exposition() -> bytes:
    """All workers' metrics when running several (PROMETHEUS_MULTIPROC_DIR), else this one's."""
    import os

    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()
