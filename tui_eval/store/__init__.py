"""The SQLite trace store: schema, writes, MLflow's filter grammar and the list view's summaries."""

from tui_eval.store.records import TraceSummary
from tui_eval.store.store import INCOMPLETE_KEY, STORE_ENV_VAR, Store, default_store_path

__all__ = ["INCOMPLETE_KEY", "STORE_ENV_VAR", "Store", "TraceSummary", "default_store_path"]
