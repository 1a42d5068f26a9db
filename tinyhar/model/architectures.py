"""The paper's CNN-LSTM-self-attention model and its size-constrained `tiny` variant (tf_keras)."""

from __future__ import annotations

from tinyhar.errors import TinyharError
from tinyhar.lite.keras_env import keras

ARCHS = ("tiny", "paper")
LEARNING_RATE = 0.001
DROPOUT = 0.2
PAPER_SIZE = {"filters": 64, "kernel": 3, "units": 64, "dense": 64}
TINY_SIZE = {"width": 16}
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


def build_tiny(
    input_shape, n_classes, batch_size=None, width=16, kernel=5, pool=2, attention=True, branch=True
):
    """Same family sized by `width`: conv, pool, one LSTM + attention, one dense branch (the
    attention and the branch can be left out, as `tinyhar search` tries)."""
    inp = L.Input(shape=tuple(input_shape), batch_size=batch_size, name="window")
    x = L.Conv1D(width, kernel, padding="same", activation="relu", name="conv")(inp)
    x = L.BatchNormalization(name="conv_bn")(x)
    x = L.Dropout(DROPOUT, name="conv_dropout")(x)
    conv = L.MaxPooling1D(pool, name="conv_pool")(x)  # halves the sequence: LSTM time and arena

    s = L.LSTM(width, return_sequences=True, name="lstm")(conv)
    a = _self_attention(s, "attention") if attention else s
    temporal = L.GlobalAveragePooling1D(name="temporal_pool")(a)

    x = temporal
    if branch:
        b = L.GlobalAveragePooling1D(name="branch_pool")(conv)
        b = L.Dense(width, activation="relu", name="branch_dense")(b)
        b = L.BatchNormalization(name="branch_bn")(b)
        b = L.Dropout(DROPOUT, name="branch_dropout")(b)
        x = L.Concatenate(name="concat")([temporal, b])
    x = L.Dense(width, activation="relu", name="head_dense")(x)
    x = L.Dropout(DROPOUT, name="head_dropout")(x)
    out = L.Dense(n_classes, activation="softmax", name="class")(x)
    return keras.Model(inp, out, name="tiny")


def build_model(
    arch: str,
    input_shape: tuple[int, int],
    n_classes: int,
    batch_size: int | None = None,
    **size,
) -> keras.Model:
    """Build and compile `arch` ("paper" or "tiny"); `size` overrides its width parameters."""
    builders = {"paper": (build_paper, PAPER_SIZE), "tiny": (build_tiny, TINY_SIZE)}
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
