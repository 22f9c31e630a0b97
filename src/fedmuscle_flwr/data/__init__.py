"""Datasets: raw private (labelled) splits, public sets, partitioning and caches.

Entry points live in :mod:`fedmuscle_flwr.data.registry` (``load_private``,
``load_public``, ``dataset_info``, ``list_datasets``) and
:mod:`fedmuscle_flwr.data.prepare` (``prepare``). No flwr imports here.
"""
