"""An agent process for the crash tests: ``python agent_proc.py --url URL --db FILE [--record N]``.

Records ``N`` alert events in the outbox (printing ``RECORDED``), then runs :class:`MqttLink`
until it is killed. The tests SIGKILL it to check the last will and the outbox's durability.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from mqtt_support import make_event

from agent import storage
from agent.config import MqttSection
from agent.mqtt import MqttLink
from agent.outbox import record_events


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--record", type=int, default=0)
    args = p.parse_args()
    con = storage.connect(args.db)
    link = MqttLink(
        MqttSection(url=args.url, reconnect_min_secs=0.2, reconnect_max_secs=1), site="plant1", con=con
    )
    if args.record:
        record_events(con, [make_event(i) for i in range(args.record)])
        print("RECORDED", flush=True)
    link.notify()
    print("RUNNING", flush=True)
    await link.run()


if __name__ == "__main__":
    asyncio.run(main())
