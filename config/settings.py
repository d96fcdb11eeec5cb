"""The one settings class.

Values come from, in order of precedence: constructor arguments, environment variables
(`NEXTBEST_*`, plus `REDIS_URL`), then `config/nextbest.toml` (or the file named by
`NEXTBEST_CONFIG`).
"""

from __future__ import annotations

import os
import secrets
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from engine.exported import Currency

ROLES = frozenset({"admin", "ingest", "decide", "agent", "sales"})
_DEFAULT_TOML = Path(__file__).with_name("nextbest.toml")


def _default_rules_dir() -> Path:
    import rules

    return Path(rules.__file__).parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXTBEST_", extra="ignore",
                                      hide_input_in_errors=True)  # keys, passwords

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "NEXTBEST_REDIS_URL")
    )
    data_dir: Path = Path(".nextbest")
    rules_dir: Path = Field(default_factory=_default_rules_dir)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int = 1
    api_keys: dict[str, list[str]] = Field(default_factory=dict)
    rate_limit_per_s: float = 0.0
    redis_timeout_s: float = Field(default=0.25, gt=0)  # API calls to Redis: fail fast, fall back
    redis_batching: bool = True  # API: concurrent requests share Redis round trips (api/batching.py)
    lean_routes: bool = True  # API: decisions and events served past FastAPI's routing (api/lean.py)
    model_secret: str = ""
    partitions: int = Field(default=4, ge=1, le=1024)
    currency: Currency = "EUR"  # the unit of every amount, read as events read it ("eur": EUR)
    # units of `currency` per unit of each other currency transactions may come in (engine/money.py)
    exchange_rates: dict[Currency, float] = Field(default_factory=dict)
    lateness_s: float = Field(default=3600.0, ge=0)
    # events timed further than this ahead of the ingesting machine's clock are dead-lettered
    # (a wrong device clock would carry the engine's event-time clock ahead); 0: no limit
    max_future_s: float = Field(default=86400.0, ge=0)
    stream_maxlen: int = 5_000_000
    deadletter_maxlen: int = 100_000
    dedup_ttl_s: int = 30 * 86400
    max_batch: int = 1000
    max_body_bytes: int = 4 * 1024 * 1024
    exploration: str = Field(default="thompson", pattern="^(thompson|epsilon)$")
    epsilon: float = Field(default=0.1, ge=0, le=1)
    control_share: float = Field(default=0.05, ge=0, le=1)
    churn_threshold: float = Field(default=0.6, ge=0, le=1)
    model_publish_every: int = Field(default=50, ge=1)
    flow_workers: int = 1
    flow_processes: int = 1
    flow_batch: int = 500
    flow_recovery: bool = True
    redis_cluster: bool = False  # REDIS_URL names a Redis Cluster (same as redis+cluster://)
    # the embedded Redis's append-only file: `always` fsyncs before every reply (a power loss
    # loses nothing acknowledged; ~0.2 ms more per write here), `everysec` within a second
    redis_fsync: str = Field(default="everysec", pattern="^(always|everysec)$")
    models_poll_s: float = Field(default=5.0, gt=0)  # API: model reload safety net beside pub/sub
    source: str = Field(default="redis", pattern="^(redis|kafka)$")  # flow input beside streams
    kafka_brokers: str = ""  # host:port,host:port
    kafka_topic: str = "nextbest-events"
    # webhooks (rules/webhooks.yaml): retries of a failed delivery, then the failed list
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_s: float = Field(default=2.0, gt=0)  # first retry delay; doubles each time
    webhook_backoff_max_s: float = Field(default=600.0, gt=0)
    webhook_max_age_s: float = Field(default=86400.0, gt=0)  # give up after this long anyway
    webhook_timeout_s: float = Field(default=10.0, gt=0)  # per POST
    webhook_concurrency: int = Field(default=4, ge=1)  # POSTs in flight per subscription
    webhook_done_ttl_s: int = Field(default=7 * 86400, ge=1)
    webhook_failed_maxlen: int = Field(default=1000, ge=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = Path(os.environ.get("NEXTBEST_CONFIG", _DEFAULT_TOML))
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml))

    @model_validator(mode="after")
    def _cluster_url(self) -> Settings:
        if self.redis_cluster and self.redis_url:
            from config.connect import as_cluster

            self.redis_url = as_cluster(self.redis_url)
        return self

    @field_validator("exchange_rates")
    @classmethod
    def _rates(cls, rates: dict[str, float]) -> dict[str, float]:
        for code, rate in rates.items():
            if not 0 < rate < float("inf"):
                raise ValueError(f"exchange rate for {code}: {rate} is not a positive number")
        return rates

    @field_validator("api_keys")
    @classmethod
    def _known_roles(cls, keys: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, roles in keys.items():
            unknown = set(roles) - ROLES
            if unknown:
                raise ValueError(f"api key {key[:4]}…: unknown roles {sorted(unknown)}")
            if not key.strip() or key != key.strip():  # sent as `Bearer KEY`, stripped
                raise ValueError(f"api key {key[:4]!r}…: empty or padded with spaces")
        return keys

    def latest_ts(self) -> float | None:
        """The latest event time ingest accepts now (`max_future_s`), None without a limit."""
        return time.time() + self.max_future_s if self.max_future_s else None

    def secret(self) -> bytes:
        """The key that signs model state; generated once into the data folder if unset."""
        if self.model_secret:
            return self.model_secret.encode()
        path = self.data_dir / "model.secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()

    def env(self) -> dict[str, Any]:
        """These settings as environment variables, for child processes."""
        import json

        out = {"NEXTBEST_" + k.upper(): json.dumps(v) if isinstance(v, dict | list) else v
               for k, v in self.model_dump(mode="json").items()}
        out.pop("NEXTBEST_REDIS_URL")
        if self.redis_url:
            out["REDIS_URL"] = self.redis_url
        return {k: str(v) for k, v in out.items() if v is not None}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
