"""Learning engine (issue 12): every learned change is a reviewable YAML proposal.

* ``knowledge_graph`` (+ ``graph_view``): the operator's persisted graph of what it saw,
  decided, did and how it ended; ``why``, bounded subgraphs as JSON / SVG.
* ``proposals``, ``proposal_patch``, ``proposal_rules``, ``proposal_apply``: the one proposal
  lifecycle (proposed → evaluated → awaiting approval | applied → baking → kept | reverted),
  one-scalar patches with their inverse, git commits, step ≤ 25 % / K baking / cooldown.
  ``controllers/learning.py`` reconciles them through the Executor.
* ``feedback_loop`` (+ ``feedback_stats``): feedback, findings by interval, action items,
  alert-threshold tuning toward a target precision (as proposals).
* ``performance_optimizer`` (+ ``safe_search``): safe ask/tell tuning in a box around the
  last good value; ``optimizer_proposals`` turns a declared target's trials into proposals.
* ``pattern_analyzer`` (pure) and ``pattern_source`` (reads request / telemetry history and
  graph decision sequences): seasonality, peaks, bursts, anomalies, next action, insights.
* ``route_optimizer`` (+ ``route_bandit``): the Neural Router's contextual bandit;
  ``router_service`` serves it behind ``POST /api/learning/route`` with a persisted decision
  log, per-model circuits and the ``router.*`` series.
* ``strategy_posterior``: per failure signature × strategy Beta posteriors and the
  lower-credible-bound chooser (called by the healing plan, ``controllers/healing_plan.py``).
* ``learning_orchestrator`` (cycles, insights, export / import), ``facade`` (the API's
  interface, ``ctx.subsystems["learning"]``), ``retention``.

Policies: ``policies/learning.yaml`` (section ``learning``: proposals, feedback, alert tuning)
and ``policies/learning_tuning.yaml`` (``learning_optimizer``, ``learning_routing``,
``learning_patterns``).
"""
