"""Prometheus metrics of the API process."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Histogram(
    "nextbest_request_seconds", "API request latency", ["route", "status"],
    buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
EVENTS = Counter("nextbest_events_total", "Events received by the API", ["result"])
DECISIONS = Counter("nextbest_decisions_total", "Decisions served", ["channel", "explored"])
FEEDBACK = Counter("nextbest_feedback_total", "Feedback received", ["outcome"])
FALLBACKS = Counter("nextbest_decision_fallbacks_total", "Decisions served from the fallback")
PENDING = Gauge("nextbest_pending_events", "Accepted events the flow has not processed yet")
DEADLETTERED = Gauge("nextbest_deadlettered_total", "Events sent to the dead-letter stream")
MODELS = Gauge("nextbest_model_examples", "Examples learned per model", ["model"])
MODEL_AUC = Gauge("nextbest_model_auc", "Progressive ROC AUC per model", ["model"])
ACCEPTANCE = Gauge("nextbest_offer_acceptance_rate", "Acceptance rate per offer", ["offer"])
