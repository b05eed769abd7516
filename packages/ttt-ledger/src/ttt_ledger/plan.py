"""The stage plan: the 10-run matrix per model family (docs/protocol.md).

The matrix is one compact table (`MATRIX`) of stage templates; a `FamilySpec` fills in
the family's run-id prefix, checkpoint short name and full step budgets. The families
themselves live in ttt-import's registry, which this package does not import: the runner
(`ttt_train.families.plan_family`) builds their FamilySpecs. Parents are
derived, not written down: a stage's parent is the stage whose output checkpoint is
its input checkpoint. The import checkpoint (`import-<short>-fa-base`) is a checkpoint
source, not a run, so the stages that read it have no parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ttt_ledger.records import LedgerError, RestoreStatus, RunRecord, RunStatus

CONTEXT_8K = 8192
CONTEXT_32K = 32768


class PlanError(LedgerError, ValueError):
    """An unknown family, budget or malformed plan."""


@dataclass(frozen=True)
class FamilySpec:
    """A model family as the plan needs it.

    `run_prefix` starts run ids (Q -> Q-A1); `short` names checkpoints
    (qwen05 -> import-qwen05-fa-base). Full step budgets come from the runbook's
    training defaults; None where the runbook gives none (only pilot budgets then).
    """

    key: str
    hf_id: str
    run_prefix: str
    short: str
    full_pretrain_steps: int | None = None
    full_ext_steps: int | None = None


@dataclass(frozen=True)
class StepBudget:
    """Steps per stage kind: `pretrain` (8K from fresh or import), `adapt`, `ext` (32K)."""

    pretrain: int
    adapt: int
    ext: int

    def steps_for(self, stage: str) -> int:
        return {"pretrain": self.pretrain, "adapt": self.adapt, "ext": self.ext}[stage]


PILOT_BUDGET = StepBudget(pretrain=8, adapt=4, ext=4)

@dataclass(frozen=True)
class StageTemplate:
    """One row of the matrix; `{s}` in checkpoint names is the family's short name.

    `input` None means a fresh start. `recipe` is the conversion applied to the input
    checkpoint: `fa` (import as full attention), `swa` (FA -> sliding window), `ttt`
    (insert prime MLPs), or None (same architecture continues).
    """

    suffix: str
    path: str
    stage: str
    model_kind: str
    train_mode: str
    context_length: int
    input: str | None
    output: str
    recipe: str | None

    @property
    def config(self) -> str:
        return self.output.replace("{s}-", "")


# docs/protocol.md's matrix, row by row.
MATRIX: tuple[StageTemplate, ...] = tuple(StageTemplate(*row) for row in (
    ("A1", "adapter", "pretrain", "fa", "pretrain", CONTEXT_8K,
     "import-{s}-fa-base", "pretrain-{s}-fa-import-8K", "fa"),
    ("A2", "adapter", "ext", "fa", "pretrain", CONTEXT_32K,
     "pretrain-{s}-fa-import-8K", "ext-{s}-fa-32K-from-import", None),
    ("A3", "adapter", "adapt", "swa", "pretrain", CONTEXT_8K,
     "pretrain-{s}-fa-import-8K", "adapt-{s}-swa-8K-from-import", "swa"),
    ("A4", "adapter", "adapt", "e2e", "meta", CONTEXT_8K,
     "adapt-{s}-swa-8K-from-import", "adapt-{s}-e2e-8K-from-import", "ttt"),
    ("A5", "adapter", "ext", "e2e", "meta", CONTEXT_32K,
     "adapt-{s}-e2e-8K-from-import", "ext-{s}-e2e-32K-from-import-bridge", None),
    ("A6", "adapter", "ext", "e2e", "meta", CONTEXT_32K,
     "pretrain-{s}-fa-import-8K", "ext-{s}-e2e-32K-from-import-direct", "ttt"),
    ("S1", "scratch", "pretrain", "fa", "pretrain", CONTEXT_8K,
     None, "pretrain-{s}-fa-scratch-8K", None),
    ("S2", "scratch", "ext", "fa", "pretrain", CONTEXT_32K,
     "pretrain-{s}-fa-scratch-8K", "ext-{s}-fa-32K-from-scratch", None),
    ("S3", "scratch", "pretrain", "e2e", "meta", CONTEXT_8K,
     None, "pretrain-{s}-e2e-scratch-8K", None),
    ("S4", "scratch", "ext", "e2e", "meta", CONTEXT_32K,
     "pretrain-{s}-e2e-scratch-8K", "ext-{s}-e2e-32K-from-scratch", None),
))

DATA_ROOT_BY_STAGE = {"pretrain": "dclm", "adapt": "dclm", "ext": "books"}


def resolve_family(family: FamilySpec) -> FamilySpec:
    """The plan's family. Names (qwen2_5_0_5b, qwen05, Q) are no longer looked up here: the
    families moved to ttt-import's registry, and a name is refused saying so."""
    if isinstance(family, FamilySpec):
        return family
    raise PlanError(f"family {family!r}: ttt-ledger plans a FamilySpec, not a name; the "
                    "families live in ttt-import's registry, and "
                    f"ttt_train.families.plan_family({family!r}) builds the spec")


def full_budget(family: FamilySpec) -> StepBudget:
    """The runbook's full budget: adapt stages run as long as 8K pretraining."""
    if family.full_pretrain_steps is None or family.full_ext_steps is None:
        raise PlanError(f"family {family.key!r} has no full step budget in the runbook; "
                        f"pass a StepBudget or use budget='pilot'")
    return StepBudget(family.full_pretrain_steps, family.full_pretrain_steps,
                      family.full_ext_steps)


def build_stage_plan(family: FamilySpec, exp_folder: str,
                     budget: str | StepBudget = "pilot") -> list[RunRecord]:
    """The 10 planned runs of one family, in runbook order, ready for `Ledger.add_plan`."""
    spec = resolve_family(family)
    if isinstance(budget, StepBudget):
        steps = budget
    elif budget == "pilot":
        steps = PILOT_BUDGET
    elif budget == "full":
        steps = full_budget(spec)
    else:
        raise PlanError(f"budget {budget!r}: expected 'pilot', 'full' or a StepBudget")
    producer = {t.output.format(s=spec.short): f"{spec.run_prefix}-{t.suffix}" for t in MATRIX}
    records = []
    for t in MATRIX:
        source = t.input.format(s=spec.short) if t.input else None
        parent = producer.get(source) if source else None
        records.append(RunRecord(
            run_id=f"{spec.run_prefix}-{t.suffix}", exp_folder=exp_folder, family=spec.key,
            path=t.path, stage=t.stage, model_kind=t.model_kind, train_mode=t.train_mode,
            context_length=t.context_length, checkpoint_source=source,
            output_checkpoint=t.output.format(s=spec.short), recipe=t.recipe,
            config_name=f"external/{spec.key}/{t.config}",
            data_root=DATA_ROOT_BY_STAGE[t.stage],
            parent_run_ids=(parent,) if parent else (),
            planned_steps=steps.steps_for(t.stage),
            restore=RestoreStatus.params() if source else RestoreStatus.fresh(),
            status=RunStatus.PLANNED))
    return records


def build_plans(families: Sequence[FamilySpec], exp_folder: str,
                budget: str | StepBudget = "pilot") -> list[RunRecord]:
    """Plans of several families for one experiment folder (run ids must not collide)."""
    records: list[RunRecord] = []
    seen: set[str] = set()
    for family in families:
        for record in build_stage_plan(family, exp_folder, budget):
            if record.run_id in seen:
                raise PlanError(f"run id {record.run_id!r} of {record.family!r} collides "
                                f"with another family's; give it another run_prefix")
            seen.add(record.run_id)
            records.append(record)
    return records
