"""One client's test accuracy after phase 1 and after phase 2 (docs/results.md §5).

    python experiments/diag_phase2.py PROFILE FREEZE_NORM_STATS(0|1) MUSCLE_LR [REFIT]

REFIT > 0: after phase 2, that many epochs of the task loss on the head only (a remedy
tried in docs/results.md §5; not part of FedMuscle).

The client (capped at 300/300 samples) alternates E = 3 task epochs and T = 20 Muscle
steps against a Fashion-MNIST CNN's representations of random public batches (M = 1).
"""

import sys

import numpy as np
import torch

from fedmuscle_flwr.clientapp import trainer as training
from fedmuscle_flwr.config.files import load_profile
from fedmuscle_flwr.config.run import MuscleConfig
from fedmuscle_flwr.data.registry import load_private, load_public
from fedmuscle_flwr.method.algorithms import get_algorithm
from fedmuscle_flwr.method.algorithms.base import AlignContext
from fedmuscle_flwr.models.client_model import build_client_model
from fedmuscle_flwr.tasks.registry import get_task

torch.manual_seed(0)
name = sys.argv[1]
freeze = sys.argv[2] == "1"
lr = float(sys.argv[3])
refit = int(sys.argv[4]) if len(sys.argv) > 4 else 0
prof = load_profile(name)
prof = prof.model_copy(
    update={"data": prof.data.model_copy(update={"max_train": 300, "max_test": 300})}
)
task = get_task(prof.task.kind, prof.task.options)
data = load_private(prof.data)
model = build_client_model(prof.model, task, data.info.num_classes, 256, seed=1)
pub = load_public("fashion-mnist-heldout", 5000)
other = build_client_model(
    load_profile("fmnist-cnn").model, get_task("classification", {}), 10, 256, seed=2
)
topt = torch.optim.Adam(model.task_parameters(), lr=1e-3)
aopt = torch.optim.Adam(model.representation_parameters(), lr=lr)
hopt = torch.optim.Adam(model.head_parameters(), lr=1e-3)
cfg = MuscleConfig(dim=256, batch_size=32, partners=1, freeze_norm_stats=freeze)
dev = torch.device("cpu")
rng = np.random.default_rng(0)


def ev() -> float:
    return round(
        training.evaluate(
            model,
            task,
            data.test,
            batch_size=128,
            device=dev,
            num_outputs=data.info.num_classes,
        )[task.primary_metric],
        3,
    )


for r in range(4):
    training.train_task(
        model, task, data.train, topt, epochs=3, batch_size=32, rng=rng, device=dev
    )
    a = ev()
    steps = rng.choice(5000, (20, 32), replace=True)
    z = torch.from_numpy(
        training.encode_public(other, pub, steps, dev)
    )  # (20, 32, 256)
    payloads = [{"partners": z[s][None]} for s in range(20)]
    training.align(
        model,
        pub,
        steps,
        payloads,
        aopt,
        algorithm=get_algorithm("fedmuscle"),
        ctx=AlignContext(cfg, task),
        device=dev,
    )
    b = ev()
    if refit:
        training.train_task(
            model,
            task,
            data.train,
            hopt,
            epochs=refit,
            batch_size=32,
            rng=rng,
            device=dev,
        )
    print(
        f"{name} freeze={freeze} lr={lr} round {r + 1}: "
        f"after task {a}  after align {b}"
        + (f"  after head refit {ev()}" if refit else ""),
        flush=True,
    )
