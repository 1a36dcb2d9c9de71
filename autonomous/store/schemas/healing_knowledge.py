"""One success table per (failure signature, strategy): ``healing_knowledge``.

Until this migration a second table answered the same question: ``healing_failures`` rows carry
``recovery_used`` / ``success`` and ``FailureMemory.suggest_recovery`` ranked strategies from
them beside the counts of ``healing_knowledge`` (issue 10 item 7). The ranking now reads
``healing_knowledge`` only (``controllers/healing_plan.next_step``). What the failure rows held
and the knowledge did not — a (signature, type, strategy) pair with judged outcomes but no
knowledge row — is folded in here, once; pairs already in ``healing_knowledge`` were counted
from the same steps and are left as they are (adding them again would count twice).
``healing_failures`` stays the per-failure log (similar failures, recurring errors, preventive
actions), no longer a source of success rates.
"""

COMPONENT = "healing_knowledge"

MIGRATIONS = [
    """
    INSERT INTO healing_knowledge(error_signature, error_type, strategy, successes, failures,
                                  updated_at)
    SELECT f.error_signature, COALESCE(f.error_type, 'TRANSIENT'), f.recovery_used,
           SUM(CASE WHEN f.success = 1 THEN 1 ELSE 0 END),
           SUM(CASE WHEN f.success = 0 THEN 1 ELSE 0 END), MAX(f.timestamp)
    FROM healing_failures f
    WHERE f.recovery_used IS NOT NULL AND f.success IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM healing_knowledge k
                      WHERE k.error_signature = f.error_signature
                        AND k.error_type = COALESCE(f.error_type, 'TRANSIENT')
                        AND k.strategy = f.recovery_used)
    GROUP BY f.error_signature, COALESCE(f.error_type, 'TRANSIENT'), f.recovery_used;
    """,
]
