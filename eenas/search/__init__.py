"""Hardware-aware NSGA-II search over early-exit networks with progressively refitted predictors."""

from eenas.search.config import SEARCH_BUDGETS, SearchBudget, SearchConfig
from eenas.search.run import SearchResult, SearchRun, build_run
from eenas.search.space import SearchSpace, ThresholdGrid

__all__ = ["SEARCH_BUDGETS", "SearchBudget", "SearchConfig", "SearchResult", "SearchRun", "SearchSpace",
           "ThresholdGrid", "build_run"]
