"""adbench's models as transformers models: AD/ED (``ADModel``) and RL^2 (``RL2Model``).

Importing this package registers them with ``AutoConfig`` and ``AutoModel``, so that
``AutoModel.from_pretrained(path)`` works without ``trust_remote_code`` when adbench is
installed; saved models also carry their code (``auto_map``) for machines without it.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from adbench.models.configuration_ad import ADConfig
from adbench.models.modeling_ad import ADModel, ADOutput, RollingKVCache

AutoConfig.register(ADConfig.model_type, ADConfig, exist_ok=True)
AutoModel.register(ADConfig, ADModel, exist_ok=True)

__all__ = ["ADConfig", "ADModel", "ADOutput", "RollingKVCache"]
