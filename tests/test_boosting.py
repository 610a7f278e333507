"""The LightGBM parameters the lightgbm head and the string map share."""

from cs_features.boosting import lightgbm_params
from cs_features.heads.gbm import LightGBMHead
from cs_features.strings.model import StringMapModel


def test_both_estimators_train_reproducibly_with_their_own_settings():
    head = LightGBMHead(num_leaves=15, bagging_fraction=1.0, balanced=True, seed=3)
    params = head._params("binary", "average_precision")
    assert params["num_leaves"] == 15 and params["seed"] == 3 and params["is_unbalance"] is True
    assert params["bagging_freq"] == 0  # no bagging asked for, none run
    assert head._params("regression", "l2")["is_unbalance"] is False  # class weights mean nothing to a regressor
    string_map = StringMapModel(bagging_fraction=0.5, num_threads=2)
    params = string_map._params()
    assert (params["objective"], params["bagging_freq"], params["num_threads"]) == ("binary", 1, 2)
    for params in (head._params("binary", "auc"), string_map._params()):
        assert params["deterministic"] is True and params["force_row_wise"] is True and params["verbosity"] == -1


def test_extra_parameters_are_added_last_and_win():
    params = lightgbm_params(StringMapModel(), "binary", "auc", verbosity=1, max_bin=63)
    assert params["verbosity"] == 1 and params["max_bin"] == 63
