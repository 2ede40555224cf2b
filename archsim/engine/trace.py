"""Chrome / Perfetto trace (``traceEvents`` JSON) of the first simulated batches.

Each span is one action of one component instance: process = component kind (tile, dpu,
interconnect), thread = instance (tile3, dpu, dpu->tile3), ts/dur in microseconds of
simulated time; pid/tid are integers labelled by process_name / thread_name metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

from archsim.io import atomic_write_text

MAX_EVENTS = 300_000


class Tracer:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.offset_ps = 0
        self.dropped = 0

    def span(self, kind: str, instance: str, name: str, phase: str, start_ps: int, end_ps: int) -> None:
        if len(self.events) >= MAX_EVENTS:
            self.dropped += 1
            return
        self.events.append({
            "name": name,
            "cat": phase,
            "ph": "X",
            "pid": kind,
            "tid": instance,
            "ts": (self.offset_ps + start_ps) / 1e6,
            "dur": (end_ps - start_ps) / 1e6,
        })

    def marker(self, name: str, at_ps: int) -> None:
        self.events.append({"name": name, "ph": "i", "s": "g", "pid": "batch", "tid": "batch",
                            "ts": (self.offset_ps + at_ps) / 1e6})

    def numbered(self) -> list[dict]:
        """Events with integer pid/tid (as Perfetto's JSON importer wants) plus the
        process_name / thread_name metadata events that label them."""
        pids: dict[str, int] = {}
        tids: dict[tuple[str, str], int] = {}
        out: list[dict] = []
        for event in self.events:
            pid = pids.setdefault(event["pid"], len(pids) + 1)
            tid = tids.setdefault((event["pid"], event["tid"]), len(tids) + 1)
            out.append(dict(event, pid=pid, tid=tid))
        meta = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}}
                for name, pid in pids.items()]
        meta += [{"name": "thread_name", "ph": "M", "pid": pids[p], "tid": tid, "args": {"name": t}}
                 for (p, t), tid in tids.items()]
        return meta + out

    def write(self, path: str | Path) -> None:
        doc = {"traceEvents": self.numbered(), "displayTimeUnit": "ns",
               "otherData": {"dropped_events": self.dropped, "time_unit": "us of simulated time"}}
        atomic_write_text(Path(path), json.dumps(doc))
