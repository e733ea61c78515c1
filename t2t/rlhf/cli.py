"""`t2t rlhf <command>`: the InstructGPT pipeline's entry points (SFT itself is `t2t train`).

    t2t rlhf data --output DIR                                   the synthetic preference task
    t2t train --gin_file=rlhf/sft.gin --gin.DEMONSTRATIONS=...   (1) supervised fine-tuning
    t2t rlhf reward-model --gin_file=rlhf/reward_model.gin ...   (2) the reward model
    t2t rlhf ppo --gin_file=rlhf/ppo.gin ...                     (3) PPO against it
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Sequence

from t2t.configuration import split_gin_flags


def run_gin_entry_point(prog: str, argv: Sequence[str] | None, run: Callable[[], Any],
                        summary: Callable[[Any], str]) -> int:
    """Parse `--gin_file`/`--gin.NAME=VALUE` flags, call `run`, print `summary(result)`."""
    from t2t.configuration import ConfigError, parse_gin

    files, bindings, rest = split_gin_flags(sys.argv[1:] if argv is None else argv)
    if rest or not files:
        print(f"{prog}: expected --gin_file=FILE and --gin.NAME=VALUE flags"
              + (f", got {rest}" if rest else "") + f".\n\n{__doc__}", file=sys.stderr)
        return 2
    _log_to_console()
    try:
        parse_gin(files, bindings)
        result = run()
    except (ConfigError, FileNotFoundError, FileExistsError) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 2
    print(summary(result))
    return 0


def _log_to_console() -> None:
    """The pipeline's progress lines (t2t.rlhf loggers) on stderr, without library chatter."""
    log = logging.getLogger("t2t.rlhf")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch `t2t rlhf data|reward-model|ppo ...`."""
    from t2t.rlhf import ppo, preference_task, reward_model

    commands = {"data": preference_task.main, "reward-model": reward_model.main, "ppo": ppo.main}
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in commands:
        print(f"usage: t2t rlhf {{{','.join(commands)}}} ...\n\n{__doc__}", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])
