"""Watermaze on the real DeepMind Lab level (``contributed/dmlab30/rooms_watermaze``), the
environment of Laskin et al. (2022); registered as ``adbench/Watermaze-DMLab-v0``.

DeepMind Lab is not on PyPI: build it from https://github.com/google-deepmind/lab
(``bazel build -c opt //python/pip_package:build_pip_package``, then
``./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg`` and
``pip install /tmp/dmlab_pkg/deepmind_lab-*.whl``). Without it, constructing this env
raises :class:`AdbenchError`; ``adbench/Watermaze-v0`` is the built-in stand-in.

* Observation: DMLab's ``RGB_INTERLEAVED`` at 96 x 72, ``Box(0, 255, (72, 96, 3), uint8)``.
* Actions: the 8 of ``adbench/Watermaze-v0`` (``0 forward, 1 backward, 2 strafe left,
  3 strafe right, 4 turn left, 5 turn right, 6 forward + turn left, 7 forward + turn
  right``) mapped onto DMLab's 7-int action vector (look left/right +-20 pixels per frame,
  the usual IMPALA set), each repeated for ``ACTION_REPEAT = 4`` frames.
* Episode: 50 agent steps, then ``truncated``. ``terminated`` only if DMLab itself ends
  the episode first (its level finishes after 5 platform rewards or 120 seconds).
* Reward: DMLab's (+1 per platform trigger, up to 5 in an episode; the level holds the
  agent on the platform after a trigger); the built-in env gives at most 1.
* Task: the level draws the platform position (uniform over a disc of radius 580 units)
  and the spawn point from the episode seed. ``level_seed=`` (constructor or reset
  option) fixes that seed so the platform stays put across episodes, as an in-context
  learning history needs; without it every reset draws a new seed from the env's
  Generator (a new platform every episode). This env is not an :class:`EnvFamily`: the
  task lives inside DMLab and cannot be set as coordinates.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

from adbench.envs.base import AdbenchError
from adbench.envs.watermaze import ACTION_NAMES

LEVEL = "contributed/dmlab30/rooms_watermaze"
HEIGHT, WIDTH = 72, 96
EPISODE_LENGTH = 50
ACTION_REPEAT = 4
LOOK_PIXELS = 20


# DMLab's action vector, in its action_spec order: LOOK_LEFT_RIGHT_PIXELS_PER_FRAME,
# LOOK_DOWN_UP_PIXELS_PER_FRAME, STRAFE_LEFT_RIGHT, MOVE_BACK_FORWARD, FIRE, JUMP, CROUCH.
DMLAB_ACTIONS = np.array(
    [
        [0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, -1, 0, 0, 0],
        [0, 0, -1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0],
        [-LOOK_PIXELS, 0, 0, 0, 0, 0, 0],
        [LOOK_PIXELS, 0, 0, 0, 0, 0, 0],
        [-LOOK_PIXELS, 0, 0, 1, 0, 0, 0],
        [LOOK_PIXELS, 0, 0, 1, 0, 0, 0],
    ],
    dtype=np.intc,
)
_DMLAB_ACTION_NAMES = (
    "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME",
    "LOOK_DOWN_UP_PIXELS_PER_FRAME",
    "STRAFE_LEFT_RIGHT",
    "MOVE_BACK_FORWARD",
    "FIRE",
    "JUMP",
    "CROUCH",
)
_MAX_SEED = 2**31 - 1  # DMLab takes the seed as a C int

INSTALL_HINT = (
    "DeepMind Lab is not installed (no module 'deepmind_lab'): build it from "
    "https://github.com/google-deepmind/lab with "
    "`bazel build -c opt //python/pip_package:build_pip_package`, run "
    "`./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg` and "
    "`pip install /tmp/dmlab_pkg/deepmind_lab-*.whl`; or use the built-in "
    "adbench/Watermaze-v0, which needs nothing extra"
)


def dmlab_available() -> bool:
    """Whether the ``deepmind_lab`` module can be imported."""
    try:
        import deepmind_lab  # noqa: F401
    except ImportError:
        return False
    return True


class WatermazeDMLabEnv(gym.Env[NDArray[np.uint8], np.int64]):
    """DMLab's ``rooms_watermaze`` behind the ``adbench/Watermaze-v0`` interface.

    ``renderer`` is DMLab's (``"software"`` works headless; ``"hardware"`` needs a GPU
    and a display or EGL).
    """

    # Gymnasium declares metadata as a plain class-level dict; a ClassVar would clash.
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 15}  # noqa: RUF012

    def __init__(
        self,
        level_seed: int | None = None,
        renderer: str = "software",
        render_mode: str | None = None,
    ) -> None:
        try:
            import deepmind_lab
        except ImportError as exc:
            raise AdbenchError(INSTALL_HINT) from exc
        if render_mode not in (None, "rgb_array"):
            raise AdbenchError(
                f"invalid render_mode {render_mode!r} for adbench/Watermaze-DMLab-v0: "
                "valid modes are None and 'rgb_array'"
            )
        self.render_mode = render_mode
        self.level_seed = self._check_seed(level_seed)
        self.observation_space = gym.spaces.Box(0, 255, (HEIGHT, WIDTH, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(ACTION_NAMES))
        self._lab: Any = deepmind_lab.Lab(
            LEVEL,
            ["RGB_INTERLEAVED"],
            config={"width": str(WIDTH), "height": str(HEIGHT)},
            renderer=renderer,
        )
        spec_names = tuple(spec["name"] for spec in self._lab.action_spec())
        if spec_names != _DMLAB_ACTION_NAMES:
            raise AdbenchError(
                f"this DeepMind Lab build's actions are {spec_names}, expected "
                f"{_DMLAB_ACTION_NAMES}: adbench's action mapping needs updating"
            )
        self._t = 0
        self._needs_reset = True
        self._obs = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)

    @staticmethod
    def _check_seed(seed: Any) -> int | None:
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise AdbenchError(f"level_seed must be an int in 0..{_MAX_SEED}, got {seed!r}")
        if not 0 <= int(seed) <= _MAX_SEED:
            raise AdbenchError(f"level_seed must be an int in 0..{_MAX_SEED}, got {seed}")
        return int(seed)

    def _observe(self) -> NDArray[np.uint8]:
        self._obs = np.array(self._lab.observations()["RGB_INTERLEAVED"], dtype=np.uint8)
        return self._obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[NDArray[np.uint8], dict[str, Any]]:
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"level_seed"}
        if unknown:
            raise AdbenchError(
                f"unknown reset option(s) {sorted(unknown)} for adbench/Watermaze-DMLab-v0: "
                "the only option is level_seed"
            )
        if "level_seed" in options:
            self.level_seed = self._check_seed(options["level_seed"])
        episode_seed = (
            self.level_seed
            if self.level_seed is not None
            else int(self.np_random.integers(0, _MAX_SEED + 1))
        )
        self._lab.reset(seed=episode_seed)
        self._t = 0
        self._needs_reset = False
        return self._observe(), {"level_seed": episode_seed}

    def step(self, action: Any) -> tuple[NDArray[np.uint8], float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise AdbenchError("call reset() before step(): the episode has ended or not begun")
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        n = len(ACTION_NAMES)
        if (
            isinstance(action, bool)
            or not isinstance(action, int | np.integer)
            or not 0 <= action < n
        ):
            raise AdbenchError(
                f"invalid action {action!r} for adbench/Watermaze-DMLab-v0: valid actions "
                f"are 0..{n - 1} ({', '.join(ACTION_NAMES)})"
            )
        reward = float(self._lab.step(DMLAB_ACTIONS[int(action)], num_steps=ACTION_REPEAT))
        self._t += 1
        # Observations are only valid while the level runs; after DMLab's own end keep
        # showing the last frame.
        terminated = not self._lab.is_running()
        obs = self._obs if terminated else self._observe()
        truncated = not terminated and self._t >= EPISODE_LENGTH
        if terminated or truncated:
            self._needs_reset = True
        return obs, reward, terminated, truncated, {}

    def render(self) -> NDArray[np.uint8] | None:  # type: ignore[override]
        return self._obs.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        lab = getattr(self, "_lab", None)
        if lab is not None:
            lab.close()
            self._lab = None
        super().close()
