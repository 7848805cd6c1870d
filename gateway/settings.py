"""Configuration: one validated pydantic-settings object, from ``CREDIT_GATEWAY_*`` variables and ``.env``.

Nested names use ``__`` (``CREDIT_GATEWAY_TARGETS__NATIONAL__BASE_URL``). The credential defaults are the
sandbox's documented demo credentials so ``serve`` and ``sandbox`` work together out of the box; with
``CREDIT_GATEWAY_ENVIRONMENT=production`` any demo secret left in place stops the gateway at start.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas.enums import ARTICLE_KINDS, RECORD_KINDS, Kind
from schemas.expiry import PeriodRuleSet

SANDBOX_URL = "http://127.0.0.1:8700"
ALL_KINDS = tuple(Kind)


def _kinds(value: Any) -> Any:
    """Accept ``licences,penalties`` as well as a JSON list from the environment."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


KindList = Annotated[list[Kind], NoDecode, BeforeValidator(_kinds)]


class TargetSettings(BaseModel):
    """What every target has: where it lives, whether it is on, which kinds it receives, how to talk to it."""

    enabled: bool = True
    base_url: str
    kinds: KindList = Field(default_factory=lambda: list(ALL_KINDS))
    timeout_seconds: float = Field(default=10.0, gt=0)
    # The whole exchange (connect, send, headers, body; with the municipal token fetch) must end within this;
    # None: three times timeout_seconds. TIMEOUT_SECONDS alone bounds each read, and a trickling target never trips it.
    exchange_deadline_seconds: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=500, ge=1, le=500)
    rate_limit_per_second: float | None = Field(default=None, gt=0)

    def demo_secrets(self) -> list[str]:
        return []

    def exchange_deadline(self) -> float:
        return self.exchange_deadline_seconds or 3 * self.timeout_seconds


def _no_articles(kinds: list[Kind]) -> list[Kind]:
    """The national and provincial platforms hold records only: articles go to the portal and 信用怀化."""
    wrong = [k.value for k in kinds if k in ARTICLE_KINDS]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} go to the portal and municipal only (PROTOCOLS.md Articles)")
    return kinds


RecordKindList = Annotated[list[Kind], NoDecode, BeforeValidator(_kinds), AfterValidator(_no_articles)]


class NationalSettings(TargetSettings):
    base_url: str = f"{SANDBOX_URL}/national"
    kinds: RecordKindList = Field(default_factory=lambda: list(RECORD_KINDS))
    app_key: str = "demo-national"
    app_secret: SecretStr = SecretStr("demo-national-secret")

    def demo_secrets(self) -> list[str]:
        return ["app_secret"] if self.app_secret.get_secret_value() == "demo-national-secret" else []


class ProvincialSettings(TargetSettings):
    base_url: str = f"{SANDBOX_URL}/provincial"
    kinds: RecordKindList = Field(default_factory=lambda: list(RECORD_KINDS))
    sender: str = "431200-ZJJ"
    sm3_key: SecretStr = SecretStr("demo-provincial-sm3-key")

    def demo_secrets(self) -> list[str]:
        return ["sm3_key"] if self.sm3_key.get_secret_value() == "demo-provincial-sm3-key" else []


class MunicipalSettings(TargetSettings):
    base_url: str = f"{SANDBOX_URL}/municipal"
    batch_size: int = Field(default=200, ge=1, le=200)
    client_id: str = "demo-municipal"
    client_secret: SecretStr = SecretStr("demo-municipal-secret")

    def demo_secrets(self) -> list[str]:
        return ["client_secret"] if self.client_secret.get_secret_value() == "demo-municipal-secret" else []


class PortalSettings(TargetSettings):
    base_url: str = f"{SANDBOX_URL}/portal"
    kinds: KindList = Field(default_factory=lambda: [Kind.LICENCE, Kind.PENALTY, *ARTICLE_KINDS])
    # Notices go one request each (a few at a time) whatever the batch; a larger lease only spreads the
    # database work of leasing and settling over more of them (drain benchmark: 2,650 -> 3,030 deliveries/s).
    batch_size: int = Field(default=200, ge=1, le=500)
    token: SecretStr = SecretStr("demo-portal-token")

    def demo_secrets(self) -> list[str]:
        return ["token"] if self.token.get_secret_value() == "demo-portal-token" else []


class Targets(BaseModel):
    national: NationalSettings = Field(default_factory=NationalSettings)
    provincial: ProvincialSettings = Field(default_factory=ProvincialSettings)
    municipal: MunicipalSettings = Field(default_factory=MunicipalSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)

    def items(self) -> list[tuple[str, TargetSettings]]:
        return [(name, getattr(self, name)) for name in ("national", "provincial", "municipal", "portal")]

    def routes(self) -> dict[Kind, tuple[str, ...]]:
        """Which enabled targets receive each kind: the fan-out of every ingest."""
        return {kind: tuple(n for n, t in self.items() if t.enabled and kind in t.kinds) for kind in Kind}


class DeliverySettings(BaseModel):
    """The delivery engine's timing; per-target retry limits apply to every target alike."""

    in_serve: bool = True  # serve runs the delivery worker too; false when `credit-gateway worker` processes do
    push_interval_seconds: float = Field(default=1.0, gt=0)
    poll_interval_seconds: float = Field(default=1.0, gt=0)
    reap_interval_seconds: float = Field(default=10.0, gt=0)
    lease_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=12, ge=1)
    max_age_hours: float = Field(default=72.0, gt=0)
    initial_backoff_seconds: float = Field(default=2.0, gt=0)
    max_backoff_seconds: float = Field(default=900.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    alert_after_seconds: float = Field(default=300.0, gt=0)


class DeadlineRuleSettings(BaseModel):
    """Publish ``kinds`` on ``target`` within ``days`` calendar or working days of the decision date. Articles
    (cases, news) have no deadline by default: the plan counts them as quotas, not in the 公示率."""

    target: Literal["national", "provincial", "municipal", "portal"]
    kinds: KindList = Field(default_factory=lambda: list(RECORD_KINDS))
    days: int = Field(ge=1, le=366)
    unit: Literal["calendar", "working"]


def _default_deadline_rules() -> list[DeadlineRuleSettings]:
    platforms = [
        DeadlineRuleSettings(target=t, days=20, unit="working") for t in ("national", "provincial", "municipal")
    ]
    portal = DeadlineRuleSettings(target="portal", kinds=[Kind.LICENCE, Kind.PENALTY], days=7, unit="calendar")
    return [portal, *platforms]


class DeadlineSettings(BaseModel):
    """When deliveries are due (MISSION.md "Deadlines"); the first rule matching (target, kind) applies."""

    day_one: Literal["next_day", "decision_day"] = "next_day"
    rules: list[DeadlineRuleSettings] = Field(default_factory=_default_deadline_rules)
    overrides_file: Path | None = None  # the operator's working-day override table (TOML), read after the shipped one
    # Count due dates in years whose 放假安排 is not published yet on their statutory holidays, marked provisional
    # (false: leave them empty, "unknown", until the year is added).
    provisional: bool = True
    at_risk_workdays: int = Field(default=3, ge=0, le=60)  # "at risk": unpublished and due within this many


_SEVERE = (
    "revoke_licence",
    "lower_qualification",
    "suspend_business",
    "order_closure",
    "restrict_business",
    "restrict_employment",
    "detention",
)


def _default_rule_sets() -> list[PeriodRuleSet]:
    return [
        PeriodRuleSet(
            name="发改办财金〔2019〕527号",
            effective_from=dt.date(2019, 7, 16),
            default_months=12,
            months_by_category=dict.fromkeys(_SEVERE, 36),
        ),
        PeriodRuleSet(
            name="国家发展改革委令第58号",
            effective_from=dt.date(2023, 5, 1),
            default_months=36,
            months_by_category={"warning": 3, "circulated_criticism": 3},
        ),
        PeriodRuleSet(  # the periods of 令第36号 were not in the texts we had: confirm before relying on them
            name="国家发展改革委令第36号",
            effective_from=dt.date(2026, 4, 1),
            default_months=36,
            months_by_category={"warning": 3, "circulated_criticism": 3},
        ),
    ]


class JobSettings(BaseModel):
    """Scheduled housekeeping in ``serve`` (cron expressions, Asia/Shanghai); on PostgreSQL each job runs once
    across all processes (an advisory lock)."""

    in_serve: bool = True
    daily_report_cron: str = "30 7 * * *"  # yesterday's report
    monthly_report_cron: str = "0 8 1 * *"  # last month's report
    reconcile_cron: str = "0 2 * * *"
    expiry_cron: str = "10 0 * * *"  # withdraw what left its publication period; fill due dates the calendar now knows
    report_departments: list[str] = Field(default_factory=list)  # 相关科室 held to the yearly quota even if silent
    trend_months: int = Field(default=12, ge=1, le=60)
    period_rules: list[PeriodRuleSet] = Field(default_factory=_default_rule_sets)


class SmtpSettings(BaseModel):
    """Where report mail goes out (CONTRACT.md "Report delivery"); no host means mail is queued but not sent."""

    model_config = {"populate_by_name": True}

    host: str | None = None
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    sender: str = Field(default="credit-gateway@localhost", alias="from")
    timeout_seconds: float = Field(default=30.0, gt=0)


class ReportSchedule(BaseModel):
    """A report sent by mail on its own rhythm: ``monthly`` (last month, on the month's first working day) or
    ``weekly`` (month to date, on the week's first working day)."""

    name: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    kind: Literal["monthly", "weekly"]
    recipients: list[str] = Field(default_factory=list)
    enabled: bool = True


class ReportMailSettings(BaseModel):
    """Report mail: the schedules (seeding the ``report_schedule`` table) and how failed sends are retried."""

    schedules: list[ReportSchedule] = Field(default_factory=list)
    send_cron: str = "0 8 * * *"  # when (Asia/Shanghai) the schedules due today queue their mail
    send_interval_seconds: float = Field(default=30.0, gt=0)  # how often queued and failed mail is (re)tried
    max_attempts: int = Field(default=10, ge=1)
    max_age_hours: float = Field(default=48.0, gt=0)
    initial_backoff_seconds: float = Field(default=60.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)


class CheckSettings(BaseModel):
    """Credit checks before approval (事前监管): how long the national subject query may take, how long kept."""

    national_deadline_seconds: float = Field(default=3.0, gt=0, le=60)  # the whole national call, answer or not
    retention_days: int | None = Field(default=None, ge=1)  # None: kept for ever (留存查询记录)


class QuotaSettings(BaseModel):
    """The plan's quotas (三(四)2–4): the defaults are the plan's figures; the month-end window is how many of a
    month's last working days a department still short of its monthly quota shows in the at-risk view."""

    portal_news_per_month: int = Field(default=1, ge=0, le=1000)  # per department, on the bureau's website
    municipal_news_per_month: int = Field(default=2, ge=0, le=1000)  # bureau-wide, to 信用怀化
    cases_per_year: int = Field(default=1, ge=0, le=1000)  # per department, typical cases (典型案例)
    red_list_per_year: int = Field(default=1, ge=0, le=1000)  # per department, red-list pushes
    black_list_per_year: int = Field(default=1, ge=0, le=1000)  # per department, black-list pushes
    month_end_workdays: int = Field(default=5, ge=0, le=23)  # 0: no month-end quota entries at risk


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CREDIT_GATEWAY_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./credit-gateway.db"
    db_pool_size: int = Field(default=16, ge=1, le=200)
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    host: str = "127.0.0.1"
    port: int = Field(default=8600, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=32)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # request body bytes read and processed at once per process; beyond it 503 server-busy (see gateway/api/bodies.py)
    max_body_bytes_in_flight: int = Field(default=32 * 1024 * 1024, ge=1024)
    max_batch_items: int = Field(default=1000, ge=1, le=1000)
    key_cache_seconds: float = Field(default=30.0, ge=0)
    metrics_require_key: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line (gateway/logs.py)
    # SIGTERM to the end of the process (gateway.shutdown): open HTTP requests get a quarter, exchanges with
    # targets go on until half of it, then are cancelled whatever the target does; the rest is for closing up.
    shutdown_grace_seconds: float = Field(default=10.0, ge=2, le=600)
    targets: Targets = Field(default_factory=Targets)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    deadlines: DeadlineSettings = Field(default_factory=DeadlineSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    report_mail: ReportMailSettings = Field(default_factory=ReportMailSettings)
    checks: CheckSettings = Field(default_factory=CheckSettings)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)

    @model_validator(mode="after")
    def _no_demo_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            left = [f"targets.{name}.{s}" for name, t in self.targets.items() if t.enabled for s in t.demo_secrets()]
            if left:
                raise ValueError(f"production refuses the sandbox's demo credentials: set {', '.join(left)}")
        return self
