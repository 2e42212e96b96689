"""The names other modules import from here since the original design; the SQL for `metrics`,
`metrics_history` and `pass_rules` lives in `tasks_metrics.repository`."""

from tasks_metrics.repository import (
    RULE_LOCK,
    BandChanges,
    RuleVersion,
    StaleRule,
    apply_rule,
    current_rule,
    ensure_rule,
    load_metrics,
    preview_rule,
    rule_history,
    save_metrics,
)

__all__ = ["RULE_LOCK", "BandChanges", "RuleVersion", "StaleRule", "apply_rule", "current_rule",
           "ensure_rule", "load_metrics", "preview_rule", "rule_history", "save_metrics"]
