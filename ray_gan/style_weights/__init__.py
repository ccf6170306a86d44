"""Style via weights: blend two compatible generators (:mod:`ray_gan.style_weights.blend`).

Fine-tuning a base model onto a new style is a training run
(:mod:`ray_gan.train.finetune`, ``ray-gan finetune``)."""
