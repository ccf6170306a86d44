"""Fine-tuning's side of training: start from a base model's weights, and FreezeD.

A fine-tuning run (``ray-gan finetune``, :class:`~ray_gan.config.FinetuneConfig`) is a
training run whose plan names a base model (:class:`~ray_gan.train.plan.InitFrom`): G
starts from the base's EMA generator and D from its discriminator, style rows matched by
name (:func:`ray_gan.models.transfer.transfer_state`), both read with their sha256
checked.
"""

from __future__ import annotations

from torch import nn

from ray_gan.models.transfer import transfer_state


def init_from_base(G: nn.Module, D: nn.Module, checkpoint: str, base_styles: list[str], styles: list[str]
                   ) -> dict[str, dict[str, int]]:
    """Load the base checkpoint ``checkpoint`` (its styles ``base_styles``) into G and D built
    for ``styles``. Returns :func:`transfer_state`'s counts for G and D."""
    from ray_gan import checkpoint as ckpt  # (here: FreezeD's users, the GAN step among them, read no storage)

    d_state = ckpt.read_discriminator_state(checkpoint)
    if d_state is None:
        raise ValueError(f"{checkpoint} has no discriminator weights (a generator-only model): "
                         "fine-tuning needs a model with a discriminator")
    return {"generator": transfer_state(G, ckpt.read_state(checkpoint, "generator_ema"), base_styles, styles),
            "discriminator": transfer_state(D, d_state, base_styles, styles)}


def freeze_input_layers(D: nn.Module, n: int) -> int:
    """FreezeD (Mo et al. 2020, "Freeze the Discriminator"): hold the first ``n`` of D's
    input-side layers (``D.input_layers()``) at their current weights, so fine-tuning on a
    few hundred images adapts only the layers above them and the heads. Returns the number
    of parameter tensors frozen; a clear error when D has fewer such layers."""
    layers = D.input_layers()
    if n > len(layers):
        raise ValueError(f"freeze_d {n}: this discriminator has {len(layers)} input-side layers to freeze "
                         f"(its heads always train)")
    frozen = [p for layer in layers[:n] for p in layer.parameters()]
    for p in frozen:
        p.requires_grad_(False)
    return len(frozen)
