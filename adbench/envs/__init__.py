"""adbench's environment families, registered with Gymnasium under the ``adbench/`` namespace.

``import adbench`` makes ``gymnasium.make("adbench/DarkRoom-v0")`` work. Short names
(``darkroom``, ``bandit``, ...) name the same families everywhere else in adbench:
datasets, recipes, benchmarks.
"""

from __future__ import annotations

import gymnasium as gym

from adbench.envs import adversarial_bandit, dark_key_to_door, dark_room, dark_room_hard, watermaze
from adbench.envs.base import AdbenchError, BatchedEnv, EnvFamily, fingerprint

FAMILIES: dict[str, EnvFamily] = {
    family.name: family
    for family in (
        adversarial_bandit.FAMILY,
        dark_room.FAMILY,
        dark_room_hard.FAMILY,
        dark_key_to_door.FAMILY,
        watermaze.FAMILY,
    )
}

_ENTRY_POINTS = {
    "adbench/AdversarialBandit-v0": "adbench.envs.adversarial_bandit:AdversarialBanditEnv",
    "adbench/DarkRoom-v0": "adbench.envs.dark_room:DarkRoomEnv",
    "adbench/DarkRoomHard-v0": "adbench.envs.dark_room_hard:DarkRoomHardEnv",
    "adbench/DarkKeyToDoor-v0": "adbench.envs.dark_key_to_door:DarkKeyToDoorEnv",
    "adbench/Watermaze-v0": "adbench.envs.watermaze:WatermazeEnv",
    "adbench/Watermaze-DMLab-v0": "adbench.envs.watermaze_dmlab:WatermazeDMLabEnv",
}


# Gymnasium vector envs over the batched envs (gymnasium.make_vec), by env id.
_VECTOR_ENTRY_POINTS = {
    "adbench/AdversarialBandit-v0": "adbench.envs.vector:AdversarialBanditVectorEnv",
    "adbench/DarkRoom-v0": "adbench.envs.vector:DarkRoomVectorEnv",
    "adbench/DarkRoomHard-v0": "adbench.envs.vector:DarkRoomHardVectorEnv",
    "adbench/DarkKeyToDoor-v0": "adbench.envs.vector:DarkKeyToDoorVectorEnv",
    "adbench/Watermaze-v0": "adbench.envs.vector:WatermazeVectorEnv",
}


def register_envs() -> None:
    """Register every adbench env with Gymnasium (idempotent), with its vector env."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            # Episodes end inside the envs (fixed length), so no TimeLimit wrapper.
            gym.register(
                id=env_id,
                entry_point=entry_point,
                vector_entry_point=_VECTOR_ENTRY_POINTS.get(env_id),
            )


def get_family(name: str) -> EnvFamily:
    """A family by short name (``darkroom``) or Gymnasium id (``adbench/DarkRoom-v0``)."""
    if name in FAMILIES:
        return FAMILIES[name]
    for family in FAMILIES.values():
        if family.env_id == name:
            return family
    valid = ", ".join(f"{f.name} ({f.env_id})" for f in FAMILIES.values())
    raise AdbenchError(f"unknown environment {name!r}: valid environments are {valid}")


def make_batched(name: str, tasks: object, seed: int | None = None) -> BatchedEnv:
    """A batched env of family ``name`` over ``tasks`` (an array, or a split name)."""
    family = get_family(name)
    if isinstance(tasks, str):
        tasks = family.split(tasks)
    return family.make_batched(tasks, seed=seed)


register_envs()

__all__ = [
    "FAMILIES",
    "AdbenchError",
    "BatchedEnv",
    "EnvFamily",
    "fingerprint",
    "get_family",
    "make_batched",
    "register_envs",
]
