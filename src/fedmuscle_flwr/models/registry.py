"""The only place a backbone name becomes a class (docs/design.md §2 rule 7).

``model.backbone`` is one of:

* a registered name (:data:`ENCODERS`, see :func:`list_models`);
* ``tv:<torchvision model>`` (e.g. ``tv:resnet18``);
* ``hf:<Hugging Face id or local folder>`` (e.g. ``hf:distilbert-base-uncased``);
* ``package.module:callable`` — a user plugin (:mod:`models.plugin`).

Builders are called as ``builder(pretrained=spec.pretrained, **spec.options)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fedmuscle_flwr.config.profile import ModelSpec
from fedmuscle_flwr.models.base import ENCODERS, Encoder
from fedmuscle_flwr.models.hf import build_hf
from fedmuscle_flwr.models.plugin import build_plugin
from fedmuscle_flwr.models.tv import build_torchvision

#: backbone forms other than a registered name -> description
SCHEMES: dict[str, str] = {
    "tv:<name>": "any torchvision classifier; cached/downloaded weights else random",
    "hf:<id|path>": "transformers AutoModel (BERT, DistilBERT, ViT, SegFormer, ...)",
    "package.module:callable": "user plugin returning an Encoder or an nn.Module",
}


def register_encoder(
    name: str, builder: Callable[..., Encoder], *, overwrite: bool = False
) -> None:
    """Add ``builder`` under ``name`` (it must accept ``pretrained`` and options)."""
    if ":" in name:
        raise ValueError(f"encoder names cannot contain ':' ({name!r})")
    if name in ENCODERS and not overwrite:
        raise ValueError(f"encoder {name!r} is already registered")
    ENCODERS.add(name, builder, overwrite=overwrite)


def list_models() -> dict[str, str]:
    """Map registered backbone names to a one-line description (also: ``SCHEMES``)."""
    return {name: _summary(fn) for name, fn in sorted(ENCODERS.items())}


def build_encoder(spec: ModelSpec) -> Encoder:
    """Build the encoder named by ``spec.backbone`` with ``spec.options``.

    Raises
    ------
    ValueError
        Unknown backbone (the message lists the known ones) or unknown option.
    """
    name, options = spec.backbone, dict(spec.options)
    for prefix, builder in (("tv:", build_torchvision), ("hf:", build_hf)):
        if name.startswith(prefix):
            _check_options(builder, options, name)
            return builder(name[len(prefix) :], pretrained=spec.pretrained, **options)
    if name in ENCODERS:
        _check_options(ENCODERS[name], options, name)
        return ENCODERS[name](pretrained=spec.pretrained, **options)
    if ":" in name:
        return build_plugin(name, options, spec.pretrained)
    raise ValueError(
        f"unknown model.backbone {name!r}; known: {sorted(ENCODERS)} "
        f"or one of the forms {list(SCHEMES)}"
    )


def check_backbone(spec: ModelSpec) -> None:
    """Check ``spec.backbone`` and its options without building anything.

    Registered names and ``tv:`` models are checked against their registries;
    ``hf:`` ids and plugins are only known once built (at the client).

    Raises
    ------
    ValueError
        Unknown backbone or option (the message lists what is accepted).
    """
    name, options = spec.backbone, dict(spec.options)
    if name.startswith("tv:"):
        from torchvision.models import list_models

        known = list_models(module=_torchvision_models())
        if name[3:] not in known:
            raise ValueError(
                f"model.backbone {name!r}: unknown torchvision model; known: {known}"
            )
        _check_options(build_torchvision, options, name)
    elif name.startswith("hf:") or (":" in name and name not in ENCODERS):
        return
    elif name in ENCODERS:
        _check_options(ENCODERS[name], options, name)
    else:
        raise ValueError(
            f"unknown model.backbone {name!r}; known: {sorted(ENCODERS)} "
            f"or one of the forms {list(SCHEMES)}"
        )


def _torchvision_models() -> Any:
    import torchvision.models

    return torchvision.models


def _check_options(
    builder: Callable[..., Any], options: dict[str, Any], name: str
) -> None:
    params = inspect.signature(builder).parameters
    accepted = {
        k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    } - {"pretrained"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"model.options {unknown} unknown for backbone {name!r}; "
            f"accepted: {sorted(accepted)}"
        )


def _summary(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.splitlines()[0] if doc else ""
