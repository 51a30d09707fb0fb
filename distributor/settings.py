"""Settings from ``IOTD_*`` environment variables (pydantic-settings); every field documents itself."""

from __future__ import annotations

import socket

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IOTD_", env_file=None, extra="ignore")

    database_url: str | None = Field(None, description="PostgreSQL URL; `iotd demo` embeds one when unset")
    mqtt_url: str | None = Field(None, description="ChirpStack's MQTT broker, mqtt://[user:pass@]host:port")
    mqtt_client_id: str = Field(default_factory=lambda: f"iotd-{socket.gethostname()}",
                                description="stable per instance: the persistent session's identity")
    mqtt_share_group: str | None = Field(None, description="MQTT v5 shared-subscription group for several instances")
    mqtt_max_in_flight: int = Field(2000, ge=1, description="unfinished messages before intake pauses")
    http_max_in_flight: int = Field(2000, ge=1, description="ingest requests in progress before new ones wait")
    http_host: str = Field("0.0.0.0", description="address the API, ingest and /metrics listen on")
    http_port: int = Field(8080, ge=0, le=65535)
    secret_key: str | None = Field(None, description="encrypts stored credentials; required outside the demo",
                                   repr=False)
    log_level: str = Field("info", description="debug, info, warning or error")
    log_format: str = Field("json", description="json (one line per event) or console")

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _one_of_the_allowed(cls, value: object, info: ValidationInfo) -> str:
        """A misspelt level or format is a start-up error naming the allowed values, never silently ignored."""
        allowed = LOG_LEVELS if info.field_name == "log_level" else LOG_FORMATS
        text = str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text
    drain_timeout_s: float = Field(10.0, ge=0, description="on SIGTERM: time to finish in-flight work")
    consumer_queue_size: int = Field(10_000, ge=1, description="per-consumer queue before spilling to PostgreSQL")
    dedup_window_s: float = Field(600.0, ge=0, description="remember ChirpStack deduplication ids this long")
    state_flush_interval_s: float = Field(0.5, gt=0, description="batch interval for latest-message/statistics")
    retry_poll_s: float = Field(1.0, gt=0, description="how often the retry worker looks for due deliveries")
    retry_base_s: float = Field(1.0, gt=0, description="first retry delay; doubles per attempt (with jitter)")
    retry_max_backoff_s: float = Field(300.0, gt=0, description="longest delay between two attempts")
    retry_max_attempts: int = Field(50, ge=1, description="default attempts before a delivery is dead-lettered")
    retry_max_age_s: float = Field(3 * 86400, gt=0, description="default age after which a delivery is dead-lettered")
    retry_lease_s: float = Field(60.0, gt=0, description="how long a claimed retry is hidden from other instances")
    circuit_threshold: int = Field(5, ge=1, description="consecutive failures that open a consumer's circuit")
    circuit_cooldown_s: float = Field(10.0, gt=0, description="wait before probing an open circuit (doubles)")
    run_api: bool = Field(True, description="serve the REST API (/api/v1) in this instance")
    run_distributor: bool = Field(True, description="run intake and delivery in this instance")
    dead_letter_retention_days: float = Field(30.0, gt=0, description="dead letters older than this are removed")

    # --- who may send data in, and who may read what the service knows (issue 13) ---------------
    chirpstack_http_token: str | None = Field(
        None, repr=False, description="a shared secret ChirpStack's HTTP integration sends as `Authorization:"
                                      " Bearer <token>`; or create tokens with `iotd admin create-integration-token`")
    metrics_token: str | None = Field(None, repr=False,
                                      description="when set, /metrics answers only `Authorization: Bearer <token>`")
    auth_failure_limit: int = Field(30, ge=1, description="wrong keys per minute from one address before 429")

    # --- where consumers may point (issue 13) ---------------------------------------------------
    consumer_allowed_networks: str = Field(
        "", description="comma-separated CIDRs consumers may reach besides public addresses (e.g. 10.20.0.0/16);"
                        " loopback, private and link-local targets are refused otherwise")

    # --- JavaScript decoders: worker processes, hard deadlines, fairness (issue 13) --------------
    js_workers: int = Field(0, ge=0, description="JavaScript decoder worker processes (0: one per CPU core)")
    js_max_workers_per_organization: int = Field(
        0, ge=0, description="workers one organization's decoders may occupy at once (0: half of them, at least 1)")
    js_queue_per_organization: int = Field(
        1000, ge=1, description="uplinks waiting for one organization's decoders before they go out undecoded")
    js_suspend_after_timeouts: int = Field(5, ge=1, description="consecutive timeouts that suspend a decoder")
    js_suspend_s: float = Field(60.0, gt=0, description="how long a suspended decoder stays suspended (doubles)")

    # --- de-duplication (issue 14, helper F adds fields here) -------------------------------------
    dedup_frame_window_s: float = Field(60.0, ge=0, description="an identical frame (dev_eui, fCnt, fPort, payload)"
                                                                " within this window is the same message")

    # --- delivery under faults (issue 14, helper G adds fields here) ----------------------------
    lane_max_wait_s: float = Field(2.0, gt=0, description="a message not sent to a consumer within this time is"
                                                          " handed to the durable spill (the source acks it)")
    circuit_max_cooldown_s: float = Field(60.0, gt=0, description="longest wait between probes of a failing"
                                                                  " consumer (the cooldown doubles up to this)")
    circuit_backlog_probe_s: float = Field(5.0, gt=0, description="while a failing consumer has pending deliveries,"
                                                                  " probe it at least this often")

    # --- message history (issue 17) --------------------------------------------------------------
    history: bool = Field(True, description="keep every uplink in PostgreSQL for its application's retention_days"
                                            " (acknowledged only once stored); false: keep none")
    history_maintenance_s: float = Field(3600.0, gt=0, description="how often the history's partitions are made"
                                                                  " ahead and the expired ones dropped")

    replay_poll_s: float = Field(1.0, gt=0, description="how often an instance looks for replay jobs to run")
    replay_settle_s: float = Field(10.0, ge=0, description="a replay reads only messages received at least this long"
                                                         " ago (they reach the history a moment after arriving)")
    replay_max_jobs: int = Field(4, ge=1, le=64, description="replay jobs one instance runs at once")
    backfill_seam_s: float = Field(5.0, gt=0, le=300, description="a subscription made with backfill_from delivers live"
                                                                 " from this long after it was made; the backfill"
                                                                 " delivers what came before")

    # --- MQTT intake (issue 14, helper H adds fields here) --------------------------------------
    mqtt_keepalive_s: int = Field(60, ge=5, le=65535, description="MQTT keepalive with the ChirpStack broker")
    mqtt_session_expiry_s: int | None = Field(
        None, ge=0, le=0xFFFFFFFF, description="how long the broker keeps this instance's session (and the messages it"
                                               " holds for it) while it is away; unset: a week, or an hour for a"
                                               " member of IOTD_MQTT_SHARE_GROUP (deploy/README.md, shared"
                                               " subscriptions)")
