"""AD/ED: the transformers model, its rolling KV cache, and training with Accelerate."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, DynamicCache

from adbench.errors import AdbenchError
from adbench.histories.builder import build_dataset
from adbench.models import ADConfig, ADModel
from adbench.models.loading import check_model_dir, load_model
from adbench.training.train_ad import ADTrainArgs, train_ad

REPO_ROOT = Path(__file__).resolve().parents[1]


def _inputs(batch: int, steps: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randint(0, 9, (batch, steps, 2), generator=g),
        "prev_actions": torch.randint(-1, 5, (batch, steps), generator=g),
        "prev_rewards": torch.rand(batch, steps, generator=g),
        "new_episode": torch.rand(batch, steps, generator=g) < 0.1,
    }


def _tiny_model(window: int = 8) -> ADModel:
    torch.manual_seed(0)
    config = ADConfig(
        attention_window=window,
        num_hidden_layers=3,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=64,
    )
    return ADModel(config).eval()


def test_rolling_cache_equals_full_forward_across_slides() -> None:
    model = _tiny_model(window=8)
    inputs = _inputs(3, 30)  # the window slides 22 times
    full = model(**inputs).logits
    context = model.new_context(3)
    steps = []
    for t in range(30):
        logits, context = model.act_logits(context, *(v[:, t] for v in inputs.values()))
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert context.keys.shape[-1] == 8  # preallocated to the window, never grown


def test_transformers_dynamic_cache_gives_the_same_outputs() -> None:
    model = _tiny_model(window=6)
    inputs = _inputs(2, 20, seed=1)
    full = model(**inputs).logits
    cache = DynamicCache(config=model.config)
    outputs = []
    with torch.no_grad():
        for t in range(20):
            out = model(**{k: v[:, t : t + 1] for k, v in inputs.items()}, cache=cache)
            assert out.cache is cache and out["cache"] is cache
            outputs.append(out.logits[:, 0])
    torch.testing.assert_close(torch.stack(outputs, 1), full, rtol=1e-5, atol=1e-5)


def test_the_cache_is_also_accepted_under_its_old_name() -> None:
    # transformers < 5.24 callers pass `past_key_values`; the output names it `cache` on
    # every version (5.24's ModelOutput renames the old keyword).
    model = _tiny_model(window=6)
    inputs = _inputs(1, 3, seed=2)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model(**inputs, past_key_values=cache)
    assert out.cache is cache and cache.get_seq_length() == 3
    with pytest.raises(ValueError, match="not both"):
        model(**inputs, cache=cache, past_key_values=cache)


def test_attention_reaches_back_exactly_the_window() -> None:
    # One layer, window 4: step t attends to steps t-3..t, so changing steps 0..2 changes
    # the outputs of steps 0..5 and none after.
    torch.manual_seed(0)
    one_layer = ADModel(
        ADConfig(attention_window=4, num_hidden_layers=1, hidden_size=32, num_attention_heads=4)
    ).eval()
    a, b = _inputs(1, 12, seed=2), _inputs(1, 12, seed=2)
    b["prev_rewards"][:, :3] += 5.0
    la, lb = one_layer(**a).logits, one_layer(**b).logits
    torch.testing.assert_close(la[:, 6:], lb[:, 6:])
    assert not torch.allclose(la[:, 5], lb[:, 5])


def _written_out_attention(
    attention: torch.nn.Module,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
) -> torch.Tensor:
    """The textbook formula, for comparison: softmax(q k^T / sqrt(d) + bias) v."""
    scores = q @ k.transpose(-1, -2) * attention.head_dim**-0.5 + bias
    y = torch.softmax(scores, dim=-1) @ v
    return attention.out(y.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1))


@pytest.mark.parametrize("window", [5, 16])  # a sliding window, and one past the sequence
def test_fused_attention_equals_the_written_out_formula_with_its_gradients(
    window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adbench.models.modeling_ad import ADAttention

    torch.manual_seed(0)
    config = ADConfig(
        attention_window=window,
        num_hidden_layers=2,
        hidden_size=32,
        num_attention_heads=4,
        dropout=0.0,
        attention_dropout=0.0,
    )
    model = ADModel(config).train()
    inputs = {**_inputs(3, 16, seed=3), "actions": torch.randint(0, 5, (3, 16))}

    def loss_and_grads() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    fused_loss, fused_grads = loss_and_grads()
    monkeypatch.setattr(ADAttention, "attend", _written_out_attention)
    loss, grads = loss_and_grads()
    torch.testing.assert_close(fused_loss, loss, rtol=1e-6, atol=1e-6)
    for a, b in zip(fused_grads, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_dropout_masks_are_seeded_unbiased_and_of_the_configured_rate() -> None:
    from adbench.models.modeling_ad import DropoutMasks

    shape = torch.Size([400, 1000])

    def draw(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return DropoutMasks(0.1, 1, shape, torch.device("cpu"), torch.float32).next()

    first = draw(7)
    assert torch.equal(first, draw(7)) and not torch.equal(first, draw(8))
    scale = 65536 / (65536 - 6554)  # p = 0.1 rounds to 6554 / 65536
    assert first.unique().tolist() == pytest.approx([0.0, scale])
    dropped = (first == 0).float().mean().item()
    assert abs(dropped - 6554 / 65536) < 0.002  # 400k draws: a standard error of 0.0005
    # Successive masks of one forward are independent draws, not the same mask.
    masks = DropoutMasks(0.5, 2, shape, torch.device("cpu"), torch.float32)
    a, b = masks.next(), masks.next()
    assert abs(((a > 0) & (b > 0)).float().mean().item() - 0.25) < 0.005
    with pytest.raises(StopIteration):
        masks.next()


def test_training_forward_draws_its_dropout_from_the_torch_seed() -> None:
    config = ADConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, dropout=0.3)
    torch.manual_seed(0)
    model = ADModel(config).train()
    inputs = _inputs(2, 10, seed=4)
    torch.manual_seed(11)
    first = model(**inputs).logits
    torch.manual_seed(11)
    torch.testing.assert_close(model(**inputs).logits, first, rtol=0, atol=0)
    assert not torch.allclose(model(**inputs).logits, first)  # the next draw differs
    model.eval()
    torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["none", "discrete"])
def test_training_encoder_sums_the_same_embeddings_as_the_lookups(kind: str) -> None:
    # In training the step encoder sums its tables through one multi-hot product (a faster
    # backward); evaluation keeps the lookups. Same sums and gradients up to float rounding.
    from adbench.models.observation_encoding import StepEncoder

    torch.manual_seed(0)
    discrete = kind == "discrete"
    encoder = StepEncoder(16, kind, [2] if discrete else [], [9, 17] if discrete else [], 5)
    g = torch.Generator().manual_seed(1)
    shape = (3, 40)
    inputs = (
        torch.stack(
            [torch.randint(0, 9, shape, generator=g), torch.randint(0, 17, shape, generator=g)], -1
        )
        if discrete
        else torch.zeros(shape, dtype=torch.long),
        torch.randint(-1, 5, shape, generator=g),
        torch.randint(0, 2, shape, generator=g).float() * 0.5,
        torch.rand(shape, generator=g) < 0.2,
    )
    upstream = torch.randn(*shape, 16, generator=g)
    results = []
    for training in (True, False):
        encoder.train(training)
        encoder.zero_grad()
        out = encoder(*inputs)
        out.backward(upstream)
        grads = {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}
        results.append((out.detach(), grads))
    (train_out, train_grads), (eval_out, eval_grads) = results
    torch.testing.assert_close(train_out, eval_out, rtol=0, atol=1e-5)
    assert train_grads.keys() == eval_grads.keys() and len(train_grads) == (6 if discrete else 4)
    for name in eval_grads:
        torch.testing.assert_close(train_grads[name], eval_grads[name], rtol=1e-5, atol=1e-5)


def test_save_and_load_in_process_and_fresh_process(tmp_path: Path) -> None:
    model = _tiny_model()
    model.config.env_name = "darkroom"
    inputs = _inputs(2, 10)
    expected = model(**inputs).logits.detach().numpy()
    model.save_pretrained(tmp_path / "model")
    files = sorted(p.name for p in (tmp_path / "model").iterdir())
    assert files == [
        "config.json",
        "configuration_ad.py",
        "model.safetensors",
        "modeling_ad.py",
        "observation_encoding.py",
    ]
    reloaded = AutoModel.from_pretrained(tmp_path / "model").eval()
    np.testing.assert_array_equal(reloaded(**inputs).logits.detach().numpy(), expected)
    for name, value in inputs.items():
        np.save(tmp_path / f"{name}.npy", value.numpy())
    code = f"""
import sys, numpy as np, torch
from transformers import AutoModel
model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
assert not any(m.startswith("adbench") for m in sys.modules), "adbench was imported"
names = ["observations", "prev_actions", "prev_rewards", "new_episode"]
inputs = {{n: torch.from_numpy(np.load({str(tmp_path)!r} + f"/{{n}}.npy")) for n in names}}
np.save({str(tmp_path / "fresh.npy")!r}, model(**inputs).logits.detach().numpy())
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "fresh.npy"), expected)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hub = tmp_path_factory.mktemp("hub")
    build_dataset(
        "darkroom",
        hub=hub,
        tasks=12,
        learners=2,
        episodes=60,
        every=3,
        expert_episodes=2,
        source="q-learning",
    )
    return hub


def _args(hub: Path, **overrides: object) -> ADTrainArgs:
    values = dict(
        dataset="ad-bench/darkroom",
        hub=str(hub),
        max_steps=12,
        batch_size=8,
        context_steps=40,
        attention_window=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        warmup_steps=2,
        log_every=4,
        checkpoint_every=0,
        learning_rate=1e-3,
    )
    values.update(overrides)
    return ADTrainArgs.from_dict(values)


def test_tiny_ad_loss_falls(tiny_dataset: Path, tmp_path: Path) -> None:
    train_ad(_args(tiny_dataset, max_steps=80, log_every=10), tmp_path / "ad")
    log = json.loads((tmp_path / "ad" / "training_log.json").read_text())
    losses = [s["loss"] for s in log["steps"]]
    assert losses[0] > 1.45  # about ln 5 = 1.61 at the start
    assert losses[-1] < losses[0] - 0.25, losses
    config = json.loads((tmp_path / "ad" / "config.json").read_text())
    assert config["dataset_id"] == "ad-bench/darkroom" and config["method"] == "ad"
    assert len(config["dataset_revision"]) == 40
    card = (tmp_path / "ad" / "README.md").read_text()
    assert "ad-bench/darkroom" in card and "| learning_rate | 0.001 |" in card
    assert not (tmp_path / "ad" / "checkpoints").exists()
    model = load_model(tmp_path / "ad")
    assert model.config.env_name == "darkroom"


def test_ed_trains_on_the_expert_config(tiny_dataset: Path, tmp_path: Path) -> None:
    train_ad(_args(tiny_dataset, method="ed", context_steps=40, max_steps=4), tmp_path / "ed")
    config = json.loads((tmp_path / "ed" / "config.json").read_text())
    assert config["method"] == "ed" and config["dataset_config"] == "expert"
    assert "Expert Distillation" in (tmp_path / "ed" / "README.md").read_text()


def test_resume_continues_exactly(tiny_dataset: Path, tmp_path: Path) -> None:
    args = _args(tiny_dataset)
    train_ad(args, tmp_path / "straight")
    with pytest.raises(AdbenchError, match="stopped after step 5"):
        train_ad(args, tmp_path / "resumed", stop_after=5)
    assert (tmp_path / "resumed" / "checkpoints").exists()
    train_ad(args, tmp_path / "resumed")
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    with pytest.raises(AdbenchError, match="stopped after step 2"):
        train_ad(_args(tiny_dataset, seed=1), tmp_path / "other", stop_after=2)
    with pytest.raises(AdbenchError, match="other arguments"):
        train_ad(_args(tiny_dataset, seed=2), tmp_path / "other")


def test_two_process_accelerate_launch(tiny_dataset: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "batch_size: 8\ncontext_steps: 20\nattention_window: 20\nhidden_size: 32\n"
        "num_hidden_layers: 1\nnum_attention_heads: 2\nwarmup_steps: 1\nlog_every: 2\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A free port of our own (two test sessions at once must not meet at accelerate's
    # default 29500), and a session of our own: if a rank hangs, the whole launch is
    # killed rather than left running after the test.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--main_process_port",
            str(port),
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "adbench",
            "train",
            "ad",
            "--dataset",
            "ad-bench/darkroom",
            "--hub",
            str(tiny_dataset),
            "--recipe",
            str(recipe),
            "--max-steps",
            "4",
            "--output",
            str(tmp_path / "ddp"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _, stderr = launch.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        _, stderr = launch.communicate()
        pytest.fail(f"the 2-process launch did not finish in 300 s: {stderr[-3000:]}")
    assert launch.returncode == 0, stderr[-3000:]
    log = json.loads((tmp_path / "ddp" / "training_log.json").read_text())
    assert log["compute"]["num_processes"] == 2
    check_model_dir(tmp_path / "ddp")
    assert isinstance(load_model(tmp_path / "ddp"), ADModel)


# --- bad input -----------------------------------------------------------------------


def test_recipe_with_unknown_key_fails_before_work(tmp_path: Path, cli) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("learning_rate: 0.001\nlearnign_rate: 0.1\n")
    result = cli(
        "train",
        "ad",
        "--dataset",
        "ad-bench/darkroom",
        "--recipe",
        str(recipe),
        "--output",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert "unknown key(s) 'learnign_rate' (did you mean 'learning_rate'?)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_dataset_of_another_env_fails_before_work(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(AdbenchError, match=r"recipe is for key-to-door but .* darkroom"):
        train_ad(_args(tiny_dataset, env="key-to-door"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_model_dir_with_missing_or_corrupted_files(tmp_path: Path) -> None:
    model = _tiny_model()
    model.save_pretrained(tmp_path / "m")
    check_model_dir(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdbenchError, match="corrupted"):
        load_model(tmp_path / "m")
    weights.unlink()
    with pytest.raises(AdbenchError, match=r"no model\.safetensors"):
        load_model(tmp_path / "m")
    torch.save(model.state_dict(), tmp_path / "m" / "pytorch_model.bin")
    with pytest.raises(AdbenchError, match="safetensors only"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(AdbenchError, match=r"config\.json is corrupted"):
        load_model(tmp_path / "m")
    with pytest.raises(AdbenchError, match="does not exist"):
        load_model(tmp_path / "nowhere/")


def test_foreign_model_type_needs_trust_remote_code(tmp_path: Path) -> None:
    model = _tiny_model()
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["model_type"] = "someone_elses_ad"
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(AdbenchError, match="--trust-remote-code"):
        load_model(tmp_path / "m")


def test_pooled_image_encoder_sees_block_means_and_keeps_parameter_names() -> None:
    # image_pool averages each 4x4 pixel block before the conv stack: a frame whose pixels
    # are permuted within blocks encodes the same; changing one block's mean does not.
    config = ADConfig(
        observation_type="image",
        observation_shape=[72, 96, 3],
        observation_high=[],
        num_actions=8,
        image_channels=[8, 8],
        image_pool=4,
        dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(0)
    model = ADModel(config).eval()
    encoder = model.encoder.image_encoder
    # 72 x 96 pooled to 18 x 24, then two blocks of stride 2 and max-pool 2: 2 x 2 x 8.
    assert encoder.proj.in_features == 8 * 2 * 2
    unpooled = ADModel(ADConfig(**{**config.to_dict(), "image_pool": 1}))
    assert model.state_dict().keys() == unpooled.state_dict().keys()
    frames = torch.randint(0, 256, (2, 72, 96, 3), dtype=torch.uint8)
    # Reverse the pixel order inside every 4 x 4 block: each block's mean is unchanged.
    blocks = frames.reshape(2, 18, 4, 24, 4, 3)
    permuted = blocks.flip(2, 4).reshape(2, 72, 96, 3)
    assert not torch.equal(permuted, frames)
    changed = frames.clone()
    changed[:, :36] = 255 - changed[:, :36]  # the top half's block means change
    with torch.no_grad():
        out, out_permuted, out_changed = (encoder(f) for f in (frames, permuted, changed))
    torch.testing.assert_close(out_permuted, out, rtol=0, atol=1e-6)
    # Small weights at initialisation: a change of 1e-4 is a hundred times the tolerance.
    assert (out_changed - out).abs().max() > 1e-4
    with pytest.raises(ValueError, match="image_pool"):
        ADConfig(observation_type="image", observation_shape=[72, 96, 3], image_pool=0)
