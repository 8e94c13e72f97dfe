"""Train the RL^2 baseline (Duan et al., 2016) online with PPO, on adbench's batched envs.

Read top to bottom: arguments, the model's config from the env family, then the loop.
(Over 500 lines on purpose: as CleanRL's algorithms, the whole algorithm is one file.)
Every update:

1. **Rollout.** ``num_envs`` tasks, sampled afresh from the train split, play one *trial*
   each: ``episodes_per_trial`` episodes of the same task, back to back. The recurrent
   state starts at zero at the trial start and is *not* reset between episodes, so the
   policy can carry what it found in one episode into the next; the first step of every
   episode is flagged by ``new_episode``.
2. **Advantages.** The trial is one long "meta-episode": GAE(lambda) with discount
   ``gamma`` runs across the episode boundaries, and only the trial's last step is
   terminal. Rewarding the whole trial is what makes exploring early worth it.
3. **PPO.** ``ppo_epochs`` passes over the rollout; each pass splits the envs into
   ``num_minibatches`` groups and re-runs every group's full trial from the zero state
   (backpropagation through the whole trial); the loss is the clipped surrogate, plus
   ``value_coef`` x the value MSE, minus ``entropy_coef`` x the entropy.

**Long trials, in segments.** With ``segment_episodes`` set, an update plays only the next
``segment_episodes`` episodes of every env's trial, so trials can be as long as the
benchmark's evaluation (1000 episodes of one unbroken context) at a fixed cost per update:
the recurrent state, the last action and reward carry over from one segment to the next;
GAE bootstraps on the value of the step after the segment unless the trial ended there;
and PPO re-runs each segment from the state it started from, detached (truncated
backpropagation through time, as recurrent PPO does). ``segment_episodes =
episodes_per_trial`` is the whole-trial update above, bit for bit.

Checkpoints hold everything a run needs to go on exactly: the model, the optimiser, the
task, action and minibatch streams, the envs' episode counter and tasks, and where the
current trial stands (its recurrent state, last action and reward).

The same code runs on one CPU, one GPU or many processes (``accelerate launch``): each
process plays its own ``num_envs`` tasks with its own seeds, and DDP averages the
gradients. The model stays in eval mode throughout: PPO's probability ratio needs the
policy that acted and the policy being updated to be the same function, which dropout or
BatchNorm's batch statistics (Watermaze's encoder) would break.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from numpy.typing import NDArray
from pydantic import Field
from pydantic.dataclasses import dataclass as args_dataclass

from adbench.envs import get_family
from adbench.envs.base import BatchedEnv, EnvFamily
from adbench.errors import AdbenchError
from adbench.fileio import atomic_write_json
from adbench.models.configuration_rl2 import RL2Config
from adbench.models.modeling_rl2 import RL2Model
from adbench.models.spaces import observation_spec
from adbench.training.common import (
    CHECKPOINT_DIR,
    make_accelerator,
    resume_point,
    save_checkpoint,
    write_model_card,
)
from adbench.validation import (
    ARGS_CONFIG,
    NonNegative,
    NonNegativeFloat,
    Positive,
    PositiveFloat,
    Seed,
    UnitInterval,
)

LOG_FILE = "training_log.json"


@args_dataclass(config=ARGS_CONFIG)
class RL2Args:
    """Every knob of an RL^2 training run; types and ranges are checked when an instance
    is made (see :mod:`adbench.validation`)."""

    env: Annotated[str, Field(min_length=1)] = "darkroom"
    """Environment family: short name (``darkroom``) or Gymnasium id."""
    split: str | None = None
    """Task split to train on; default the family's train split."""
    max_tasks: Positive | None = None
    """Train on the first ``max_tasks`` tasks of the split only (quick runs and tests);
    default all of them."""
    num_envs: Positive = 64
    """Parallel tasks per process; each update plays one trial in each."""
    episodes_per_trial: Positive = 4
    """Episodes of the same task per trial (the recurrent state spans them); a new task is
    sampled for every env at every trial."""
    segment_episodes: Positive | None = None
    """Episodes per update (a rollout segment of the trial): the recurrent state, the last
    action and reward carry over to the trial's next segment, and PPO backpropagates
    through the segment only, from its stored start state (truncated BPTT), so trials can
    be as long as the evaluation (1000 episodes) at a fixed cost per update. Must divide
    ``episodes_per_trial``; default: the whole trial in one update."""
    total_updates: Positive = 500
    """PPO updates (one trial per env each): ``total_updates x num_envs x
    episodes_per_trial x episode_length`` env steps per process."""
    learning_rate: PositiveFloat = 1e-3
    """Adam step size (constant, unless ``anneal_lr``)."""
    anneal_lr: bool = False
    """Decay the step size linearly from ``learning_rate`` towards 0 over ``total_updates``
    (CleanRL's PPO default): the last updates take ever smaller steps."""
    adam_eps: PositiveFloat = 1e-5
    """Adam epsilon (CleanRL's PPO value)."""
    gamma: UnitInterval = 0.99
    """Discount, applied across the episodes of a trial (only the trial's end is terminal)."""
    gae_lambda: UnitInterval = 0.95
    """GAE lambda."""
    reward_scale: PositiveFloat = 1.0
    """Rewards are multiplied by this for the returns and advantages only (the policy still
    sees the raw reward as its input). Discounted across a long trial, Dark Room's returns
    reach ~80, so the value loss's gradient swamps the policy's under the global norm
    clip unless they are scaled down."""
    clip_coef: PositiveFloat = 0.2
    """PPO's probability-ratio clip."""
    entropy_coef: NonNegativeFloat = 0.01
    """Weight of the entropy bonus."""
    value_coef: NonNegativeFloat = 0.5
    """Weight of the value loss (0.5 x MSE to the GAE returns)."""
    ppo_epochs: Positive = 4
    """Passes over each rollout."""
    num_minibatches: Positive = 4
    """Minibatches per pass, split over envs (whole trials); must divide ``num_envs``."""
    max_grad_norm: PositiveFloat = 0.5
    """Global gradient-norm clip."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    hidden_size: Positive = 128
    """Width of the step embedding and of the recurrent state."""
    rnn_type: Literal["gru", "lstm"] = "gru"
    """``gru`` or ``lstm``."""
    num_rnn_layers: Positive = 1
    """Stacked recurrent layers."""
    reward_init_std: PositiveFloat | None = None
    """Initial scale of the reward's projection (see :class:`RL2Config`); ``None``: the
    orthogonal initialisation of earlier adbench models."""
    visit_bonus: NonNegativeFloat = 0.0
    """Training-time shaping for discrete observations (a grid's cells): this much is added
    to the reward of every step that ends on an observation its trial has not seen before,
    in the returns and advantages only (the policy's reward input and the logged returns
    stay the env's). A policy trained on a few goals learns where *they* are; paying for
    new cells makes covering the room, held-out goals' cells included, worth it (measured
    in docs/results.md: the search improves, no recipe adopts it yet). 0: off (the rewards
    of earlier adbench runs, bit for bit)."""
    init_from: str | None = None
    """Start from the weights of this RL^2 model (hub id, local hub first, or directory;
    safetensors only) instead of a fresh initialisation: a second training stage with
    other knobs, e.g. a smaller entropy bonus once the policy has learnt to explore. Its
    architecture must be the one these arguments make; the optimiser starts fresh. The
    training log records its revision and weights digest; the card names it as the base
    model."""
    hub: str | None = None
    """Local hub directory for ``init_from`` (default: ``$ADBENCH_HUB`` or the user cache)."""
    seed: Seed = 0
    """Seeds the model's initialisation, the task sampling, the envs and the actions."""
    checkpoint_every: NonNegative = 100
    """Save a resumable checkpoint every this many updates (0: never)."""

    def __post_init__(self) -> None:
        if self.segment_episodes and self.episodes_per_trial % self.segment_episodes:
            raise AdbenchError(
                f"segment_episodes ({self.segment_episodes}) must divide episodes_per_trial "
                f"({self.episodes_per_trial})"
            )
        if self.num_envs % self.num_minibatches:
            raise AdbenchError(
                f"num_minibatches ({self.num_minibatches}) must divide num_envs ({self.num_envs})"
            )


def rl2_config(family: EnvFamily, args: RL2Args) -> RL2Config:
    """The model config for ``family``: its observation encoding, actions and episode shape."""
    return RL2Config(
        **observation_spec(family),
        num_actions=family.num_actions,
        hidden_size=args.hidden_size,
        rnn_type=args.rnn_type,
        num_rnn_layers=args.num_rnn_layers,
        reward_init_std=args.reward_init_std,
        env_id=family.env_id,
        env_name=family.name,
        episode_length=family.episode_length,
        episodes_per_trial=args.episodes_per_trial,
    )


# Config fields that do not shape the weights: transformers' bookkeeping, the initial
# scale of one projection, and the trial length the model was trained on.
NON_ARCHITECTURE_FIELDS = frozenset(
    {
        "architectures",
        "auto_map",
        "dtype",
        "torch_dtype",
        "transformers_version",
        "_name_or_path",
        "reward_init_std",
        "episodes_per_trial",
    }
)


def load_initial_weights(model: RL2Model, args: RL2Args) -> dict[str, str]:
    """Load ``args.init_from``'s weights into ``model`` (whose config the arguments made)
    and return what identifies them: the id, its content revision and the weights'
    sha256. Raises AdbenchError if its architecture differs from the model's."""
    from safetensors.torch import load_file

    from adbench.hub import repo_revision
    from adbench.hub_storage import file_digest
    from adbench.models.loading import WEIGHTS_FILE, check_model_dir, model_dir

    assert args.init_from is not None
    path = model_dir(args.init_from, hub=args.hub)
    parent = check_model_dir(path)
    ours = model.config.to_diff_dict()  # what save_pretrained writes to config.json
    differing = sorted(
        key
        for key in set(parent) | set(ours)
        if key not in NON_ARCHITECTURE_FIELDS and parent.get(key) != ours.get(key)
    )
    if differing:
        shown = ", ".join(f"{k}: {parent.get(k)!r} there, {ours.get(k)!r} here" for k in differing)
        raise AdbenchError(
            f"init_from {args.init_from} is not the model these arguments make ({shown}): "
            "give the recipe it was trained with, or another model"
        )
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    return {
        "id": args.init_from,
        "revision": repo_revision(path),
        "weights_sha256": file_digest(path / WEIGHTS_FILE).sha256,
    }


@dataclass
class Rollout:
    """One trial of every env, ``[N, T]`` per step (``T = episodes x episode_length``)."""

    observations: torch.Tensor  # [N, T, *obs_shape]
    prev_actions: torch.Tensor  # long, -1 at the trial's first step
    prev_rewards: torch.Tensor
    new_episode: torch.Tensor  # bool
    actions: torch.Tensor  # long
    log_probs: torch.Tensor  # of the actions taken, under the acting policy
    values: torch.Tensor
    rewards: torch.Tensor
    bonuses: torch.Tensor  # the visit bonus of each step (zeros without one)


@dataclass
class TrialProgress:
    """Where every env's current trial stands between updates (the envs run in lockstep):
    the episodes played, and what the next step starts from. ``episodes_done == 0`` means
    a new trial (new tasks, zero state) starts at the next update."""

    episodes_done: int = 0
    state: Any = None  # the recurrent state after the last step played
    prev_action: torch.Tensor | None = None
    prev_reward: torch.Tensor | None = None
    next_obs: torch.Tensor | None = None  # the first observation of the next episode
    task_indices: NDArray[np.int64] | None = None
    visited: torch.Tensor | None = None  # [N, cells] bool: the trial's observations so far


class VisitBonus:
    """Pays ``bonus`` for every step that ends on an observation its trial has not seen
    (see ``RL2Args.visit_bonus``): observations are cells of a ``MultiDiscrete`` grid,
    numbered row-major."""

    def __init__(self, bonus: float, observation_high: list[int], device: torch.device) -> None:
        self.bonus = bonus
        strides = np.cumprod([1, *observation_high[:0:-1]])[::-1].copy()
        self.strides = torch.as_tensor(strides, dtype=torch.long, device=device)
        self.num_cells = int(np.prod(observation_high))

    def cells(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations.long() * self.strides).sum(-1)

    def start(self, observations: torch.Tensor) -> torch.Tensor:
        """The visited cells of new trials that start at ``observations`` (unpaid)."""
        visited = torch.zeros(
            len(observations), self.num_cells, dtype=torch.bool, device=observations.device
        )
        return self.pay(visited, observations)[0]

    def pay(
        self, visited: torch.Tensor, observations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The cells visited once ``observations`` are reached, and what reaching them pays."""
        rows = torch.arange(len(observations), device=observations.device)
        cells = self.cells(observations)
        new = ~visited[rows, cells]
        visited = visited.clone()
        visited[rows, cells] = True
        return visited, new.float() * self.bonus


def play_trial(
    model: RL2Model,
    env: BatchedEnv,
    episodes: int,
    generator: torch.Generator,
    device: torch.device,
) -> Rollout:
    """Play ``episodes`` episodes in every env of ``env``, the recurrent state carried
    across them; actions are sampled from the policy with ``generator``."""
    rollout, _ = play_segment(model, env, episodes, generator, device, TrialProgress(), False)
    return rollout


def play_segment(
    model: RL2Model,
    env: BatchedEnv,
    episodes: int,
    generator: torch.Generator,
    device: torch.device,
    start: TrialProgress,
    continues: bool,
    visit_bonus: VisitBonus | None = None,
) -> tuple[Rollout, TrialProgress]:
    """Play the next ``episodes`` episodes of every env's trial from ``start`` (a new
    trial when it holds no state); with ``continues``, the trial goes on after them, and
    the first observation of its next episode is taken for the next segment. With
    ``visit_bonus``, the steps that reach a cell new to the trial are paid its bonus."""
    n, length = env.num_envs, env.episode_length
    state = start.state if start.state is not None else model.new_context(n)
    if start.prev_action is None:
        prev_action = torch.full((n,), -1, dtype=torch.long, device=device)
        prev_reward = torch.zeros(n, device=device)
    else:
        prev_action, prev_reward = start.prev_action, start.prev_reward
    columns: dict[str, list[torch.Tensor]] = {name: [] for name in Rollout.__dataclass_fields__}
    first_obs = start.next_obs
    visited = start.visited
    no_bonus = torch.zeros(n, device=device)
    for episode in range(episodes):
        if episode == 0 and first_obs is not None:
            obs = first_obs
        else:
            obs = torch.as_tensor(env.reset(), device=device)
        if visit_bonus is not None:  # where an episode starts is visited, and not paid
            visited = (
                visit_bonus.start(obs) if visited is None else visit_bonus.pay(visited, obs)[0]
            )
        for t in range(length):
            new_episode = torch.full((n,), t == 0, dtype=torch.bool, device=device)
            logits, value, state = model.act_logits_and_values(
                state, obs, prev_action, prev_reward, new_episode
            )
            log_probs = F.log_softmax(logits.float(), dim=-1)
            action = torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(1)
            next_obs, reward, _, _ = env.step(action.cpu().numpy())
            reward_t = torch.as_tensor(reward, device=device)
            bonus = no_bonus
            if visit_bonus is not None:
                visited, bonus = visit_bonus.pay(visited, torch.as_tensor(next_obs, device=device))
            for key, value_t in (
                ("observations", obs),
                ("prev_actions", prev_action),
                ("prev_rewards", prev_reward),
                ("new_episode", new_episode),
                ("actions", action),
                ("log_probs", log_probs.gather(1, action[:, None]).squeeze(1)),
                ("values", value.float()),
                ("rewards", reward_t),
                ("bonuses", bonus),
            ):
                columns[key].append(value_t)
            # The next episode starts from a fresh observation, but its first step still
            # sees the last action and reward of this one (the trial is one stream).
            obs = torch.as_tensor(next_obs, device=device)
            prev_action, prev_reward = action, reward_t
    rollout = Rollout(**{name: torch.stack(column, dim=1) for name, column in columns.items()})
    end = TrialProgress(
        start.episodes_done + episodes,
        state,
        prev_action,
        prev_reward,
        None,
        start.task_indices,
        visited,
    )
    if continues:
        end.next_obs = torch.as_tensor(env.reset(), device=device)
    return rollout, end


def segment_bootstrap(model: RL2Model, end: TrialProgress, device: torch.device) -> torch.Tensor:
    """The value ``[N]`` of the step after a segment whose trial goes on (the first step of
    the next episode): GAE bootstraps on it instead of treating the cut as terminal."""
    n = len(end.prev_action)
    new_episode = torch.ones(n, dtype=torch.bool, device=device)
    _, value, _ = model.act_logits_and_values(
        end.state, end.next_obs, end.prev_action, end.prev_reward, new_episode
    )
    return value.float()


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    lam: float,
    last_value: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(lambda) advantages and returns ``[N, T]``. The step after ``T-1`` is terminal
    (the trial's end) unless ``last_value`` (its value estimate ``[N]``) is given: a
    segment cut inside a trial bootstraps on it."""
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0]) if last_value is None else last_value
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, advantages + values


def ppo_loss(
    model: torch.nn.Module,
    batch: Rollout,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    args: RL2Args,
    start_state: Any = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The PPO loss of the rollout re-run from its start state (the zero state of a new
    trial, or the state a segment started from): BPTT over the rollout only."""
    output = model(
        batch.observations,
        batch.prev_actions,
        batch.prev_rewards,
        batch.new_episode,
        state=start_state,
    )
    log_probs_all = F.log_softmax(output.logits.float(), dim=-1)
    log_probs = log_probs_all.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs_all.exp() * log_probs_all).sum(-1).mean()
    log_ratio = log_probs - batch.log_probs
    ratio = log_ratio.exp()
    if args.normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = torch.max(
        -advantages * ratio, -advantages * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)
    ).mean()
    value_loss = 0.5 * (output.values.float() - returns).pow(2).mean()
    loss = policy_loss + args.value_coef * value_loss - args.entropy_coef * entropy
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy.item(),
            # the low-variance KL estimator (Schulman): E[(r - 1) - log r]
            "approx_kl": ((ratio - 1) - log_ratio).mean().item(),
            "clip_fraction": ((ratio - 1).abs() > args.clip_coef).float().mean().item(),
        }
    return loss, stats


def select(rollout: Rollout, index: torch.Tensor) -> Rollout:
    return Rollout(**{k: v[index] for k, v in vars(rollout).items()})


def select_state(state: Any, index: torch.Tensor) -> Any:
    """The recurrent state (``[layers, N, H]``, or an LSTM's pair) of the envs ``index``."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part[:, index] for part in state)
    return state[:, index]


def train_rl2(
    args: RL2Args,
    output_dir: Path,
    accelerator: Accelerator | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    command: str = "",
    stop_after: int | None = None,
) -> RL2Model:
    """Train RL^2 with PPO, save it (``save_pretrained``) and ``training_log.json`` into
    ``output_dir``, and return the trained (unwrapped) model.

    ``on_update`` receives each update's metrics on the main process. With the same seed
    and arguments, a CPU run gives the same model. Checkpoints (every
    ``checkpoint_every`` updates) hold the model, the optimiser and every random stream;
    rerun with the same ``output_dir`` to resume from the latest, exactly. ``stop_after``
    stops after that many updates of this call, as an interruption would (to test it).
    """
    accelerator = accelerator or make_accelerator()
    device = accelerator.device
    family = get_family(args.env)
    tasks = family.split(args.split or family.train_split)[: args.max_tasks]

    # Reference returns of every task, once: Watermaze's are simulations, too slow per update.
    optimal_returns = family.optimal_return(tasks)
    random_returns = family.random_return(tasks)

    # --- seeds: one stream each for tasks, envs, actions and minibatches, per process ---
    task_seeds, env_seeds, action_seeds, minibatch_seeds = np.random.SeedSequence(
        [args.seed, accelerator.process_index]
    ).spawn(4)
    task_rng = np.random.default_rng(task_seeds)
    action_generator = torch.Generator(device=device)
    action_generator.manual_seed(int(action_seeds.generate_state(1)[0]))
    minibatch_generator = torch.Generator().manual_seed(int(minibatch_seeds.generate_state(1)[0]))

    # --- model and optimiser: the same initial weights on every process ------------------
    config = rl2_config(family, args)
    visit_bonus = None
    if args.visit_bonus > 0:
        if config.observation_type != "discrete":
            raise AdbenchError(
                f"visit_bonus needs discrete observations (a grid's cells); {family.name}'s "
                f"are {config.observation_type!r}: set visit_bonus=0"
            )
        visit_bonus = VisitBonus(args.visit_bonus, list(config.observation_high), device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = RL2Model(config)
    initial_weights = load_initial_weights(model, args) if args.init_from else None
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, eps=args.adam_eps)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped: RL2Model = accelerator.unwrap_model(model)
    model.eval()  # see the module docstring: the acting and the updated policy must agree

    env = family.make_batched(
        tasks[task_rng.integers(0, len(tasks), args.num_envs)],
        seed=int(env_seeds.generate_state(1)[0]),
    )
    minibatch_size = args.num_envs // args.num_minibatches
    segment = args.segment_episodes or args.episodes_per_trial
    steps_per_update = args.num_envs * segment * family.episode_length * accelerator.num_processes
    progress = TrialProgress()
    log: dict[str, Any] = {
        "args": asdict(args),
        "env_id": family.env_id,
        "num_processes": accelerator.num_processes,
        "initial_weights": initial_weights,
        "updates": [],
    }
    output_dir = Path(output_dir)
    accelerator.register_for_checkpointing(
        StreamsState(task_rng, action_generator, minibatch_generator, env, progress)
    )
    done = resume_point(accelerator, output_dir, asdict(args))
    if done and (output_dir / LOG_FILE).exists():
        previous = json.loads((output_dir / LOG_FILE).read_text())
        log["updates"] = [u for u in previous["updates"] if u["update"] <= done]
    log["resumed_from_update"] = done
    started = time.perf_counter()

    for update in range(done + 1, args.total_updates + 1):
        update_start = time.perf_counter()
        # A function of the update alone, so a resumed run steps exactly as an unbroken one.
        learning_rate = args.learning_rate * (
            1.0 - (update - 1) / args.total_updates if args.anneal_lr else 1.0
        )
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        if progress.episodes_done == 0:  # a new trial: new tasks, from the zero state
            progress.task_indices = task_rng.integers(0, len(tasks), args.num_envs)
            env.set_tasks(tasks[progress.task_indices])
        trial_indices = progress.task_indices
        begin = replace(progress)  # a copy: progress moves on below
        continues = begin.episodes_done + segment < args.episodes_per_trial
        rollout, end = play_segment(
            unwrapped, env, segment, action_generator, device, begin, continues, visit_bonus
        )
        last_value = segment_bootstrap(unwrapped, end, device) if continues else None
        advantages, returns = gae(
            (rollout.rewards + rollout.bonuses) * args.reward_scale,
            rollout.values,
            args.gamma,
            args.gae_lambda,
            last_value,
        )

        stats_sum: dict[str, float] = {}
        num_minibatch_steps = 0
        for _ in range(args.ppo_epochs):
            order = torch.randperm(args.num_envs, generator=minibatch_generator).to(device)
            for start in range(0, args.num_envs, minibatch_size):
                index = order[start : start + minibatch_size]
                loss, stats = ppo_loss(
                    model,
                    select(rollout, index),
                    advantages[index],
                    returns[index],
                    args,
                    select_state(begin.state, index),
                )
                optimizer.zero_grad()
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                for key, value in stats.items():
                    stats_sum[key] = stats_sum.get(key, 0.0) + value
                num_minibatch_steps += 1

        # --- metrics, averaged over processes ------------------------------------------
        # The next update goes on with this trial, or starts a new one.
        progress.__dict__.update(vars(end if continues else TrialProgress()))
        episode_returns = rollout.rewards.reshape(args.num_envs, segment, -1)
        local = torch.tensor(
            [
                *episode_returns.sum(-1).mean(0).tolist(),
                *(stats_sum[k] / num_minibatch_steps for k in sorted(stats_sum)),
                float(rollout.bonuses.sum(1).mean()),
                float(optimal_returns[trial_indices].mean()),
                float(random_returns[trial_indices].mean()),
            ],
            device=device,
        )
        reduced = accelerator.reduce(local, reduction="mean").tolist()
        per_episode = reduced[:segment]
        loss_terms = dict(zip(sorted(stats_sum), reduced[segment:-3], strict=True))
        record = {
            "update": update,
            "trial_episodes": [begin.episodes_done + 1, end.episodes_done],
            "env_steps": update * steps_per_update,
            "mean_return_per_episode": [round(r, 4) for r in per_episode],
            "mean_trial_return": round(sum(per_episode), 4),
            **({"mean_segment_bonus": round(reduced[-3], 4)} if visit_bonus else {}),
            "mean_optimal_return": round(reduced[-2], 4),
            "mean_random_return": round(reduced[-1], 4),
            "learning_rate": learning_rate,
            **{k: round(v, 6) for k, v in loss_terms.items()},
            "steps_per_second": round(steps_per_update / (time.perf_counter() - update_start), 1),
            "elapsed_seconds": round(time.perf_counter() - started, 2),
        }
        log["updates"].append(record)
        if on_update is not None and accelerator.is_main_process:
            on_update(record)
        last = update == args.total_updates
        stopping = stop_after is not None and update - done >= stop_after and not last
        if stopping or (args.checkpoint_every and update % args.checkpoint_every == 0 and not last):
            save_checkpoint(accelerator, output_dir, update, asdict(args))
            if accelerator.is_main_process:
                atomic_write_json(output_dir / LOG_FILE, log)
        if stopping:
            accelerator.end_training()
            raise AdbenchError(f"training stopped after update {update} as asked")

    # --- save ----------------------------------------------------------------------------
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        unwrapped.save_pretrained(output_dir, safe_serialization=True)
        log["compute"] = {
            "device": str(device),
            "num_processes": accelerator.num_processes,
            "wall_seconds": round(time.perf_counter() - started, 1),
            "env_steps": args.total_updates * steps_per_update,
            "parameters": sum(p.numel() for p in unwrapped.parameters()),
        }
        atomic_write_json(output_dir / LOG_FILE, log)
        write_model_card(output_dir, unwrapped.config, asdict(args), log, command, None)
        shutil.rmtree(output_dir / CHECKPOINT_DIR, ignore_errors=True)  # complete: not needed
    accelerator.wait_for_everyone()
    return unwrapped


class StreamsState:
    """Every random stream of an RL^2 run besides torch's global one (which Accelerate saves
    itself), as a checkpointable object: the task sampler, the action and minibatch
    generators, and the envs' episode counter (their randomness is a pure function of
    their seeds and that counter)."""

    def __init__(
        self,
        task_rng: np.random.Generator,
        action_generator: torch.Generator,
        minibatch_generator: torch.Generator,
        env: BatchedEnv,
        progress: TrialProgress,
    ) -> None:
        self.task_rng = task_rng
        self.action_generator = action_generator
        self.minibatch_generator = minibatch_generator
        self.env = env
        self.progress = progress

    def state_dict(self) -> dict[str, Any]:
        progress = self.progress
        state = progress.state
        return {
            "task_rng": self.task_rng.bit_generator.state,
            "action_generator": self.action_generator.get_state(),
            "minibatch_generator": self.minibatch_generator.get_state(),
            "env_episode": self.env._episode,
            "env_tasks": torch.from_numpy(np.ascontiguousarray(self.env.tasks)),
            "episodes_done": progress.episodes_done,
            "state": list(state) if isinstance(state, tuple) else state,
            "prev_action": progress.prev_action,
            "prev_reward": progress.prev_reward,
            "next_obs": progress.next_obs,
            "task_indices": None
            if progress.task_indices is None
            else torch.from_numpy(progress.task_indices),
            "visited": progress.visited,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task_rng.bit_generator.state = state["task_rng"]
        self.action_generator.set_state(state["action_generator"])
        self.minibatch_generator.set_state(state["minibatch_generator"])
        self.env.set_tasks(state["env_tasks"].numpy())
        episode = int(state["env_episode"])
        if state["next_obs"] is not None:
            # The next episode had been reset already; a fresh env resets it again instead
            # (the same observation: a pure function of the env's seed and the episode).
            episode -= 1
        self.env._episode = episode
        recurrent = state["state"]
        self.progress.episodes_done = int(state["episodes_done"])
        self.progress.state = tuple(recurrent) if isinstance(recurrent, list) else recurrent
        self.progress.prev_action = state["prev_action"]
        self.progress.prev_reward = state["prev_reward"]
        self.progress.next_obs = None
        indices = state["task_indices"]
        self.progress.task_indices = None if indices is None else indices.numpy()
        self.progress.visited = state.get("visited")  # absent from runs without the bonus
