"""FedDistill on many machines: the kit's client and server steps as a Flower ClientApp and Strategy.

Each client's reply carries its public-set predictions (an ArrayRecord), not its weights. The strategy
stacks the replies in client order, lets the simulated byzantine clients attack (an omniscient attacker,
as in the in-process simulation), aggregates with any kit defence or ExpGuard, distils the server
model and sends it out again. ``run_flower`` runs it in Flower's simulation engine on this machine; the
same ``client_app``/``server_app`` objects deploy with ``flwr run`` on real SuperNodes, where each node
sets ``partition-id`` in its node config.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

import torch

from .defences import ExpGuard
from .simulation import Federation, FLConfig, client_predictions, server_step, setup

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # no network calls home


@functools.lru_cache(maxsize=4)
def _federation(cfg: FLConfig) -> Federation:
    # every ClientApp process derives the same data, public set and parts from the config's seed; the
    # simulation gives its clients CPUs only (num_gpus 0), so the federation lives on the CPU
    return setup(cfg, device="cpu")


def client_app(cfg: FLConfig) -> Any:
    """A Flower ClientApp: receive the server model, train on this node's part, reply with predictions."""
    from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        client = int(context.node_config["partition-id"])
        fed = _federation(cfg)
        if not 0 <= client < len(fed.parts):
            raise ValueError(f"partition-id {client} outside the {len(fed.parts)} honest clients of this config")
        r = int(msg.content["config"]["server-round"]) - 1
        state = msg.content["arrays"].to_torch_state_dict()
        predictions = client_predictions(cfg, fed, r, clients=[client], server_state=state)[0]
        content = RecordDict({"predictions": ArrayRecord({"p": Array(predictions.numpy())}),
                              "metrics": MetricRecord({"client": client, "num-examples": len(fed.parts[client])})})
        return Message(content=content, reply_to=msg)

    return app


def _strategy_class() -> type:
    from flwr.app import ArrayRecord, MetricRecord
    from flwr.serverapp.strategy import FedAvg

    class FedDistillStrategy(FedAvg):
        """FedAvg's sampling and messaging; aggregation replaced by attack, defence and distillation."""

        def __init__(self, cfg: FLConfig, fed: Federation) -> None:
            honest = len(fed.parts)
            super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=honest,
                             min_available_nodes=honest)
            self.cfg, self.fed = cfg, fed
            self.guard = ExpGuard(cfg.defence, eta=cfg.eta, n_clients=cfg.clients) if cfg.expguard else None
            self.rounds: list[dict[str, Any]] = []

        def aggregate_train(self, server_round: int, replies: Iterable[Any]) -> tuple[Any, Any]:
            replies = [m for m in replies if not m.has_error()]
            if len(replies) != len(self.fed.parts):
                raise RuntimeError(f"round {server_round}: {len(replies)} of {len(self.fed.parts)} clients replied")
            by_client = sorted(replies, key=lambda m: int(m.content["metrics"]["client"]))
            honest = torch.stack([torch.from_numpy(m.content["predictions"]["p"].numpy().copy()) for m in by_client])
            record, result = server_step(self.cfg, self.fed, honest, server_round - 1, self.guard)
            self.rounds.append({**record, "predictions": honest, "aggregate": result.value})
            return ArrayRecord(self.fed.server.state_dict()), MetricRecord({"accuracy": record["accuracy"]})

    return FedDistillStrategy


def server_app(cfg: FLConfig, strategy: Any) -> Any:
    """A Flower ServerApp running ``strategy`` (from :func:`make_strategy`) for ``cfg.rounds`` rounds."""
    from flwr.app import ArrayRecord, Context
    from flwr.serverapp import Grid, ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy.start(grid=grid, initial_arrays=ArrayRecord(strategy.fed.server.state_dict()), num_rounds=cfg.rounds)

    return app


def make_strategy(cfg: FLConfig) -> Any:
    """The FedDistill strategy for ``cfg`` (its ``rounds`` list records predictions, aggregate, accuracy)."""
    if cfg.protocol != "feddistill":
        raise ValueError("the Flower adapter runs protocol='feddistill'")
    return _strategy_class()(cfg, setup(cfg, device="cpu"))


def run_flower(cfg: FLConfig, *, cpus_per_client: float = 1.0, verbose: bool = False) -> Any:
    """Run ``cfg`` through Flower's simulation engine (Ray, local only); returns the strategy with its rounds."""
    from flwr.simulation import run_simulation

    strategy = make_strategy(cfg)
    honest = len(strategy.fed.parts)
    run_simulation(server_app=server_app(cfg, strategy), client_app=client_app(cfg), num_supernodes=honest,
                   backend_config={"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
                                   # loopback only: the Ray cluster of the simulation never listens on a network
                                   "init_args": {"include_dashboard": False, "num_cpus": max(1, os.cpu_count() or 1),
                                                 "_node_ip_address": "127.0.0.1"}},
                   verbose_logging=verbose)
    return strategy
