"""Extra `bpm` sub-commands: `bpm simulate FILE.bpmn SCENARIO.json` runs a scenario without a database."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path


def register_commands(subparsers) -> None:
    simulate = subparsers.add_parser("simulate", help="run a scenario against a BPMN file in memory")
    simulate.add_argument("bpmn", help="the .bpmn file")
    simulate.add_argument("scenario", help="a JSON file: {variables, steps: [...], max_steps, expect}")
    simulate.add_argument("--process", default=None, help="process id when the file has several")
    simulate.add_argument("--start", default=None, help="simulated start time (ISO-8601, default: now)")
    simulate.set_defaults(handler=_simulate)


def _simulate(args) -> int:
    from bpm.domain.errors import DomainError
    from bpm.services import simulation

    start = datetime.fromisoformat(args.start) if args.start else datetime.now(UTC)
    try:
        scenario = json.loads(Path(args.scenario).read_text(encoding="utf-8"))
        result = simulation.simulate_bpmn(Path(args.bpmn).read_bytes(), scenario, start, args.process)
    except (OSError, ValueError) as error:
        print(f"bpm simulate: {error}", file=sys.stderr)
        return 2
    except DomainError as error:
        print(f"bpm simulate: {error.detail}", file=sys.stderr)
        for problem in getattr(error, "problems", []):
            print(f"  - {problem}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return 0 if result["ok"] else 1
