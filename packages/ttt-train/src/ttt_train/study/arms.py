"""The study's three arms as `ttt train` overrides: FA, SWA and TTT-E2E on one dense shape.

TTT-E2E follows the paper: every layer slides with the window k, the last quarter of the
layers carries prime MLPs (the inner weights), and every MLP's intermediate width is
shrunk so that the total parameter count matches FA's (here within 1%, checked on the
built models, not computed by hand).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from ttt_model.model import abstract_model, count_params
from ttt_train.config import compose_config
from ttt_train.study.plan import StudyPlan
from ttt_train.translate import model_config_of

ARMS: tuple[str, ...] = ("fa", "swa", "e2e")
LABELS: Mapping[str, str] = {"fa": "FA", "swa": "SWA", "e2e": "TTT-E2E"}
PARAM_TOLERANCE = 0.01
_WIDTH_MULTIPLE = 8


class StudyConfigError(ValueError):
    """An arm that cannot be built as the study requires (one line)."""


def model_overrides(plan: StudyPlan, arm: str, intermediate: int | None = None
                    ) -> dict[str, object]:
    s = plan.shape
    base: dict[str, object] = {
        "model": "125m", "model.name": f"study-{arm}", "model.vocab_size": s.vocab,
        "model.hidden_size": s.hidden, "model.num_hidden_layers": s.layers,
        "model.num_attention_heads": s.heads, "model.num_key_value_heads": s.kv_heads,
        "model.intermediate_size": s.intermediate, "model.bos_token_id": 0,
        "model.eos_token_id": 1, "model.seq_len": plan.context,
        "model.compute_dtype": "fp32", "model.attention_block_size": plan.context,
        "model.logits_block_size": plan.context,
    }
    if arm == "fa":
        return base
    base |= {"model.seq_modeling_block": "SWA", "model.sliding_window_size": plan.window}
    if arm == "swa":
        return base
    if arm != "e2e":
        raise StudyConfigError(f"unknown arm {arm!r}; expected one of {ARMS}")
    return base | {
        "model.prime": True, "model.suffix_len": max(1, s.layers // 4),
        "model.mini_batch_size": plan.chunk,
        "model.intermediate_size": matched_intermediate(plan) if intermediate is None
        else intermediate,
    }


def param_count(overrides: Mapping[str, object]) -> int:
    composed = compose_config([f"{k}={v}" for k, v in overrides.items()])
    return count_params(abstract_model(model_config_of(composed)))


@functools.lru_cache(maxsize=8)
def matched_intermediate(plan: StudyPlan) -> int:
    """The TTT-E2E intermediate width (a multiple of 8) whose model is nearest FA's
    parameter count (bisection: the count grows with the width); refused if even that is
    more than 1% away."""
    target = param_count(model_overrides(plan, "fa"))
    count = functools.cache(lambda w: param_count(model_overrides(plan, "e2e", w)))
    lo, hi = 1, plan.shape.intermediate // _WIDTH_MULTIPLE  # in units of the multiple
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid * _WIDTH_MULTIPLE) < target else (lo, mid)
    best = min((lo * _WIDTH_MULTIPLE, hi * _WIDTH_MULTIPLE),
               key=lambda w: abs(count(w) - target))
    if abs(count(best) - target) > PARAM_TOLERANCE * target:
        raise StudyConfigError(f"TTT-E2E cannot match FA's {target:,} parameters within "
                               f"{PARAM_TOLERANCE:.0%}: nearest is {count(best):,} at "
                               f"intermediate {best}")
    return best


def training_overrides(plan: StudyPlan, arm: str, seed: int) -> dict[str, object]:
    meta = {"training.train_mode": "meta", "training.ilr_init": plan.ilr_init,
            "training.ilr_warmup_steps": plan.ilr_warmup_steps} if arm == "e2e" else {}
    return {
        "training.seq_length": plan.context, "training.global_batch_size": plan.batch,
        "training.total_steps": plan.steps, "training.optimizer_outer.lr": plan.lr,
        "training.optimizer_outer.lr_warmup_steps": plan.lr_warmup_steps,
        "training.model_seed": seed, "training.data_seed": seed,
        **meta,
    }
