"""Cost of building one load request from the API map, beside the hand-written request it replaced.

    python bench/load_request_build.py            # 200 000 sends and 200 000 searches, 5 rounds

Per request: the hand-written baseline (an f-string path and a dict body, as the workload built the
reference's send before), the prepared operation on the reference's map and on the foreign chat's map
(msgops.load.operations: a format template and body builders), and, for scale, the checks' general
filler (msgops.apimap's regex-based path and JSON filling). Prints microseconds per request, best round.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from msgops import apimap
from msgops.load import operations
from tests.foreign_chat import app as foreign


def best_us(fn: Callable[[int], Any], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            fn(i)
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    conversation = str(uuid.uuid4())
    content = "msgops-load 3f2a.17 1764520000.123456 alpha"
    words = ("alpha", "bravo", "charlie")

    def baseline(i: int) -> Any:
        return (f"/conversations/{conversation}/messages", {"content": content, "client_msg_id": f"run.{i}"})

    def baseline_search(i: int) -> Any:
        return f"/conversations/{conversation}/messages/search?q={random.choice(words)}"

    rows: list[tuple[str, Callable[[int], Any]]] = [("hand-written send (baseline)", baseline),
                                                   ("hand-written search (baseline)", baseline_search)]
    for label, raw in (("reference", None), ("foreign chat", foreign.API)):
        prepared = operations.bind(apimap.parse(raw), ["send", "search"])
        send, search = prepared["send"], prepared["search"]

        def build_send(i: int, op: operations.Prepared = send) -> Any:
            values = {"conversation_id": conversation, "content": content, "client_msg_id": f"run.{i}"}
            return op.url(values), op.json(values)

        def build_search(i: int, op: operations.Prepared = search) -> Any:
            return op.url({"conversation_id": conversation, "query": random.choice(words)})

        rows += [(f"prepared send, {label} map", build_send), (f"prepared search, {label} map", build_search)]
    op = apimap.REFERENCE["send_message"]

    def general(i: int) -> Any:
        values = {"conversation_id": conversation, "content": content, "client_msg_id": f"run.{i}"}
        return apimap._fill_path(op.path, values), apimap._fill_json(op.json_body, values)

    rows.append(("checks' general filler, send (for scale)", general))
    for label, fn in rows:
        print(f"{label:45} {best_us(fn, args.n, args.rounds):7.2f} us/request")


if __name__ == "__main__":
    main()
