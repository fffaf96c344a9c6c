"""Linear over-parameterization: layers that are a product of several linear maps, and tools to expand a model
into them and collapse it back.

An over-parameterized layer computes the same *kind* of function as ``nn.Linear`` / ``nn.Conv2d`` (one affine
map), but through ``depth`` factors with no non-linearity between them. This changes the optimisation (the
paper's low-rank simplicity bias) without changing what the layer can express, so every layer can be collapsed
into a single standard layer with identical outputs.

Entry points: :class:`OverparamLinear` and :class:`OverparamConv2d` (fresh layers, or ``from_module`` to expand an
existing one, optionally keeping its function), :func:`overparameterize` (a whole model) and :func:`collapse` (back
to plain ``nn.Linear`` / ``nn.Conv2d``). Each layer's ``end_to_end_weight()`` / ``end_to_end_bias()`` (also the
read-only ``.weight`` / ``.bias``) give the single map it computes, e.g. to measure its effective rank; each read
composes the factors once, and inside ``with cached():`` once for the whole block. ``layer.costs(x)`` gives the
multiply-add estimates that ``mode="auto"`` compares.

Layout: ``algebra.py`` (pure tensor functions: composing kernels, biases, batch-norm folding, the right-inverse
fill), ``costs.py`` (the cost model), ``layers.py`` (the modules and :func:`cached`), ``surgery.py`` (whole
models). A linear layer goes through the same algebra as a 1x1 convolution with one group. Constructors take the
sizes (and a conv's ``kernel_sizes``) positionally and every option by keyword.

Conventions, shared by every function here:

* **Factors.** Widths run ``in -> hidden -> ... -> hidden -> out``; ``hidden = round(width * out)`` unless an
  explicit hidden width is given. Grouped convolutions keep the same ``groups`` in every factor.
* **Padding and stride.** All zero padding belongs to the first factor and the stride to the last; the factors
  in between are "valid" (unpadded, stride 1) convolutions. Valid convolutions compose into one valid
  convolution whose kernel is the full convolution of the kernels, of size ``Σkᵢ − d + 1``, so the whole layer
  equals one ``nn.Conv2d`` with that kernel, the original padding and the original stride.
* **Padding rule.** Each padding value must lie in ``[0, K − 1]`` where ``K`` is the composed kernel size in
  that dimension (beyond ``K − 1`` output rows would see only padding); ``padding="same"`` needs an odd ``K``
  and stride 1, because a centred kernel is what keeps the size.
* **Skips** (``residual=True``): an identity skip around a block of factors adds the block's input, centred
  (the valid convolutions shrink the map, so "identity" means the centre crop, i.e. a centred delta kernel) and
  subsampled by the stride when the block ends on the last factor. A block gets a skip only when its input and
  output channels match and its composed kernel is odd in both dimensions; ``self.skips`` lists the blocks.
* **Batch norm** (``batch_norm=True``) sits after every factor but the last, before any skip is added (as in a
  ResNet block). In eval mode it is a per-channel affine map and folds exactly into the composed weight.
* **Init.** Every factor is He-normal with ``fan_in`` mode: ``N(0, gain²/fan_in)``, gain 1 for all factors but
  the last and ``sqrt(2 / (1 + negative_slope²))`` for the last. Each gain-1 factor preserves the per-unit
  variance, so the product is scaled like one He-initialised layer. Biases start at zero. Skips add identity
  paths on top, so a layer with skips starts larger than a plain He layer.
* **Fast path.** A layer is a re-parameterisation of one weight, so ``forward`` may compose the end-to-end
  weight and apply it once (same function and gradients). ``mode="auto"`` picks the form with fewer estimated
  FLOPs for the input's shape; batch norm in training mode needs batch statistics and forces the chained form.
"""

from __future__ import annotations

from .costs import ForwardCosts
from .layers import MODES, LayerOptions, OverparamConv2d, OverparamLayer, OverparamLinear, cached
from .surgery import LAYER_TYPES, collapse, overparameterize

__all__ = [
    "LAYER_TYPES", "MODES", "ForwardCosts", "LayerOptions", "OverparamConv2d", "OverparamLayer", "OverparamLinear",
    "cached", "collapse", "overparameterize",
]
