"""Model selection: the kept epoch on crafted histories, stopping, and the rule as recorded."""

from __future__ import annotations

import pytest

from tinyhar.errors import TinyharError
from tinyhar.model.selection import SelectionRule, best_epoch, should_stop

# val macro-F1 per epoch: a lucky epoch 2 before the minimum, the real best at 6, a tie at 8
F1 = [0.80, 0.97, 0.85, 0.88, 0.90, 0.95, 0.91, 0.95, 0.93, 0.92]
LOSS = [0.50, 0.20, 0.15, 0.30, 0.40, 0.25, 0.28, 0.35, 0.22, 0.30]


def test_best_after_the_minimum_number_of_epochs():
    assert best_epoch(F1, SelectionRule("val_macro_f1", min_epochs=1)) == 2
    assert best_epoch(F1, SelectionRule("val_macro_f1", min_epochs=3)) == 6  # tie 6/8: earliest
    assert best_epoch(F1, SelectionRule("val_accuracy", min_epochs=7)) == 8
    assert best_epoch(LOSS, SelectionRule("val_loss", min_epochs=1)) == 3  # lowest for a loss
    assert best_epoch(LOSS, SelectionRule("val_loss", min_epochs=4)) == 9


def test_short_training_keeps_its_best_so_far():
    assert best_epoch(F1[:3], SelectionRule(min_epochs=10)) == 2
    with pytest.raises(TinyharError):
        best_epoch([], SelectionRule())


def test_nan_never_wins():
    assert best_epoch([0.5, float("nan"), 0.6], SelectionRule(min_epochs=1)) == 3
    assert best_epoch([0.5, float("nan")], SelectionRule("val_loss", min_epochs=1)) == 1


def test_patience_counts_from_the_kept_epoch_once_the_minimum_has_run():
    rule = SelectionRule("val_macro_f1", min_epochs=3, patience=3)
    assert not should_stop(F1[:8], rule)  # best 6, two epochs since
    assert should_stop(F1[:9], rule)  # best 6, three since
    assert not should_stop(F1[:2], SelectionRule(min_epochs=3, patience=1))  # before the minimum


def test_rule_is_described_and_checked():
    rule = SelectionRule("val_macro_f1", 10, 10)
    j = rule.to_json()
    assert j["metric"] == "val_macro_f1" and j["min_epochs"] == 10 and j["patience"] == 10
    assert "highest val_macro_f1 from epoch 10" in j["rule"]
    assert "lowest val_loss" in SelectionRule("val_loss").describe()
    with pytest.raises(TinyharError, match="val_f2"):
        SelectionRule("val_f2")
    with pytest.raises(TinyharError, match="--min-epochs"):
        SelectionRule(min_epochs=0)
