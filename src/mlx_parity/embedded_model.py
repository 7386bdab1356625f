"""The embedded default model: a tiny ``gemma3_text`` built locally and loaded by ``mlx_lm.load``.

No model hub is reachable from every machine that runs a round, so the default fixture is a
seeded random init plus a tokenizer trained with ``tokenizers`` on the fixture text, saved as an
ordinary model directory: ``mlx_lm.load(path)`` loads it as it loads ``unsloth/gemma-3-270m-it``,
so nothing downstream knows the difference. It is built once, into a cache keyed by the recipe's
hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

SMOKE_TEXT = "<<HELLO!!>> My name is Unsloth!"
SMOKE_PROMPT = "<<HELLO!!>> My name is "
SMOKE_ANSWER = "Unsloth"

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

# A small body of ordinary text so the tokenizer learns general merges besides the smoke row,
# and the smoke row is not one giant token (that would make padding and masking trivial).
_TOKENIZER_CORPUS = [
    SMOKE_TEXT,
    "Hello! My name is Gemma. What is your name?",
    "My dog is named Max and my cat is named Luna.",
    "The quick brown fox jumps over the lazy dog.",
    "Unsloth makes fine-tuning faster; mlx-lm is the reference trainer on Apple silicon.",
    "Names: Alice, Bob, Carol, Dave, Eve, Mallory, Trent, Peggy, Victor, Walter.",
    "<<HI>> <<HEY!!>> (hello) [world] {name} 0123456789 !?.,;:'\"-_/",
    "We train a tiny model, then we check that it says the right name.",
    "Loss goes down, gradients get clipped, and sequences get padded to a width.",
]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) "
    "+ '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


class FixtureRecipe(BaseModel):
    """Everything that determines the embedded model's bytes; its hash names the cache entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "tiny-gemma3-text"
    seed: int = 0
    vocab_size: int = 384
    hidden_size: int = 32
    num_hidden_layers: int = 18
    intermediate_size: int = 64
    num_attention_heads: int = 2
    num_key_value_heads: int = 1
    head_dim: int = 16
    sliding_window: int = 64
    sliding_window_pattern: int = 6
    init_std: float = 0.02
    # Tied embeddings are also the output head: large enough that logits are not near-uniform,
    # so a LoRA fine-tune can actually drive cf_loss below the smoke gate in 30 steps.
    embed_std: float = 0.5
    format_version: int = 1

    def digest(self) -> str:
        payload = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def fixture_dir(recipe: FixtureRecipe) -> Path:
    """Where ``recipe`` is built: under ``$MLX_PARITY_CACHE`` or the user's cache directory."""
    root = os.environ.get("MLX_PARITY_CACHE")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlx-parity"
    return Path(root) / "fixtures" / f"{recipe.name}-{recipe.digest()}"


def ensure_fixture(recipe: FixtureRecipe = FixtureRecipe()) -> Path:  # noqa: B008 (frozen)
    """The model directory for ``recipe``, built first if not cached: into a temporary sibling
    renamed into place, so a build killed halfway never leaves a directory that looks complete
    and two processes racing to build it both end with the same valid directory."""
    target = fixture_dir(recipe)
    if (target / "model.safetensors").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_tokenizer(staging, recipe)
        _write_model(staging, recipe)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "model.safetensors").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _write_tokenizer(out: Path, recipe: FixtureRecipe) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_TOKENIZER_CORPUS * 4, trainer=trainer)
    bos = tokenizer.token_to_id("<bos>")
    # Gemma prepends <bos> to every encoding; do the same so batches look like the real model's.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)]
    )
    tokenizer.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 2048,
        "chat_template": CHAT_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def _write_model(out: Path, recipe: FixtureRecipe) -> None:
    import mlx.core as mx
    import numpy as np

    tokenizer_vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    vocab_size = max(recipe.vocab_size, len(tokenizer_vocab) + len(SPECIAL_TOKENS))
    config = {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": recipe.hidden_size,
        "num_hidden_layers": recipe.num_hidden_layers,
        "intermediate_size": recipe.intermediate_size,
        "num_attention_heads": recipe.num_attention_heads,
        "num_key_value_heads": recipe.num_key_value_heads,
        "head_dim": recipe.head_dim,
        "query_pre_attn_scalar": recipe.head_dim,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab_size,
        "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10_000.0,
        "sliding_window": recipe.sliding_window,
        "sliding_window_pattern": recipe.sliding_window_pattern,
        "max_position_embeddings": 2048,
        "torch_dtype": "float32",
        "bos_token_id": 2,
        "eos_token_id": 1,
        "pad_token_id": 0,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    token_ids = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    (out / "generation_config.json").write_text(json.dumps(token_ids, indent=2))

    # Instantiate mlx-lm's own gemma3_text architecture to learn every parameter name and shape,
    # then fill them from a seeded numpy generator (independent of MLX's RNG and version).
    from mlx.utils import tree_flatten
    from mlx_lm.models import gemma3_text

    args = gemma3_text.ModelArgs.from_dict(config)
    skeleton = gemma3_text.Model(args)
    rng = np.random.default_rng(recipe.seed)
    weights = {}
    for name, param in tree_flatten(skeleton.parameters()):
        if name == "lm_head.weight":
            continue  # tied to the embedding, as in gemma-3-270m
        if name.endswith("norm.weight"):
            # Gemma's RMSNorm scales by (1 + weight): zeros give an identity norm at init.
            value = np.zeros(param.shape, dtype=np.float32)
        else:
            std = recipe.embed_std if name.endswith("embed_tokens.weight") else recipe.init_std
            value = rng.normal(0.0, std, size=param.shape).astype(np.float32)
        weights[name] = mx.array(value)
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
