"""Hardware-aware NSGA-II search over early-exit networks with progressively refitted predictors."""

from eenas.search.config import SEARCH_BUDGETS, SearchBudget, SearchConfig
from eenas.search.outputs import write_results
from eenas.search.run import SearchRun
from eenas.search.space import SearchSpace, ThresholdGrid

__all__ = ["SEARCH_BUDGETS", "SearchBudget", "SearchConfig", "SearchRun", "SearchSpace", "ThresholdGrid",
           "write_results"]
