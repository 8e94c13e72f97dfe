"""Watermaze (Laskin et al., 2022), built in: find a hidden platform in a circular pool
from first-person pixels, without DeepMind Lab.

The paper uses DMLab's ``rooms_watermaze`` (see :mod:`adbench.envs.watermaze_dmlab` for
a wrapper of the real level). This module reproduces its interface and its difficulty
(the platform is invisible; the agent must locate itself from cues on the pool's wall)
with a small vectorised numpy raycaster, so that thousands of tasks run in parallel on a
CPU.

* World: a circular pool of radius ``POOL_RADIUS = 1`` centred on the origin; lengths are
  in pool radii. The agent is a disc of radius ``AGENT_RADIUS = 0.05``: its centre is
  clamped to ``|p| <= 0.95`` (pushed radially back inside after every move).
* Pose: ``(x, y, heading)``; heading in radians, counter-clockwise from the +x axis, kept
  in ``[0, 2 pi)``. Forward is ``(cos h, sin h)``, left is ``(-sin h, cos h)``.
* Actions (as the paper's DMLab set): ``0 forward, 1 backward, 2 strafe left,
  3 strafe right, 4 turn left, 5 turn right, 6 forward + turn left,
  7 forward + turn right``. Moves are ``MOVE_STEP = 0.1``; turns are
  ``TURN_STEP = 30`` degrees; the combined actions turn first, then move forward along
  the new heading.
* Observation: ``72 x 96 x 3`` uint8 RGB, a pinhole camera with a 90 degree horizontal
  field of view at height ``CAMERA_HEIGHT = 0.25`` above the floor, looking
  horizontally. Sky above the horizon, the pool's floor below it (darker with distance),
  and the pool wall (height ``WALL_HEIGHT = 0.6``) carrying three cues:

  - the wall is cut into 8 segments of 45 degrees, each with its own hue
    (red, orange, yellow-green, green, cyan, blue, violet, magenta, counter-clockwise
    from the +x axis);
  - each segment carries a light horizontal band at its own height (segment ``k``:
    from ``0.08 + 0.1 k`` to ``0.18 + 0.1 k`` of the wall's height), a cue that
    identifies the segment without colour;
  - each segment has ``1 + k % 4`` dark vertical stripes, which tell where within a
    segment a ray hits the wall.

  The wall and band are shaded darker with distance, a depth cue. The same pose always
  gives the same image (pure function of the pose); two poses that differ by more than a
  pixel's worth give different images.
* Episode: 50 steps from the centre ``(0, 0)`` with a heading drawn uniformly in
  ``[0, 2 pi)`` from the reset's seed; never terminates early.
* Reward: +1 on the first step of the episode that ends with the agent's centre within
  ``PLATFORM_RADIUS = 0.15`` of the platform's centre; at most 1 per episode (as Dark
  Room Hard). The platform is never drawn.
* Task: the platform centre ``(platform_x, platform_y)``; any point with
  ``|p| + 0.15 <= 1`` (the platform lies inside the pool).
* Splits: ``train`` 1000 and ``test`` 100 platform centres, area-uniform over the
  annulus ``0.3 <= |p| <= 0.75`` (from :func:`stable_uniform` with different labels, so
  fixed on every machine and disjoint).
* Optimal return: the return of the scripted :func:`planner_actions` (turn toward the
  platform, then walk to it, correcting the heading on the way), averaged over 16 evenly
  spaced start headings; 1 for every task of the splits (it needs at most 13 of the 50
  steps).
* Random return: a Monte Carlo estimate (1024 fixed random-policy trajectories, shared by
  every task) of the probability that the uniform random policy reaches the platform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import ArrayLike, NDArray

from adbench.envs.base import (
    AdbenchEnv,
    AdbenchError,
    BatchedEnv,
    EnvFamily,
    counter_uniform,
    stable_uniform,
)

EPISODE_LENGTH = 50
POOL_RADIUS = 1.0
AGENT_RADIUS = 0.05
MAX_RADIUS = POOL_RADIUS - AGENT_RADIUS
PLATFORM_RADIUS = 0.15
MAX_PLATFORM_DISTANCE = POOL_RADIUS - PLATFORM_RADIUS
MOVE_STEP = 0.1
TURN_STEP = np.deg2rad(30.0)
SPLIT_ANNULUS = (0.3, 0.75)
SPLIT_SIZES = {"train": 1000, "test": 100}

HEIGHT, WIDTH = 72, 96
FIELD_OF_VIEW = np.deg2rad(90.0)
CAMERA_HEIGHT = 0.25
WALL_HEIGHT = 0.6
NUM_SEGMENTS = 8

# The pose (x, y, heading) that a ``render_frames=False`` batch returns.
POSE_SPACE = gym.spaces.Box(
    np.array([-MAX_RADIUS, -MAX_RADIUS, 0.0]),
    np.array([MAX_RADIUS, MAX_RADIUS, 2 * np.pi]),
    dtype=np.float64,
)

ACTION_NAMES = (
    "forward",
    "backward",
    "strafe_left",
    "strafe_right",
    "turn_left",
    "turn_right",
    "forward_turn_left",
    "forward_turn_right",
)
# Per action: turn (in TURN_STEPs, + is left), forward move and leftward move (in MOVE_STEPs).
_TURN = np.array([0, 0, 0, 0, 1, -1, 1, -1], dtype=np.float64)
_FORWARD = np.array([1, -1, 0, 0, 0, 0, 1, 1], dtype=np.float64)
_LEFT = np.array([0, 0, 1, -1, 0, 0, 0, 0], dtype=np.float64)

_TWO_PI = 2.0 * np.pi

# ---------------------------------------------------------------------------------------
# Rendering constants, computed once so that a frame costs only per-column geometry and a
# few whole-image passes.

_FOCAL = (WIDTH / 2) / np.tan(FIELD_OF_VIEW / 2)  # pixels
_HORIZON = HEIGHT / 2  # image y of the horizon, in pixel-edge coordinates
# Column c looks through the image plane at x = c + 0.5; left of the image is left of the
# agent, i.e. a positive (counter-clockwise) angle offset.
_PLANE = (WIDTH / 2 - (np.arange(WIDTH) + 0.5)) / _FOCAL
_COS_OFF = 1.0 / np.sqrt(1.0 + _PLANE**2)  # also the fish-eye correction factor
_SIN_OFF = _PLANE * _COS_OFF
_ROWS = np.arange(HEIGHT, dtype=np.uint8)[None, :, None]


def _hsv_to_rgb(hue: NDArray[np.float64], sat: float, val: float) -> NDArray[np.float64]:
    """RGB in [0, 255] of hues in [0, 1) (standard HSV formula, vectorised)."""
    k = np.mod(np.array([5.0, 3.0, 1.0]) + hue[:, None] * 6.0, 6.0)
    return 255.0 * val * (1.0 - sat * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0))


_SEGMENT_RGB = _hsv_to_rgb(np.arange(NUM_SEGMENTS) / NUM_SEGMENTS, 0.75, 0.95).astype(np.float32)
_BAND_RGB = np.array([245.0, 245.0, 235.0], dtype=np.float32)
_STRIPE_DARKENING = np.float32(0.45)
_DISTANCE_SHADING = 0.3  # brightness factor 1 / (1 + 0.3 * distance)
# Twice the stripe count, as a float: a stripe is the odd half-periods within a segment.
_HALF_PERIODS = (2.0 * (1 + np.arange(NUM_SEGMENTS) % 4)).astype(np.float64)
_BAND_LOW = WALL_HEIGHT * (0.08 + 0.1 * np.arange(NUM_SEGMENTS))
_BAND_HIGH = _BAND_LOW + 0.1 * WALL_HEIGHT


def _background() -> NDArray[np.uint8]:
    """Sky and floor: they depend only on the row, so the whole backdrop is a constant."""
    rows = np.arange(HEIGHT) + 0.5
    sky_t = np.clip(rows / _HORIZON, 0.0, 1.0)[:, None]
    sky = (1 - sky_t) * np.array([120.0, 160.0, 215.0]) + sky_t * np.array([200.0, 220.0, 240.0])
    below = np.maximum(rows - _HORIZON, 1e-9)
    floor_distance = _FOCAL * CAMERA_HEIGHT / below
    floor = np.array([60.0, 95.0, 120.0]) / (1.0 + _DISTANCE_SHADING * floor_distance)[:, None]
    colour = np.where((rows < _HORIZON)[:, None], sky, floor)
    return np.ascontiguousarray(
        np.broadcast_to(np.rint(colour).astype(np.uint8)[:, None, :], (HEIGHT, WIDTH, 3))
    )


_BACKGROUND = _background()


def _row_index(edge: NDArray[np.float64]) -> NDArray[np.uint8]:
    """First pixel row whose centre lies at or below an image-y edge, clipped to the image
    (0..72, so uint8: the masks then move a byte per pixel)."""
    return np.ceil(np.clip(edge - 0.5, 0.0, HEIGHT)).astype(np.uint8)


def _span_mask(top: NDArray[np.uint8], bottom: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """``top <= row < bottom`` per row and column, ``[N, H, C]`` from ``[N, C]`` (with
    ``top <= bottom``), in two passes over the image: for a row above ``top``, the
    unsigned ``row - top`` wraps round to at least 256 - 72, more than any span."""
    return (_ROWS - top[:, None, :]) < (bottom - top)[:, None, :]


def _per_channel(rows: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """``[N, W]`` -> ``[N, W * 3]``: each column's value once per colour channel."""
    return np.repeat(rows, 3, axis=1)


def render(x: ArrayLike, y: ArrayLike, heading: ArrayLike) -> NDArray[np.uint8]:
    """First-person views ``[N, 72, 96, 3]`` (uint8 RGB) of ``N`` poses (arrays ``[N]``).

    A raycaster: each image column casts one ray to the circular wall (closed-form
    ray-circle intersection from inside), which gives the wall's cue colour at the hit
    angle and, after fish-eye correction, its projected top and bottom rows.
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    heading = np.atleast_1d(np.asarray(heading, dtype=np.float64))
    cos_h, sin_h = np.cos(heading)[:, None], np.sin(heading)[:, None]
    ray_x = cos_h * _COS_OFF - sin_h * _SIN_OFF  # [N, W], unit vectors
    ray_y = sin_h * _COS_OFF + cos_h * _SIN_OFF
    px, py = x[:, None], y[:, None]
    # |p + t d| = R with |p| < R: the positive root of t^2 + 2 b t + c = 0, c < 0.
    b = px * ray_x + py * ray_y
    c = px * px + py * py - POOL_RADIUS**2
    distance = np.sqrt(b * b - c) - b
    hit_x = px + distance * ray_x
    hit_y = py + distance * ray_y

    around = np.mod(np.arctan2(hit_y, hit_x) * (NUM_SEGMENTS / _TWO_PI), NUM_SEGMENTS)
    segment = np.minimum(around.astype(np.int64), NUM_SEGMENTS - 1)
    within = around - segment
    stripe = (within * _HALF_PERIODS[segment]).astype(np.int64) & 1

    shade = (1.0 / (1.0 + _DISTANCE_SHADING * distance)).astype(np.float32)
    wall_shade = np.where(stripe == 1, _STRIPE_DARKENING * shade, shade)
    wall_rgb = (_SEGMENT_RGB[segment] * wall_shade[..., None]).astype(np.uint8)
    band_rgb = (_BAND_RGB * shade[..., None]).astype(np.uint8)

    pixels_per_unit = _FOCAL / (distance * _COS_OFF)  # perpendicular distance: no fish-eye
    wall_top = _row_index(_HORIZON - pixels_per_unit * (WALL_HEIGHT - CAMERA_HEIGHT))
    wall_bottom = _row_index(_HORIZON + pixels_per_unit * CAMERA_HEIGHT)
    band_top = _row_index(_HORIZON - pixels_per_unit * (_BAND_HIGH[segment] - CAMERA_HEIGHT))
    band_bottom = _row_index(_HORIZON - pixels_per_unit * (_BAND_LOW[segment] - CAMERA_HEIGHT))

    # Compositing works on [N, H, W * 3] views: a mask repeated per colour channel keeps
    # every operand's innermost axis long and contiguous, which is several times faster
    # than broadcasting a [N, H, W, 1] mask against 3-long colour axes.
    n = len(x)
    image = np.where(
        _span_mask(_per_channel(wall_top), _per_channel(wall_bottom)),
        wall_rgb.reshape(n, 1, WIDTH * 3),
        _BACKGROUND.reshape(HEIGHT, WIDTH * 3),
    )
    band = _span_mask(_per_channel(band_top), _per_channel(band_bottom))
    np.copyto(image, band_rgb.reshape(n, 1, WIDTH * 3), where=band)
    return image.reshape(n, HEIGHT, WIDTH, 3)


# ---------------------------------------------------------------------------------------
# Dynamics, reward, planner: pure functions of arrays, shared by the envs and the
# reference returns.


def step_poses(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    heading: NDArray[np.float64],
    actions: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The poses after one action each (no rendering): turn, then move, then clamp."""
    heading = np.mod(heading + _TURN[actions] * TURN_STEP, _TWO_PI)
    cos_h, sin_h = np.cos(heading), np.sin(heading)
    forward, left = _FORWARD[actions] * MOVE_STEP, _LEFT[actions] * MOVE_STEP
    x = x + (forward * cos_h - left * sin_h)
    y = y + (forward * sin_h + left * cos_h)
    radius_sq = x * x + y * y
    outside = radius_sq > MAX_RADIUS**2
    # Pushed radially back to the wall; the where keeps 0/0 out of the inside agents.
    scale = np.where(outside, MAX_RADIUS / np.sqrt(np.where(outside, radius_sq, 1.0)), 1.0)
    return x * scale, y * scale, heading


def on_platform(
    x: NDArray[np.float64], y: NDArray[np.float64], platform: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Whether each agent's centre is within the platform radius of its platform ``[N, 2]``."""
    dx, dy = x - platform[..., 0], y - platform[..., 1]
    return dx * dx + dy * dy <= PLATFORM_RADIUS**2


def planner_actions(
    x: ArrayLike, y: ArrayLike, heading: ArrayLike, platform: ArrayLike
) -> NDArray[np.int64]:
    """A scripted policy that knows the platform ``[N, 2]``: walk forward while the
    platform is within half a turn of straight ahead; when one turn would bring it there,
    turn and walk at once (forward + turn); otherwise turn toward it on the spot."""
    platform = np.asarray(platform, dtype=np.float64)
    bearing = np.arctan2(platform[..., 1] - np.asarray(y), platform[..., 0] - np.asarray(x))
    error = np.mod(bearing - np.asarray(heading) + np.pi, _TWO_PI) - np.pi  # in [-pi, pi)
    size = np.abs(error)
    left = error > 0
    return np.where(
        size <= TURN_STEP / 2,
        0,
        np.where(size <= 1.5 * TURN_STEP, np.where(left, 6, 7), np.where(left, 4, 5)),
    ).astype(np.int64)


def optimal_return(tasks: NDArray[np.float64]) -> NDArray[np.float64]:
    """The planner's return, averaged over 16 evenly spaced start headings (simulated)."""
    num_headings = 16
    platform = np.repeat(tasks, num_headings, axis=0)
    heading = np.tile(np.arange(num_headings) * (_TWO_PI / num_headings), len(tasks))
    x, y = np.zeros(len(platform)), np.zeros(len(platform))
    found = np.zeros(len(platform), dtype=np.bool_)
    for _ in range(EPISODE_LENGTH):
        x, y, heading = step_poses(x, y, heading, planner_actions(x, y, heading, platform))
        found |= on_platform(x, y, platform)
    return found.reshape(len(tasks), num_headings).mean(axis=1)


RANDOM_ROLLOUTS = 1024
_RANDOM_KEY_BASE = 0x57A7E2


def _random_trajectories() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Positions ``[EPISODE_LENGTH, RANDOM_ROLLOUTS]`` of fixed uniform-random rollouts.

    The actions and start headings come from :func:`counter_uniform`, so the estimate is
    the same on every machine; the trajectories do not depend on the task, so every task
    is scored on the same rollouts (common random numbers: fair comparisons between tasks).
    """
    keys = np.arange(RANDOM_ROLLOUTS, dtype=np.uint64) + np.uint64(_RANDOM_KEY_BASE)
    heading = counter_uniform(keys, 0) * _TWO_PI
    x, y = np.zeros(RANDOM_ROLLOUTS), np.zeros(RANDOM_ROLLOUTS)
    xs, ys = [], []
    for t in range(EPISODE_LENGTH):
        actions = (counter_uniform(keys, t + 1) * len(ACTION_NAMES)).astype(np.int64)
        x, y, heading = step_poses(x, y, heading, actions)
        xs.append(x)
        ys.append(y)
    return np.stack(xs), np.stack(ys)


def random_return(tasks: NDArray[np.float64]) -> NDArray[np.float64]:
    """Monte Carlo estimate (1024 fixed rollouts; standard error below 0.016) of the
    uniform random policy's expected return: the fraction of rollouts that reach the
    platform at least once."""
    xs, ys = _random_trajectories()
    out = np.empty(len(tasks))
    chunk = 64  # bounds the [chunk, T, rollouts] temporaries to a few MB
    for start in range(0, len(tasks), chunk):
        platform = tasks[start : start + chunk, None, None, :]
        reached = on_platform(xs[None], ys[None], platform).any(axis=1)
        out[start : start + chunk] = reached.mean(axis=1)
    return out


# ---------------------------------------------------------------------------------------
# Tasks and splits.


def _check(tasks: NDArray[np.float64]) -> None:
    distance = np.sqrt(tasks[:, 0] ** 2 + tasks[:, 1] ** 2)
    bad = ~np.isfinite(tasks).all(axis=1) | ~(distance <= MAX_PLATFORM_DISTANCE + 1e-12)
    if bad.any():
        raise AdbenchError(
            f"invalid Watermaze platform {tuple(float(v) for v in tasks[bad][0])}: the "
            f"platform centre (platform_x, platform_y) must be finite and at most "
            f"{MAX_PLATFORM_DISTANCE:g} from the pool's centre (pool radius {POOL_RADIUS:g} "
            f"minus platform radius {PLATFORM_RADIUS:g})"
        )


def annulus_tasks(label: str, count: int) -> NDArray[np.float64]:
    """``count`` platform centres, area-uniform over ``SPLIT_ANNULUS``, fixed by ``label``."""
    u = stable_uniform(label, count, columns=2)
    inner, outer = SPLIT_ANNULUS
    radius = np.sqrt(u[:, 0] * (outer**2 - inner**2) + inner**2)
    angle = u[:, 1] * _TWO_PI
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _split(name: str) -> NDArray[np.float64]:
    return annulus_tasks(f"adbench/watermaze/{name}-v0", SPLIT_SIZES[name])


# ---------------------------------------------------------------------------------------
# Environments.


def render_poses(poses: ArrayLike) -> NDArray[np.uint8]:
    """Frames ``[..., H, W, 3]`` of poses ``[..., 3]`` (``x, y, heading``): what an agent at
    each pose sees. A source that learns from poses keeps them, and the dataset builder
    renders only the episodes it keeps."""
    poses = np.asarray(poses, dtype=np.float64)
    flat = poses.reshape(-1, 3)
    frames = render(flat[:, 0], flat[:, 1], flat[:, 2])
    return frames.reshape(*poses.shape[:-1], HEIGHT, WIDTH, 3)


class WatermazeBatched(BatchedEnv):
    """Watermaze over N platforms at once; renders the whole batch in one call.

    ``render_frames=False`` returns the poses ``[N, 3]`` (``x, y, heading``, float64)
    instead of the frames: the same dynamics, rewards and random streams, without the cost
    of rendering (for sources that learn from the pose; :func:`render_poses` gives the
    frames of any pose later).
    """

    def __init__(
        self, tasks: ArrayLike, seed: int | Sequence[int] | None = None, render_frames: bool = True
    ) -> None:
        super().__init__(tasks, seed=seed)
        self.render_frames = render_frames
        if not render_frames:
            self.observation_space = POSE_SPACE

    def _observation(self) -> NDArray[Any]:
        if self.render_frames:
            return render(self.x, self.y, self.heading)
        return np.stack([self.x, self.y, self.heading], axis=1)

    def _reset(self) -> NDArray[Any]:
        self.heading = self.uniform(0) * _TWO_PI
        self.x = np.zeros(self.num_envs)
        self.y = np.zeros(self.num_envs)
        self.found = np.zeros(self.num_envs, dtype=np.bool_)
        return self._observation()

    def _step(self, actions: NDArray[np.int64]) -> tuple[NDArray[Any], NDArray[np.float32]]:
        self.x, self.y, self.heading = step_poses(self.x, self.y, self.heading, actions)
        first = on_platform(self.x, self.y, self.tasks) & ~self.found
        self.found |= first
        return self._observation(), first.astype(np.float32)

    def optimal_actions(self) -> NDArray[np.int64]:
        return planner_actions(self.x, self.y, self.heading, self.tasks)


class WatermazeEnv(AdbenchEnv):
    """Watermaze for one platform: ``gymnasium.make("adbench/Watermaze-v0", platform=(x, y))``.

    ``render_mode="rgb_array"`` makes :meth:`render` return the current observation.
    """

    # Gymnasium declares metadata as a plain class-level dict; a ClassVar would clash.
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012
    task_aliases = ("platform",)

    def __init__(
        self,
        platform: tuple[float, float] | None = None,
        task: Any = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode not in (None, "rgb_array"):
            raise AdbenchError(
                f"invalid render_mode {render_mode!r} for adbench/Watermaze-v0: valid "
                "modes are None and 'rgb_array'"
            )
        self.render_mode = render_mode
        super().__init__(task if task is not None else platform)
        self._obs: NDArray[np.uint8] | None = None

    def _task_from_aliases(self, options: dict[str, Any]) -> Any:
        return options["platform"]

    def _reset_state(self) -> NDArray[np.uint8]:
        self.heading = np.array([self.uniform(0) * _TWO_PI])
        self.x = np.zeros(1)
        self.y = np.zeros(1)
        self.found = False
        self._obs = render(self.x, self.y, self.heading)[0]
        return self._obs

    def _step_state(self, action: int) -> tuple[NDArray[np.uint8], float]:
        actions = np.array([action], dtype=np.int64)
        self.x, self.y, self.heading = step_poses(self.x, self.y, self.heading, actions)
        first = bool(on_platform(self.x, self.y, self.task[None])[0]) and not self.found
        self.found |= first
        self._obs = render(self.x, self.y, self.heading)[0]
        return self._obs, float(first)

    def render(self) -> NDArray[np.uint8] | None:  # type: ignore[override]
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        return self._obs.copy()


FAMILY = EnvFamily(
    name="watermaze",
    env_id="adbench/Watermaze-v0",
    description=(
        "circular pool, hidden platform, first-person 72x96 RGB, 8 actions, "
        "+1 the first time the platform is reached, 50 steps"
    ),
    episode_length=EPISODE_LENGTH,
    num_actions=len(ACTION_NAMES),
    action_names=ACTION_NAMES,
    task_fields=("platform_x", "platform_y"),
    task_dtype=np.float64,
    validate_task_values=_check,
    split_builders={name: (lambda name=name: _split(name)) for name in SPLIT_SIZES},
    optimal_return_fn=optimal_return,
    random_return_fn=random_return,
    batched_cls=WatermazeBatched,
    observation_space=gym.spaces.Box(0, 255, (HEIGHT, WIDTH, 3), np.uint8),
    render_states_fn=render_poses,
    notes=(
        "A built-in numpy raycaster standing in for DMLab's rooms_watermaze: same "
        "observation size, actions and episode length; the platform gives +1 once per "
        "episode (DMLab's gives up to 5); start at the pool's centre with a random heading "
        "(DMLab spawns at the edge). adbench/Watermaze-DMLab-v0 wraps the real level."
    ),
)
WatermazeBatched.family = FAMILY
WatermazeEnv.family = FAMILY
