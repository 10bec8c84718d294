"""Recovery after a broker kill on the local 3-broker cluster (issue 15).

The scenario of :mod:`flowerhub.testing.broker_loss`: 30 simulated sites on a bridge, a streams
worker and an archiver on topics the worker created with the cluster's replication rule
(3 replicas, min.insync.replicas 2); one broker leading telemetry partitions is killed -9,
later the controller. Figures:

- ``broker_loss_gap_<topic>``: per topic the bridge produces, the time from the last record
  acknowledged before the kill to the first after it (worst of the two kills). Baseline: the
  leader election measured in the same run (kill -> every watched partition led by a live
  broker); goal: at most the election + 2 s.
- ``broker_loss_site_stall``: the longest gap between two acknowledged telemetry records of
  one site; baseline: election + the polling interval (what an ideal pipeline shows).
- ``broker_loss_lost`` / ``broker_loss_duplicates``: telemetry events the bridge polled and
  the archive lacks; records of telemetry and commands whose event id was already in the
  log. Goal 0 each; baseline: the events polled (so the ratio is the share).
- ``broker_loss_order``: order sent after the kill -> the last of the 30 sites' results
  (worst of the two kills); baseline: the election.

Always on a fresh local cluster of its own (it kills nodes), whatever
``KAFKA_BOOTSTRAP_SERVERS`` says.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import BenchResult
from flowerhub.broker.launcher import local_cluster
from flowerhub.testing.broker_loss import LossReport, run_broker_loss

SITES = 30
INTERVAL_S = 1.0


def figures(report: LossReport) -> list[BenchResult]:
    election = max(r.election_s for r in report.rounds)
    roles = ", ".join(f"{r.role} {r.victim}: {r.election_s:.2f} s" for r in report.rounds)
    out = [
        BenchResult(
            f"broker_loss_gap_{topic}",
            max(gaps),
            "s",
            election,
            "<= election + 2 s",
            higher_is_better=False,
            note=f"per kill {[round(g, 2) for g in gaps]}; elections {roles}",
        )
        for topic, gaps in sorted(report.gap_s.items())
        if gaps
    ]
    out.append(
        BenchResult(
            "broker_loss_site_stall",
            report.max_site_gap_s,
            "s",
            election + INTERVAL_S,
            "<= election + 2 s + the polling interval",
            higher_is_better=False,
            note=f"{SITES} sites polled every {INTERVAL_S:g} s; worst poll->ack delay "
            f"{report.max_delay_s:.2f} s",
        )
    )
    out.append(
        BenchResult(
            "broker_loss_lost",
            float(report.lost),
            "events",
            float(report.emitted),
            "0",
            higher_is_better=False,
            note=f"{report.archived} of {report.emitted} polled telemetry events archived",
        )
    )
    dups = sum(report.log_duplicates.values())
    out.append(
        BenchResult(
            "broker_loss_duplicates",
            float(dups),
            "records",
            float(report.emitted),
            "0",
            higher_is_better=False,
            note=f"in the log per topic {report.log_duplicates}; in the archive "
            f"{report.archive_duplicates}",
        )
    )
    out.append(
        BenchResult(
            "broker_loss_order",
            max(r.order_s for r in report.rounds),
            "s",
            election,
            f"every one of {SITES} sites answers",
            higher_is_better=False,
            note=", ".join(
                f"{r.role}: {r.order_sites}/{SITES} in {r.order_s:.1f} s" for r in report.rounds
            ),
        )
    )
    return out


def run() -> list[BenchResult]:
    with tempfile.TemporaryDirectory(prefix="bench-broker-loss-") as tmp:
        root = Path(tmp)
        with local_cluster(3, root / "kafka") as cluster:
            report = run_broker_loss(cluster, root, sites=SITES, interval_s=INTERVAL_S)
    return figures(report)
