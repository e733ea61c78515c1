"""ELMo (Peters et al. 2018): a character-CNN token encoder and a bidirectional LSTM language model.

    piece ids ─► characters ─► CharCNN ─► token vectors x ─┬► forward LSTM 1 ─► forward LSTM 2 (+res) ─► softmax: next piece
    [b, l]       [b, l, c]     (per piece) [b, l, d]        └► backward LSTM 1 ─► backward LSTM 2 (+res) ─► softmax: previous piece

Tokens are the SentencePiece pieces of the t2t vocabulary (not whitespace words as in the paper): the
CharCNN reads each piece's UTF-8 bytes (`character_table`), so pieces that share spelling share
features, and the model never needs a token embedding table. Its contextual representations are
the L + 1 layers [x; x], [f_1; b_1], ..., [f_L; b_L] (each [b, l, 2d]), which `ScalarMix` combines
with softmax-normalised weights for a downstream task.

Choices, and how they differ from the paper's 4096-cell LSTMs with 512-wide projections:
- Each LSTM has `d_model` cells and no projection (flax's `OptimizedLSTMCell`); the layers' width is
  `d_model` throughout, so the residual connection between the layers needs no projection either.
- The softmax is shared by the two directions, as in the paper, and is not tied to the input: there
  is no token embedding to tie it to (the input side is the CharCNN).
- Packing-aware: several examples may share a row (`segment_ids` as the converters make them). Every
  LSTM resets its state to zero where an example starts in its reading direction, so no state flows
  from one packed example into the next, and the LM targets never cross an example boundary.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import sentencepiece as spm

from t2t.data.vocab import EOS_ID, PAD_ID, UNK_ID, Vocabulary

Array = jax.Array

# Character ids: 0 pads a piece's character row; UTF-8 byte v is v + 1; then beginning- and
# end-of-piece markers, and one marker character each for EOS, UNK and the other special ids.
CHAR_PAD, BOW, EOW, EOS_CHAR, UNK_CHAR, SPECIAL_CHAR = 0, 257, 258, 259, 260, 261
CHAR_VOCAB_SIZE = 262


@dataclasses.dataclass(frozen=True)
class ElmoConfig:
    """Hyper-parameters of an ELMo model; named sizes are in `ELMO_SIZES`.

    Attributes:
      vocab_size: softmax rows. None = the vocabulary's padded size (the trainer fills it in).
      max_characters: characters per piece including the two markers; longer pieces are cut (the
        8k embedded vocabulary's longest piece has 18 bytes, so 20 cuts none).
      char_embed_dim: width of a character embedding (paper: 16).
      filters: (width, number of filters) of the CharCNN's convolutions; their outputs, max-pooled
        over the characters, are concatenated (paper: 2048 filters of widths 1-7).
      num_highway: highway layers after the convolutions (paper: 2).
      d_model: width of the token vectors, the LSTM cells and the softmax input (paper: 512 after
        projection).
      num_layers: LSTM layers per direction (paper: 2).
      dropout_rate: dropout on the token vectors and every LSTM layer's output (paper: 0.1).
      dtype: compute dtype ("float32" or "bfloat16"); parameters stay float32.
    """

    vocab_size: int | None = None
    max_characters: int = 20
    char_embed_dim: int = 16
    filters: tuple[tuple[int, int], ...] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256),
                                            (6, 512), (7, 1024))
    num_highway: int = 2
    d_model: int = 512
    num_layers: int = 2
    dropout_rate: float = 0.1
    dtype: str = "float32"

    def replace(self, **changes: Any) -> "ElmoConfig":
        return dataclasses.replace(self, **changes)


ELMO_SIZES: dict[str, ElmoConfig] = {
    # The paper's CharCNN and depth, with 512-cell LSTMs in place of its 4096-cell projected ones.
    "base": ElmoConfig(),
    # For CPUs: 256 filters, d_model 256 (BERT tiny's width); 4.6M parameters with an 8,192-row
    # softmax (which holds 2.1M of them), against BERT tiny's 3.9M.
    "tiny": ElmoConfig(filters=((1, 16), (2, 16), (3, 32), (4, 64), (5, 128)), d_model=256),
}


@gin.configurable
def elmo_config(size: str = "tiny", **overrides: Any) -> ElmoConfig:
    """A named ELMo size with fields overridden, e.g. gin `elmo_config.dropout_rate = 0.0`."""
    if size not in ELMO_SIZES:
        close = difflib.get_close_matches(size, ELMO_SIZES, n=1)
        raise ValueError(f"Unknown ELMo size {size!r}{f'; did you mean {close[0]!r}' if close else ''}. "
                         f"Sizes: {', '.join(ELMO_SIZES)}.")
    return ELMO_SIZES[size].replace(**overrides)


def character_table(vocab: Vocabulary, rows: int, max_characters: int) -> np.ndarray:
    """[rows, max_characters] int32: the character ids of every token id, for the CharCNN.

    A piece is BOW, its UTF-8 bytes (each + 1; SentencePiece's word-start mark '▁' as a space,
    one byte instead of three), EOW, then CHAR_PAD. EOS and UNK get one marker character between
    BOW and EOW, sentinels their text ("<extra_id_0>"); PAD and the unused rows above the
    vocabulary are all CHAR_PAD.

    Example: the piece '▁the' (id 4 in the embedded vocabulary), max_characters 8 ->
        [BOW, 33, 117, 105, 102, EOW, 0, 0]      (' ' = 32, 't' = 116, 'h' = 104, 'e' = 101)
    """
    if rows < vocab.vocab_size:
        raise ValueError(f"The character table needs a row for each of the vocabulary's "
                         f"{vocab.vocab_size} ids, got rows={rows}. Use vocab.padded_vocab_size.")
    if max_characters < 3:
        raise ValueError(f"max_characters={max_characters} leaves no room for a character "
                         f"between the two markers; use at least 3.")
    pieces = spm.SentencePieceProcessor(model_file=str(vocab.model_path))
    table = np.zeros((rows, max_characters), np.int32)
    specials = {EOS_ID: [EOS_CHAR], UNK_ID: [UNK_CHAR]}
    for token in range(vocab.vocab_size):
        if token == PAD_ID:
            continue
        if token in specials:
            chars = specials[token]
        elif token >= vocab.num_pieces:  # a sentinel
            chars = [b + 1 for b in f"<extra_id_{vocab.vocab_size - 1 - token}>".encode()]
        elif pieces.is_control(token) or pieces.is_unknown(token):
            chars = [SPECIAL_CHAR]
        else:
            chars = [b + 1 for b in pieces.id_to_piece(token).replace("\u2581", " ").encode()]
        chars = [BOW, *chars[: max_characters - 2], EOW]
        table[token, : len(chars)] = chars
    return table


class Highway(nn.Module):
    """y = g * x + (1 - g) * relu(W x), gate g = sigmoid(W_g x) (Srivastava et al. 2015).

    The gate's bias starts at 1, so each layer starts close to passing its input through.
    """

    dtype: str = "float32"

    @nn.compact
    def __call__(self, x: Array) -> Array:  # [..., n] -> [..., n]
        n = x.shape[-1]
        transform = nn.relu(nn.Dense(n, dtype=self.dtype, name="transform")(x))
        gate = nn.sigmoid(nn.Dense(n, dtype=self.dtype, bias_init=nn.initializers.ones,
                                   name="gate")(x))
        return gate * x + (1.0 - gate) * transform


class CharCNN(nn.Module):
    """Character ids of each token -> a token vector, independently of the other tokens.

    [b, l, c] char ids -> embed [b·l, c, char_embed_dim] -> one convolution per filter width, max
    over the characters, relu -> concatenated [b·l, num_filters] -> highway layers -> projection
    to [b, l, d_model].
    """

    config: ElmoConfig

    @nn.compact
    def __call__(self, char_ids: Array) -> Array:
        cfg = self.config
        b, l, c = char_ids.shape
        x = nn.Embed(CHAR_VOCAB_SIZE, cfg.char_embed_dim, dtype=cfg.dtype, name="char_embed")(
            char_ids.reshape(b * l, c))
        if c < max(width for width, _ in cfg.filters):
            raise ValueError(f"{c} characters per token are fewer than the widest filter "
                             f"({max(w for w, _ in cfg.filters)}); raise max_characters.")
        pooled = [jnp.max(nn.Conv(n, (width,), padding="VALID", dtype=cfg.dtype,
                                  name=f"conv_{width}")(x), axis=1)
                  for width, n in cfg.filters]
        h = nn.relu(jnp.concatenate(pooled, axis=-1))  # [b·l, num_filters]
        for i in range(cfg.num_highway):
            h = Highway(cfg.dtype, name=f"highway_{i}")(h)
        return nn.Dense(cfg.d_model, dtype=cfg.dtype, name="projection")(h).reshape(b, l, -1)


def segment_starts(segment_ids: Array, reverse: bool = False) -> Array:
    """[b, l] bool: where a packed example starts in the reading direction (reversed: where it ends).

    Example: segment_ids [1, 1, 2, 2, 2, 0] -> starts [T, F, T, F, F, T], ends [F, T, F, F, T, T].
    """
    if reverse:
        return segment_starts(segment_ids[:, ::-1])[:, ::-1]
    previous = jnp.pad(segment_ids[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
    return segment_ids != previous


class _ResettingLSTMCell(nn.RNNCellBase):
    """An OptimizedLSTMCell whose state is zeroed before a step flagged as an example's start.

    The flag rides in the input's last feature (`nn.RNN` scans one array), so the input is
    [b, d + 1]: the token's features, then 1.0 where the state must reset.
    """

    features: int
    dtype: str = "float32"

    @nn.compact
    def __call__(self, carry: tuple[Array, Array], inputs: Array
                 ) -> tuple[tuple[Array, Array], Array]:
        x, reset = inputs[..., :-1], inputs[..., -1:]
        carry = jax.tree.map(lambda state: state * (1.0 - reset), carry)
        return nn.OptimizedLSTMCell(self.features, dtype=self.dtype, name="lstm")(carry, x)

    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> tuple[Array, Array]:
        zeros = jnp.zeros((*input_shape[:-1], self.features), jnp.float32)
        return zeros, zeros

    @property
    def num_feature_axes(self) -> int:
        return 1


class DirectionalLSTM(nn.Module):
    """One direction's stack of LSTM layers, reset at every packed example's start.

    x [b, l, d], segment_ids [b, l] -> a list of num_layers outputs [b, l, d], in the input's order.
    Layers after the first add their input (ELMo's residual connection).
    """

    config: ElmoConfig
    reverse: bool

    @nn.compact
    def __call__(self, x: Array, segment_ids: Array, deterministic: bool = True) -> list[Array]:
        cfg = self.config
        reset = segment_starts(segment_ids, self.reverse).astype(x.dtype)[..., None]
        outputs = []
        for i in range(cfg.num_layers):
            rnn = nn.RNN(_ResettingLSTMCell(cfg.d_model, cfg.dtype, name=f"layer_{i}"),
                         reverse=self.reverse, keep_order=True)
            h = rnn(jnp.concatenate([x, reset], axis=-1)).astype(x.dtype)
            h = nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
            x = h if i == 0 else h + x
            outputs.append(x)
        return outputs


class ScalarMix(nn.Module):
    """gamma * Σ_j softmax(s)_j · layer_j: ELMo's task-specific combination of the layers.

    layers [L, ..., d] -> [..., d]. The scalars s start at 0 (an equal mix) and gamma at 1.
    """

    num_layers: int

    def setup(self) -> None:
        self.scalars = self.param("scalars", nn.initializers.zeros, (self.num_layers,))
        self.gamma = self.param("gamma", nn.initializers.ones, ())

    def weights(self) -> Array:
        """[L] mixing weights: non-negative, summing to one."""
        return jax.nn.softmax(self.scalars)

    def __call__(self, layers: Array) -> Array:
        if layers.shape[0] != self.num_layers:
            raise ValueError(f"ScalarMix was built for {self.num_layers} layers, got "
                             f"{layers.shape[0]} (the leading axis of {layers.shape}).")
        return self.gamma * jnp.tensordot(self.weights(), layers, axes=1)


class Elmo(nn.Module):
    """The biLM: `__call__` gives both directions' LM logits, `layers` the contextual features.

    Inputs are char_ids [b, l, max_characters] (`character_table[tokens]`) and segment_ids [b, l]
    (0 = padding, 1, 2, ... = packed examples, as the feature converters make them).
    """

    config: ElmoConfig

    def setup(self) -> None:
        cfg = self.config
        if cfg.vocab_size is None:
            raise ValueError("ElmoConfig.vocab_size is None: set it, or let the trainer take it "
                             "from the vocabulary.")
        self.char_cnn = CharCNN(cfg)
        self.forward_lstm = DirectionalLSTM(cfg, reverse=False)
        self.backward_lstm = DirectionalLSTM(cfg, reverse=True)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.softmax = nn.Dense(cfg.vocab_size, dtype=cfg.dtype, name="softmax")  # both directions

    def _encode(self, char_ids: Array, segment_ids: Array, deterministic: bool
                ) -> tuple[Array, list[Array], list[Array]]:
        x = self.char_cnn(char_ids)
        x = self.dropout(x, deterministic=deterministic)
        return (x, self.forward_lstm(x, segment_ids, deterministic),
                self.backward_lstm(x, segment_ids, deterministic))

    def layers(self, char_ids: Array, segment_ids: Array, deterministic: bool = True) -> Array:
        """[num_layers + 1, b, l, 2 d]: the token layer [x; x], then [forward_j; backward_j]."""
        x, forward, backward = self._encode(char_ids, segment_ids, deterministic)
        return jnp.stack([jnp.concatenate([x, x], -1)]
                         + [jnp.concatenate(pair, -1) for pair in zip(forward, backward)])

    def __call__(self, char_ids: Array, segment_ids: Array,
                 deterministic: bool = True) -> dict[str, Array]:
        """-> float32 [b, l, vocab] logits: "forward_logits" at t predict token t + 1,
        "backward_logits" at t predict token t - 1 (see `bidirectional_lm_targets`)."""
        _, forward, backward = self._encode(char_ids, segment_ids, deterministic)
        return {"forward_logits": self.softmax(forward[-1]).astype(jnp.float32),
                "backward_logits": self.softmax(backward[-1]).astype(jnp.float32)}


def bidirectional_lm_targets(tokens: Array, segment_ids: Array) -> dict[str, Array]:
    """Targets and loss weights of both directions, never crossing a packed example's boundary.

    tokens, segment_ids [b, l] -> [b, l] each: forward_targets[t] = tokens[t + 1], weighted 1 where
    t + 1 is in t's example; backward_targets[t] = tokens[t - 1], likewise.

    Example: tokens [5, 6, 1, 7, 1, 0], segment_ids [1, 1, 1, 2, 2, 0] ->
        forward_targets  [6, 1, 7, 1, 0, 0]   forward_weights  [1, 1, 0, 1, 0, 0]
        backward_targets [0, 5, 6, 1, 7, 1]   backward_weights [0, 1, 1, 0, 1, 0]
    """
    def shifted(x: Array, step: int) -> Array:  # x[t + step], 0 outside the row
        pad = ((0, 0), (0, step)) if step > 0 else ((0, 0), (-step, 0))
        padded = jnp.pad(x, pad)
        return padded[:, step:] if step > 0 else padded[:, : x.shape[1]]

    out = {}
    for name, step in (("forward", 1), ("backward", -1)):
        same = (shifted(segment_ids, step) == segment_ids) & (segment_ids > 0)
        out[f"{name}_targets"] = shifted(tokens, step)
        out[f"{name}_weights"] = same.astype(jnp.int32)
    return out
