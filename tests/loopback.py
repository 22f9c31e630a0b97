"""The in-process Flower Grid used by tests (see :mod:`fedmuscle_flwr.launch.inprocess`),
with fixed node ids 101, 102, ... so that tests can name nodes."""

from fedmuscle_flwr.launch.inprocess import InProcessGrid


class LoopbackGrid(InProcessGrid):
    def __init__(self, handler, num_nodes, run_config=None, first_id=101):
        super().__init__(handler, num_nodes, run_config=run_config, first_id=first_id)


__all__ = ["LoopbackGrid"]
