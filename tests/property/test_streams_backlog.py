"""Reading the same log live or as a backlog gives the same FleetStates and setpoints.

The log: sites reporting once a second (each at its own instant in the second, arriving a
little later), spread over a few telemetry partitions, and a few fleet requests. Live: the
records arrive in the order of their arrival, every partition's owner folds what arrived in
the last 100 ms, silent partitions follow the clock, the leader acts after each step, the
requests come when the clock passes them. Backlog: each partition's whole log in uneven
batches, one partition after the other, every request there from the start, the leader
acting only at the end. Both run the workers' pure steps (``streams.testing.pipeline``);
neither may drop a record as late. (Before per-partition stream time, a backlog of 120,000
records over 12 partitions lost about 90 % of them as late.)
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.codec import encode
from streams.app import settings_with
from streams.testing.agents import activation_record, fleet_setpoint_record, telemetry_record
from streams.testing.pipeline import Outcome, Pipeline

S = 1_000_000
T0 = 1_700_000_000 * S
SETTINGS = settings_with(bootstrap="localhost:9092", app_id="prop-backlog")


def make_log(seed: int, sites: int, partitions: int, seconds: int, requests: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    part = {f"s{i:02d}": rnd.randrange(partitions) for i in range(sites)}
    arrivals = []  # (arrival, partition, event time, value)
    for k in range(seconds):
        for site, p in part.items():
            t = T0 + k * S + rnd.randrange(S)
            value = encode(
                "SiteTelemetry",
                telemetry_record(
                    site, t, battery_power_kw=rnd.uniform(-5, 5), headroom_up_kw=rnd.uniform(0, 8)
                ),
            )
            arrivals.append((t + rnd.randrange(300_000), p, t, value))
    arrivals.sort(key=lambda a: a[0])
    fleet = []
    for n in range(requests):
        t = T0 + rnd.randrange(2 * S, seconds * S)
        if rnd.random() < 0.5:
            record = activation_record(
                "flowerhub",
                f"a{n}",
                t,
                product="MFRR",
                requested_mw=rnd.uniform(0, 0.01),
                end_time=t + 60 * S,
            )
            fleet.append((t, "MarketActivation", record))
        else:
            record = fleet_setpoint_record(
                "flowerhub", f"f{n}", t, rnd.uniform(-0.01, 0.01), t + 60 * S
            )
            fleet.append((t, "FleetSetpoint", record))
    fleet.sort(key=lambda f: f[0])
    return {
        "arrivals": arrivals,
        "fleet": fleet,
        "partitions": partitions,
        "end": T0 + (seconds + 30) * S,
    }


def live(log: dict[str, Any]) -> Outcome:
    pipe = Pipeline(SETTINGS, log["partitions"])
    arrivals, fleet = log["arrivals"], list(log["fleet"])
    moved: dict[int, tuple[int, int]] = {}  # partition -> (clock from records, wall then)
    step = 100_000
    wall = arrivals[0][0]
    i = 0
    while i < len(arrivals) or fleet:
        wall += step
        pipe.wall_us = wall
        chunk: dict[int, list[bytes]] = {}
        while i < len(arrivals) and arrivals[i][0] <= wall:
            _, p, _, value = arrivals[i]
            chunk.setdefault(p, []).append(value)
            i += 1
        for p, values in chunk.items():
            pipe.telemetry(p, values)
            clock = pipe.owners[p].clock
            assert clock is not None
            moved[p] = (clock, wall)
        for p in range(log["partitions"]):
            if p not in chunk and p in moved:
                clock, then = moved[p]
                pipe.idle(p, clock + (wall - then))
        while fleet and fleet[0][0] + 200_000 <= wall:  # requests arrive 0.2 s late
            pipe.fleet(*fleet.pop(0))
        pipe.lead()
    return pipe.finish(log["end"])


def backlog(log: dict[str, Any], seed: int) -> Outcome:
    rnd = random.Random(seed)
    pipe = Pipeline(SETTINGS, log["partitions"])
    pipe.wall_us = 0  # a backlog is read in no time: the wall does not move
    for request in log["fleet"]:
        pipe.fleet(*request)
    for p in rnd.sample(range(log["partitions"]), log["partitions"]):
        values = [a[3] for a in log["arrivals"] if a[1] == p]
        first = 0
        while first < len(values):
            size = rnd.choice([1, 7, 300, 5000])
            pipe.telemetry(p, values[first : first + size])
            first += size
            pipe.lead()
    return pipe.finish(log["end"])


@settings(max_examples=12, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 12),
    st.integers(1, 4),
    st.integers(3, 25),
    st.integers(0, 4),
)
def test_live_and_backlog_give_the_same_fleet_states_and_setpoints(
    seed: int, sites: int, partitions: int, seconds: int, requests: int
) -> None:
    log = make_log(seed, sites, partitions, seconds, requests)
    a, b = live(log), backlog(log, seed)
    assert a.states == b.states
    assert a.setpoints == b.setpoints
    assert (a.late_telemetry, a.late_slices, a.late_inputs) == (0, 0, 0)
    assert (b.late_telemetry, b.late_slices, b.late_inputs) == (0, 0, 0)
    assert len(a.states) >= seconds - 1
