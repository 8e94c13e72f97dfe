"""Algorithm Distillation (and Expert Distillation): a causal transformer over the steps of
a learning history, predicting the source's next action (Laskin et al., 2022).

This file travels with saved models (``trust_remote_code``): it imports only torch, NumPy,
transformers and, relatively, its config and the shared observation encoder.

Attention is causal over a sliding window of ``config.attention_window`` steps at every
layer, with ALiBi biases (``-slope_h * distance``), through PyTorch's fused attention
kernel (:meth:`ADAttention.attend`). In-context rollouts use
:class:`RollingKVCache`: one preallocated ring buffer of keys and values per layer, one
step at a time for a whole batch of environments; its outputs equal those of a full
forward over the whole rollout, before and after the window has slid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_ad import ADConfig
from .observation_encoding import StepEncoder


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """The ALiBi paper's head slopes: a geometric sequence from ``2^(-8/n)``."""
    closest = 2 ** math.floor(math.log2(num_heads))
    base = 2.0 ** (-8.0 / closest)
    slopes = [base ** (i + 1) for i in range(closest)]
    if closest < num_heads:  # non-power-of-two head counts: interleave the next power's slopes
        extra = 2.0 ** (-4.0 / closest)
        slopes += [extra ** (2 * i + 1) for i in range(num_heads - closest)]
    return torch.tensor(slopes, dtype=torch.float32)


def sliding_alibi_bias(
    slopes: torch.Tensor, query_positions: torch.Tensor, key_positions: torch.Tensor, window: int
) -> torch.Tensor:
    """Additive attention bias ``[H, Q, K]``: ``-slope * (q - k)`` where ``0 <= q - k < window``
    and ``-inf`` elsewhere (the future, keys older than the window, empty slots ``k < 0``)."""
    distance = query_positions[:, None] - key_positions[None, :]
    allowed = (distance >= 0) & (distance < window) & (key_positions[None, :] >= 0)
    bias = -slopes[:, None, None] * distance.to(slopes.dtype)
    return bias.masked_fill(~allowed, float("-inf"))


class DropoutMasks:
    """The ``count`` inverted-dropout masks of ``shape`` of one forward pass: each element is
    0 with probability ``p`` (rounded to a multiple of 2^-16) and ``1 / (1 - p)`` otherwise,
    so its mean is exactly 1. The random words of all of them are drawn at once; each mask
    is made when it is used (so it is still in the CPU caches when it multiplies).

    Why not ``F.dropout``: on the CPU it samples a Bernoulli per element from a float draw
    and then multiplies, and fwd+bwd of one ``[32, 160, 64]`` residual dropout cost ~20x the
    residual add (4.7 ms against 0.23); a training step of the darkroom recipe has nine.
    Here a 64-bit random word gives four 16-bit uniform draws and one comparison writes
    the 0/1 mask (then scaled), which multiplies the branch (:func:`_residual`). On the CPU
    the words come from NumPy's SFC64 (2.5x faster than torch's mt19937 for this), seeded
    once per forward from torch's generator, so ``torch.manual_seed`` still fixes every mask
    (and a resumed run, which restores torch's generator, draws the same ones); on other
    devices from torch's generator on the device.
    """

    def __init__(
        self, p: float, count: int, shape: torch.Size, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.threshold = min(round(p * 65536), 65535)
        self.scale = 65536 / (65536 - self.threshold)
        self.shape, self.dtype = shape, dtype
        self.numel = math.prod(shape)
        per_mask = -(-self.numel // 4)  # 64-bit words of a mask
        if device.type == "cpu":
            seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
            raw = np.random.SFC64(seed).random_raw(count * per_mask).view(np.int64)
            words = torch.from_numpy(raw)
        else:
            words = torch.empty(count * per_mask, dtype=torch.int64, device=device)
            words.random_(-(2**63), None)
        self.draws = iter(words.view(count, per_mask).view(torch.int16).unbind(0))

    def next(self) -> torch.Tensor:
        """The next mask; raises ``StopIteration`` past ``count``."""
        draws = next(self.draws)[: self.numel].view(self.shape)
        # Kept iff the draw >= threshold - 32768 (probability 1 - threshold / 65536); the
        # comparison writes 0/1 straight into a float tensor.
        keep = torch.empty(self.shape, dtype=self.dtype, device=draws.device)
        torch.ge(draws, self.threshold - 32768, out=keep)
        return keep.mul_(self.scale)


class RollingKVCache:
    """Preallocated keys and values of the last ``window`` steps, per layer, for a batch of
    environments acting in lockstep. Step ``p`` lives in slot ``p % window``; writing it
    evicts step ``p - window``, which has just left the window."""

    def __init__(
        self, config: ADConfig, batch_size: int, device: torch.device | str, dtype: torch.dtype
    ) -> None:
        heads = config.num_attention_heads
        head_dim = config.hidden_size // heads
        layers, window = config.num_hidden_layers, config.attention_window
        # Both attention products are weighted sums of cache rows (see ADModel.act_logits),
        # so each is laid out with the summed-over axis as rows: keys [..., head_dim, window]
        # (a query's scores sum head_dim rows of keys), values [..., window, head_dim].
        self.keys = torch.zeros(
            layers, batch_size, heads, head_dim, window, device=device, dtype=dtype
        )
        self.values = torch.zeros(
            layers, batch_size, heads, window, head_dim, device=device, dtype=dtype
        )
        # embedding_bag indices and offsets: bag i (one sequence and head) sums rows
        # [i * n, (i + 1) * n) of a layer's keys (n = head_dim) or values (n = window).
        # int32 (when the rows fit) halves the index traffic: ~20% faster than int64.
        sequences = batch_size * heads
        rows = sequences * max(head_dim, window)
        index = dict(device=device, dtype=torch.int32 if rows < 2**31 else torch.int64)
        self.key_rows = torch.arange(sequences * head_dim, **index)
        self.key_bags = torch.arange(0, sequences * head_dim, head_dim, **index)
        self.value_rows = torch.arange(sequences * window, **index)
        self.value_bags = torch.arange(0, sequences * window, window, **index)
        # Once the window is full, the query in slot s sees in slot j the step
        # (s - j) % window steps back, so its ALiBi bias [H, window] is a slice of one ramp:
        # bias[:, j] = ramp[:, window - 1 - s + j], where ramp[:, m] = -slope * distance with
        # distance (window - 1 - m) % window. In the first lap, slots j > s are still empty:
        # the same slice of a ramp that is -inf beyond m = window - 1.
        slopes = alibi_slopes(heads).to(device)
        m = torch.arange(2 * window - 1, device=device)
        distance = (window - 1 - m) % window
        self.ramp = (-slopes[:, None] * distance.to(slopes.dtype)).to(dtype)
        self.first_lap_ramp = self.ramp.masked_fill(m > window - 1, float("-inf"))
        # Per-layer views, made once: indexing the 5-d buffers every step costs more than
        # some of the step's arithmetic.
        self.layers = list(zip(self.keys.unbind(0), self.values.unbind(0), strict=True))
        self.window = window
        self.batch_size = batch_size
        self.position = 0  # absolute position of the next step

    @property
    def slot(self) -> int:
        return self.position % self.window

    def bias(self) -> torch.Tensor:
        """The ALiBi bias ``[H, window]`` of this step's query over the slots (``-inf`` on
        empty slots): a view, no per-step computation."""
        start = self.window - 1 - self.slot
        ramp = self.first_lap_ramp if self.position < self.window else self.ramp
        return ramp[:, start : start + self.window]


@dataclass
class ADOutput(ModelOutput):
    """Outputs of :class:`ADModel`.

    Args:
        loss: mean cross-entropy of ``actions`` (with the config's label smoothing), if given.
        logits: ``[B, T, num_actions]`` action logits.
        cache: the updated ``transformers`` cache, when one was passed.

    The cache field is named ``cache``, not ``past_key_values``: transformers >= 5.24 renames
    a ``past_key_values`` keyword to ``cache`` in every ``ModelOutput`` constructor, and
    ``cache`` means the same on every transformers version adbench supports.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: Any | None = None


class ADAttention(nn.Module):
    def __init__(self, config: ADConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_dropout

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, steps, _ = x.shape
        qkv = self.qkv(x).view(batch, steps, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, T, D]
        return q, k, v

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        """Attention of every query over ``k``/``v`` with an additive bias ``[H, Q, K]``,
        then the output projection (the residual dropout is the block's).

        Through ``scaled_dot_product_attention`` with the bias as a 4-d ``[1, H, Q, K]``
        float mask: on the CPU that runs the fused flash kernel (fwd+bwd of the darkroom
        recipe's attention: 15 ms, as fast as ``is_causal=True`` with no bias), while a 3-d
        mask falls back to the unfused math path (33 ms, as slow as writing it out). No row
        is fully masked (every step sees itself), so no row is NaN.
        """
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype).unsqueeze(0),
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        batch, _, steps, _ = y.shape
        return self.out(y.transpose(1, 2).reshape(batch, steps, -1))


class ADBlock(nn.Module):
    def __init__(self, config: ADConfig, layer_idx: int) -> None:
        super().__init__()
        self.ln_attention = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = ADAttention(config, layer_idx)
        self.ln_mlp = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, config.intermediate_size),
            nn.GELU(),
            nn.Linear(config.intermediate_size, config.hidden_size),
        )


class ADPreTrainedModel(PreTrainedModel):
    config_class = ADConfig
    base_model_prefix = "ad"
    main_input_name = "observations"
    _no_split_modules = ("ADBlock",)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm | nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class ADModel(ADPreTrainedModel):
    """AD/ED policy: step tokens -> sliding-window ALiBi transformer -> action logits.

    ``forward`` takes ``[B, T]`` steps: ``observations`` (``[B, T, *observation_shape]``),
    ``prev_actions`` (``-1`` for none), ``prev_rewards``, ``new_episode``; and optionally the
    ``actions`` to predict (for the loss). For acting in context, use :meth:`new_context`
    and :meth:`act_logits` (the policy protocol shared with RL^2).
    """

    def __init__(self, config: ADConfig) -> None:
        super().__init__(config)
        self.encoder = StepEncoder(
            config.hidden_size,
            config.observation_type,
            config.observation_shape,
            config.observation_high,
            config.num_actions,
            config.image_channels,
            config.dropout,
            config.image_pool,
        )
        self.blocks = nn.ModuleList(ADBlock(config, i) for i in range(config.num_hidden_layers))
        self.ln_final = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.action_head = nn.Linear(config.hidden_size, config.num_actions)
        self.post_init()

    @property
    def slopes(self) -> torch.Tensor:
        # Constants, not a buffer: transformers 5 builds models on the meta device when
        # loading, and a non-persistent buffer would not be rebuilt from __init__.
        device = self.action_head.weight.device
        if getattr(self, "_slopes", None) is None or self._slopes.device != device:
            self._slopes = alibi_slopes(self.config.num_attention_heads).to(device)
        return self._slopes

    def _blocks(self, x: torch.Tensor, attend_layer: Any) -> torch.Tensor:
        """Embedding dropout, then the pre-norm blocks with residual dropout on each branch
        (masks from :class:`DropoutMasks`)."""
        masks = None
        if self.training and self.config.dropout > 0:
            count = 1 + 2 * len(self.blocks)
            masks = DropoutMasks(self.config.dropout, count, x.shape, x.device, x.dtype)

        def mask() -> torch.Tensor | None:
            return masks.next() if masks is not None else None

        first = mask()
        if first is not None:
            x = x * first  # not in place: see _residual
        for block in self.blocks:
            x = _residual(x, attend_layer(block.attention, block.ln_attention(x)), mask())
            x = _residual(x, block.mlp(block.ln_mlp(x)), mask())
        return self.ln_final(x)

    def forward(
        self,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
        actions: torch.Tensor | None = None,
        cache: Any | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Any | None = None,
    ) -> ADOutput | tuple[Any, ...]:
        """``cache``: a transformers ``Cache`` (e.g. ``DynamicCache``) to extend with these
        steps; ``past_key_values`` is its name before transformers 5.24, accepted too."""
        if past_key_values is not None:
            if cache is not None:
                raise ValueError("pass the cache as `cache` or `past_key_values`, not both")
            cache = past_key_values
        x = self.encoder(observations, prev_actions, prev_rewards, new_episode)
        steps = x.shape[1]
        window = self.config.attention_window
        start = cache.get_seq_length() if cache is not None else 0
        query_positions = torch.arange(start, start + steps, device=x.device)
        biases: dict[int, torch.Tensor] = {}  # by number of keys: the same for every layer

        def attend_layer(attention: ADAttention, h: torch.Tensor) -> torch.Tensor:
            q, k, v = attention.project(h)
            if cache is not None:
                # transformers' cache returns the keys it keeps (for a sliding layer: at most
                # the last window - 1 old steps) followed by the new ones.
                k, v = cache.update(k, v, attention.layer_idx)
            keys = k.shape[2]
            if keys not in biases:
                key_positions = torch.arange(start + steps - keys, start + steps, device=x.device)
                bias = sliding_alibi_bias(self.slopes, query_positions, key_positions, window)
                biases[keys] = bias.to(q.dtype)
            return attention.attend(q, k, v, biases[keys])

        logits = self.action_head(self._blocks(x, attend_layer))
        loss = None
        if actions is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                actions.reshape(-1).long(),
                label_smoothing=self.config.label_smoothing,
            )
        if return_dict is False:
            return tuple(v for v in (loss, logits, cache) if v is not None)
        return ADOutput(loss=loss, logits=logits, cache=cache)

    # --- the policy protocol -----------------------------------------------------------

    def new_context(self, batch_size: int) -> RollingKVCache:
        """An empty in-context memory for ``batch_size`` environments."""
        return RollingKVCache(self.config, batch_size, self.device, self.dtype)

    @torch.inference_mode()
    def act_logits(
        self,
        context: RollingKVCache,
        observations: torch.Tensor,
        prev_actions: torch.Tensor,
        prev_rewards: torch.Tensor,
        new_episode: torch.Tensor,
    ) -> tuple[torch.Tensor, RollingKVCache]:
        """One step for every environment: ``[B, ...]`` inputs -> ``[B, num_actions]`` logits.

        Writes this step's keys and values into the context's ring buffer and attends over
        the last ``attention_window`` steps; the context is updated in place and returned.

        The same math as :meth:`forward` in eval mode (no dropout), for one query per
        sequence. On the CPU a step is bound by reading the whole cache (memory bandwidth)
        and by per-op overhead, hence:

        * Both attention products are ``embedding_bag`` weighted sums of cache rows (scores:
          the query's ``head_dim`` components weight rows of the transposed keys; outputs:
          the probabilities weight rows of the values): one streaming pass over each. A
          batched matmul instead runs ``batch * heads`` tiny matrix-vector products and is
          about 2x slower once the cache no longer fits in the CPU caches.
        * Layers are called through ``torch.nn.functional`` on their parameters: a module
          call costs a few microseconds, as much as the op itself at this size.
        * ``inference_mode`` (not just ``no_grad``) skips autograd bookkeeping per op (~3%);
          the returned logits are inference tensors (read them, don't modify them in place
          outside inference mode).
        """
        batch, slot, window = context.batch_size, context.slot, context.window
        heads = self.config.num_attention_heads
        head_dim = self.config.hidden_size // heads
        x = self.encoder(observations, prev_actions, prev_rewards, new_episode)  # [B, C]
        bias = context.bias()  # [H, window]
        for layer, block in enumerate(self.blocks):
            attention, mlp = block.attention, block.mlp
            h = _layer_norm(block.ln_attention, x)
            qkv = F.linear(h, attention.qkv.weight, attention.qkv.bias)
            q, k, v = qkv.view(batch, 3, heads, head_dim).unbind(1)  # each [B, H, D]
            keys, values = context.layers[layer]
            keys.select(-1, slot).copy_(k)
            values.select(-2, slot).copy_(v)
            scores = F.embedding_bag(
                context.key_rows,
                keys.view(-1, window),
                context.key_bags,
                mode="sum",
                per_sample_weights=q.reshape(-1),
            )  # [B * H, window]
            # bias + scores / sqrt(head_dim) in one op (the scale folded into `alpha`).
            scores = torch.add(bias, scores.view(batch, heads, window), alpha=head_dim**-0.5)
            probs = torch.softmax(scores, dim=-1)
            y = F.embedding_bag(
                context.value_rows,
                values.view(-1, head_dim),
                context.value_bags,
                mode="sum",
                per_sample_weights=probs.view(-1),
            )  # [B * H, D]
            x = x + F.linear(y.view(batch, -1), attention.out.weight, attention.out.bias)
            up, gelu, down = mlp[0], mlp[1], mlp[2]
            h = F.linear(_layer_norm(block.ln_mlp, x), up.weight, up.bias)
            x = x + F.linear(F.gelu(h, approximate=gelu.approximate), down.weight, down.bias)
        x = _layer_norm(self.ln_final, x)
        logits = F.linear(x, self.action_head.weight, self.action_head.bias)
        context.position += 1
        return logits, context


def _residual(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``x + dropout(y)`` given the dropout's multipliers (or none). A multiply and an add:
    their backward is one multiply (``addcmul``'s is two; a custom autograd function's
    Python backward cost more than it saved). Not in place: ``y`` is a linear layer's
    output, a view of its matrix product, and an in-place op on a view makes autograd
    clone and copy the gradient in the backward (fwd+bwd of a recipe-sized branch 8.2 ms
    in place against 4.6 ms, measured)."""
    return x + y if mask is None else x + y * mask


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


ADConfig.register_for_auto_class()
ADModel.register_for_auto_class("AutoModel")
