"""What the analytics API accepts and returns."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator


class Counts(BaseModel):
    exposures: int = Field(ge=0, description="Customers who saw the variant.")
    conversions: int = Field(ge=0, description="Of them, how many converted.")

    @model_validator(mode="after")
    def _not_more_conversions_than_exposures(self) -> Counts:
        if self.conversions > self.exposures:
            raise ValueError("conversions cannot exceed exposures")
        return self


class AbTestRequest(BaseModel):
    control: Counts
    treatment: Counts
    sequential: bool = Field(False, description="Always-valid confidence sequence (peek-safe).")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="1 − confidence level.")


class AbTestResult(BaseModel):
    control_rate: float | None
    treatment_rate: float | None
    uplift: float | None = Field(description="Relative: 0.1 = +10 %.")
    stddev: float | None
    p_value: float | None
    ci: Annotated[list[float], Field(min_length=2, max_length=2)] | None
    chance_to_win: float | None
    sequential: bool
    note: str | None
    srm_p_value: float
    warnings: list[str]


class ClvSummary(BaseModel):
    last_run: dict[str, Any] | None = Field(
        description="The latest refresh: when, customers, fitted BG/NBD and Gamma-Gamma."
    )


class ComputedTraitsRead(BaseModel):
    profile_id: str
    traits: dict[str, Any]


class Table(BaseModel):
    """A report: its parameters and one row per period, cohort, group or path."""

    params: dict[str, Any]
    rows: list[dict[str, Any]]
    summary: dict[str, Any] = Field(default_factory=dict)


Model = Literal["last", "first", "position"]
