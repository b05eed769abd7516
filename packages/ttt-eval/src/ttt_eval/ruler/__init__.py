"""RULER's synthetic retrieval suite as a library: sample generators that build prompts
of an exact token length with needles at chosen depths, RULER's metric, Wilson
intervals, a length × depth grid, and candidates for log-likelihood ranking.

No model is needed; a caller generates or scores with its own. Task definitions follow
NVIDIA/RULER (``scripts/synthetic.yaml`` and ``scripts/data/synthetic``).
"""

from ttt_eval.ruler.errors import RulerError
from ttt_eval.ruler.generate import generate_sample
from ttt_eval.ruler.grid import Cell, GridPoint, grid_points, summarize_cells
from ttt_eval.ruler.metric import match_fraction, string_match_all
from ttt_eval.ruler.ranking import rank_accuracy, rank_credit
from ttt_eval.ruler.sample import NeedlePlacement, Sample
from ttt_eval.ruler.stats import wilson_interval
from ttt_eval.ruler.tasks import (
    DEPTH_GRID,
    TASKS,
    CommonWordsTask,
    FrequentWordsTask,
    NiahTask,
    RulerTask,
    VariableTrackingTask,
)

__all__ = [
    "DEPTH_GRID",
    "TASKS",
    "Cell",
    "CommonWordsTask",
    "FrequentWordsTask",
    "GridPoint",
    "NeedlePlacement",
    "NiahTask",
    "RulerError",
    "RulerTask",
    "Sample",
    "VariableTrackingTask",
    "generate_sample",
    "grid_points",
    "match_fraction",
    "rank_accuracy",
    "rank_credit",
    "string_match_all",
    "summarize_cells",
    "wilson_interval",
]
