"""adbench's models as transformers models: AD/ED (``ADModel``) and RL^2 (``RL2Model``).

Importing this package registers them with ``AutoConfig`` and ``AutoModel``, so that
``AutoModel.from_pretrained(path)`` works without ``trust_remote_code`` when adbench is
installed; saved models also carry their code (``auto_map``) for machines without it.
"""

from __future__ import annotations

from transformers import AutoConfig, AutoModel

from adbench.models.configuration_ad import ADConfig
from adbench.models.configuration_rl2 import RL2Config
from adbench.models.modeling_ad import ADModel, ADOutput, RollingKVCache
from adbench.models.modeling_rl2 import RL2Model, RL2Output

AutoConfig.register(ADConfig.model_type, ADConfig, exist_ok=True)
AutoModel.register(ADConfig, ADModel, exist_ok=True)
AutoConfig.register(RL2Config.model_type, RL2Config, exist_ok=True)
AutoModel.register(RL2Config, RL2Model, exist_ok=True)

__all__ = [
    "ADConfig",
    "ADModel",
    "ADOutput",
    "RL2Config",
    "RL2Model",
    "RL2Output",
    "RollingKVCache",
]
