"""`flowerhub demo`: a whole fleet activation end to end on real components, then the audit.

Modules: ``scenario`` (the scenario file model), ``fleet`` (fleet composition from a seed),
``sims`` (the simulated homes and their bridge configs), ``processes`` (child processes and
memory), ``orchestrate`` (the run), ``results`` (audit and expectations), ``cli``.
Scenario files ship in ``flowerhub/demo/scenarios/*.yaml``.
"""
