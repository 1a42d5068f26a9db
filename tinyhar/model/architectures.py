"""The paper's CNN-LSTM-self-attention model and its size-constrained `tiny` variant (tf_keras)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from tinyhar.errors import TinyharError
from tinyhar.lite.keras_env import keras, tf
from tinyhar.model.config import ARCHS

LEARNING_RATE = 0.001
DROPOUT = 0.2
PAPER_SIZE = {"filters": 64, "kernel": 3, "units": 64, "dense": 64}
# `tinyhar train --arch tiny` with no budget option (issue 20's choice, docs/model.md): conv of 16
# filters strided 2, pooled 2 (T = 25), batch norm folded, attention pooling, the window's
# channel means beside the head; about 0.5 M instructions per inference on the Nano 33 BLE.
TINY_SIZE = {
    "width": 20,
    "filters": 16,
    "stride": 2,
    "pool": 2,
    "norm": "bn_relu",
    "attention": "pool",
    "stats": "mean",
    "means": "avgpool",
}
TINY_WIDTHS = (8, 12, 16, 24, 32, 48, 64, 96)  # the ladder budget sizing climbs

L = keras.layers


def _self_attention(x, name: str):
    """Dot-product self-attention over time (the paper's "Attention layer"); parameter-free.

    Converts to BATCH_MATMUL + SOFTMAX, which TFLM runs in int8.
    """
    return L.Attention(name=name)([x, x])


def build_paper(input_shape, n_classes, batch_size=None, filters=64, kernel=3, units=64, dense=64):
    """The paper's model as read in docs/model.md: conv, two LSTM+attention, three branches."""
    inp = L.Input(shape=tuple(input_shape), batch_size=batch_size, name="window")
    x = L.Conv1D(filters, kernel, padding="same", activation="relu", name="conv")(inp)
    x = L.BatchNormalization(name="conv_bn")(x)
    conv = L.Dropout(DROPOUT, name="conv_dropout")(x)

    s1 = L.LSTM(units, return_sequences=True, name="lstm_1")(conv)
    a1 = _self_attention(s1, "attention_1")
    s2 = L.LSTM(units, return_sequences=True, name="lstm_2")(a1)
    a2 = _self_attention(s2, "attention_2")
    temporal = L.GlobalAveragePooling1D(name="temporal_pool")(a2)

    branches = [temporal]
    for i, src in enumerate((conv, a1), start=1):
        b = L.GlobalAveragePooling1D(name=f"branch_{i}_pool")(src)
        b = L.Dense(dense, activation="relu", name=f"branch_{i}_dense")(b)
        b = L.BatchNormalization(name=f"branch_{i}_bn")(b)
        branches.append(L.Dropout(DROPOUT, name=f"branch_{i}_dropout")(b))

    x = L.Concatenate(name="concat")(branches)
    x = L.Dense(dense, activation="relu", name="head_dense")(x)
    x = L.BatchNormalization(name="head_bn")(x)
    x = L.Dropout(DROPOUT, name="head_dropout")(x)
    out = L.Dense(n_classes, activation="softmax", name="class")(x)
    return keras.Model(inp, out, name="paper")


NORMS = ("relu_bn", "bn_relu", "none")  # tiny's batch norms: after the ReLU, before it, none
ATTENTIONS = ("dot", "pool", "none")
STATS = ("none", "mean", "mad", "var")
MEANS = ("mean", "avgpool")  # how tiny averages over time: MEAN, or AVERAGE_POOL_2D (CMSIS-NN)


def _attention_kind(attention: bool | str) -> str:
    """build_tiny's `attention`: True/False (as `tinyhar search` passes it) or one of ATTENTIONS."""
    kind = attention if isinstance(attention, str) else ("dot" if attention else "none")
    if kind not in ATTENTIONS:
        raise TinyharError(f"unknown attention {attention!r}: use one of {', '.join(ATTENTIONS)}")
    return kind


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TinyharError(f"unknown {what} {value!r}: use one of {', '.join(choices)}")


def _layer_norm_relu(layer, x, norm: str, name: str):
    """`layer` (built without activation), then batch norm and ReLU ("bn_relu": batch norm right
    after the layer, where the converter folds it into its weights) or ReLU alone ("none")."""
    x = layer(x)
    if norm == "bn_relu":
        x = L.BatchNormalization(name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def _attention_pool(s, name: str):
    """Attention pooling, O(T): a Dense(1) score per timestep, softmax over time, the weighted sum
    of the timesteps (FULLY_CONNECTED, SOFTMAX over T, BATCH_MATMUL of 1 x T by T x w)."""
    score = L.Dense(1, name=f"{name}_score")(s)  # (T, 1)
    score = L.Reshape((1, int(s.shape[1])), name=f"{name}_scores")(score)
    weight = L.Softmax(axis=-1, name=f"{name}_softmax")(score)  # (1, T)
    pooled = L.Dot(axes=(2, 1), name=f"{name}_sum")([weight, s])  # (1, w)
    return L.Flatten(name=f"{name}_flat")(pooled)


def _time_mean(x, means: str, name: str, keepdims: bool = False):
    """The mean over time of (T, C): GlobalAveragePooling1D (MEAN) for "mean", or
    AveragePooling1D over all T (AVERAGE_POOL_2D, which CMSIS-NN runs) for "avgpool"."""
    if means == "mean":
        return L.GlobalAveragePooling1D(keepdims=keepdims, name=name)(x)
    y = L.AveragePooling1D(int(x.shape[1]), name=name)(x)  # (1, C)
    return y if keepdims else L.Flatten(name=f"{name}_flat")(y)


def _window_stats(inp, stats: str, means: str):
    """Per-channel statistics of the normalised input window: the mean, and the spread, mean
    |x - mean| for "mad" (SUB, ABS) or mean (x - mean)^2 for "var" (SQUARED_DIFFERENCE); the
    means as `means` says. TFOpLambda layers: they save, load and clone as Keras layers."""
    mean = _time_mean(inp, means, "stats_mean", keepdims=True)  # (1, C)
    feats = [L.Flatten(name="stats_mean_flat")(mean)]
    if stats == "mad":
        dev = tf.math.abs(L.Subtract(name="stats_dev")([inp, mean]))
        feats.append(_time_mean(dev, means, "stats_mad"))
    elif stats == "var":
        feats.append(_time_mean(tf.math.squared_difference(inp, mean), means, "stats_var"))
    return feats[0] if len(feats) == 1 else L.Concatenate(name="stats")(feats)


def build_tiny(
    input_shape,
    n_classes,
    batch_size=None,
    width=16,
    kernel=5,
    pool=2,
    attention=True,
    branch=True,
    norm="relu_bn",
    stride=1,
    stats="none",
    dropout=DROPOUT,
    means="mean",
    filters=None,
):
    """Same family sized by `width`: conv, pool, one LSTM + attention, one dense branch (the
    attention and the branch can be left out, as `tinyhar search` tries).

    `norm` places the batch norms ("relu_bn", today's: ReLU then batch norm, left as MUL/ADD;
    "bn_relu": batch norm folded into the conv and dense weights; "none"); `stride` strides the
    conv; `pool` (1 = none) max-pools before the LSTM; `attention` is "dot" (True: T x T
    self-attention, then the mean over time), "pool" (attention pooling, O(T)) or "none" (False:
    the mean over time); `stats` adds per-window statistics of the input to the head; `dropout`
    is the rate of every dropout layer; `means` ("mean" or "avgpool") picks the op of every
    mean over time; `filters` sets the conv's filters apart from `width` (the LSTM and dense
    units).
    """
    kind = _attention_kind(attention)
    _check_choice("norm", norm, NORMS)
    _check_choice("stats", stats, STATS)
    _check_choice("means", means, MEANS)
    if not (1 <= int(pool) and 1 <= int(stride)):
        raise TinyharError(f"pool {pool} and stride {stride} must be at least 1")
    if min(int(width), int(kernel), int(filters or width)) < 1 or not 0 <= dropout < 1:
        raise TinyharError(
            f"width {width}, kernel {kernel} and filters {filters} must be at "
            f"least 1 and dropout {dropout} from 0 to below 1"
        )
    filters = int(filters or width)
    inp = L.Input(shape=tuple(input_shape), batch_size=batch_size, name="window")
    if norm == "relu_bn":  # today's layers and names: `tinyhar search` and saved runs build it
        x = L.Conv1D(filters, kernel, stride, padding="same", activation="relu", name="conv")(inp)
        x = L.BatchNormalization(name="conv_bn")(x)
    else:
        conv_layer = L.Conv1D(filters, kernel, stride, padding="same", name="conv")
        x = _layer_norm_relu(conv_layer, inp, norm, "conv")
    x = L.Dropout(dropout, name="conv_dropout")(x)
    conv = L.MaxPooling1D(pool, name="conv_pool")(x) if pool > 1 else x  # shortens the sequence

    s = L.LSTM(width, return_sequences=True, name="lstm")(conv)
    if kind == "pool":
        temporal = _attention_pool(s, "attention")
    else:
        a = _self_attention(s, "attention") if kind == "dot" else s
        temporal = _time_mean(a, means, "temporal_pool")

    heads = [temporal]
    if branch:
        b = _time_mean(conv, means, "branch_pool")
        if norm == "relu_bn":
            b = L.Dense(width, activation="relu", name="branch_dense")(b)
            b = L.BatchNormalization(name="branch_bn")(b)
        else:
            b = _layer_norm_relu(L.Dense(width, name="branch_dense"), b, norm, "branch")
        heads.append(L.Dropout(dropout, name="branch_dropout")(b))
    if stats != "none":
        heads.append(_window_stats(inp, stats, means))
    x = heads[0] if len(heads) == 1 else L.Concatenate(name="concat")(heads)
    x = L.Dense(width, activation="relu", name="head_dense")(x)
    x = L.Dropout(dropout, name="head_dropout")(x)
    out = L.Dense(n_classes, activation="softmax", name="class")(x)
    return keras.Model(inp, out, name="tiny")


def parse_size(text: str) -> dict:
    """`--size`: build_tiny's options as key=value pairs, comma separated (numbers, true/false
    or words), e.g. "width=16,stride=2,pool=2"; an unknown key or a pair without "=" is one
    TinyharError line."""
    known = [p for p in inspect.signature(build_tiny).parameters if p not in _NOT_SIZE]
    size: dict = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise TinyharError(
                f"--size {item!r}: give key=value pairs, keys of {', '.join(known)}"
                ", e.g. width=16,stride=2,pool=2"
            )
        size[key] = _size_value(value)
    return size


_NOT_SIZE = ("input_shape", "n_classes", "batch_size")


def _size_value(text: str) -> int | float | bool | str:
    """An int, a float, true/false, or the word itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def build_model(
    arch: str,
    input_shape: tuple[int, int],
    n_classes: int,
    batch_size: int | None = None,
    **size,
) -> keras.Model:
    """Build and compile `arch` ("paper" or "tiny"); `size` overrides its width parameters."""
    builders: dict[str, tuple[Callable[..., keras.Model], Mapping[str, Any]]] = {
        "paper": (build_paper, PAPER_SIZE),
        "tiny": (build_tiny, TINY_SIZE),
    }
    if arch not in builders:
        raise TinyharError(f"unknown architecture {arch!r}: use one of {', '.join(ARCHS)}")
    builder, defaults = builders[arch]
    model = builder(tuple(input_shape), int(n_classes), batch_size, **{**defaults, **size})
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
