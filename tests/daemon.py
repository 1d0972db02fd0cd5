"""The daemon as systemd runs it, for tests: ``python -m agent run --config FILE`` as a process,
stopped by SIGTERM, which must end it cleanly (exit 0) within a bound."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path


async def start_daemon(cfg: Path, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start ``kilnwatch run``; ``env`` is added to this process's environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip


async def stop_daemon(proc: asyncio.subprocess.Process, within: float = 30) -> str:
    """SIGTERM; the daemon must exit 0 within ``within`` seconds. Returns its stderr (the log)."""
    err = b""
    try:
        assert proc.returncode is None, "the daemon ended before it was stopped"
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), within)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return err.decode()
