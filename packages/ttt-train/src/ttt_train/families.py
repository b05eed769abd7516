"""The registry's families as the stage plan needs them: ttt-ledger may not import
ttt-import, so the runner hands it each family's `FamilySpec`."""

from __future__ import annotations

from ttt_import.errors import ProfileError
from ttt_import.registry import REGISTRY, RegisteredFamily, get_registered
from ttt_ledger.plan import FamilySpec, PlanError


def plan_family(name: str | RegisteredFamily) -> FamilySpec:
    """The plan's spec of a family, by key (qwen2_5_0_5b), short name (qwen05) or run
    prefix (Q)."""
    try:
        family = name if isinstance(name, RegisteredFamily) else get_registered(name)
    except ProfileError as e:
        raise PlanError(str(e)) from None
    return FamilySpec(family.key, family.profile.hf_id, family.run_prefix, family.short,
                      family.budget.pretrain_steps, family.budget.ext_steps)


def pipeline_default_families() -> list[str]:
    """The families `ttt pipeline --model all` runs (the runbook's)."""
    return [key for key, family in REGISTRY.items() if family.pipeline_default]
