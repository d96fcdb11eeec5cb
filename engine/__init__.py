"""Pure domain logic: events, features, value, models, decisions, alerts.

Nothing here imports redis, fastapi or bytewax, except `engine.store`, which owns the Redis key
layout and codecs.
"""
