import json

import numpy as np
import pytest

from codesign.core.errors import CodesignError
from codesign.core.values import Layer, Network
from codesign.predictors.evaluation import LatencySamples, evaluate_latency, family_split, random_split
from codesign.predictors.features import (
    NETWORK_FEATURES_VERSION,
    FeatureSchema,
    LatencyFeaturizer,
    network_features,
)
from codesign.predictors.latency import BitOpsBaseline, LatencyPredictor


def small_predictor(**kwargs) -> LatencyPredictor:
    return LatencyPredictor(n_estimators=150, **kwargs)


def test_beats_bitops_baseline_on_held_out_family(overlay_samples):
    train, test = family_split(overlay_samples.families, ["resnet_mnist"])
    report = evaluate_latency(overlay_samples, train, test, small_predictor())
    assert report.model.mape < 0.1
    assert report.model.kendall > 0.9
    assert report.model.mape < report.baseline.mape / 3
    assert report.model.kendall > report.baseline.kendall + 0.3


def test_network_mode_beats_baseline_on_random_split(overlay_samples):
    whole = LatencySamples(overlay_samples.networks, overlay_samples.accels, overlay_samples.latency_ms, overlay_samples.families)
    train, test = random_split(len(whole), 0.25, np.random.default_rng(0))
    report = evaluate_latency(whole, train, test, small_predictor())
    assert report.model.spearman > report.baseline.spearman
    assert report.model.mape < report.baseline.mape


def test_bitops_baseline_recovers_a_linear_law():
    layers = [Layer(f"fc{i}", "linear", 16 * (i + 1), 10, weight_bits=4 + 4 * (i % 2)) for i in range(6)]
    nets = [Network(f"n{i}", (layer,)) for i, layer in enumerate(layers)]
    latency = [0.5 + 2e-3 * n.macs + 1e-4 * n.bit_ops for n in nets]
    baseline = BitOpsBaseline().fit(nets, latency)
    np.testing.assert_allclose(baseline.predict(nets), latency, rtol=1e-6)


@pytest.mark.parametrize("per_layer", [True, False])
def test_save_load_round_trip_predicts_identically(overlay_samples, tmp_path, per_layer):
    s = overlay_samples
    predictor = small_predictor().fit(s.networks, s.accels, s.latency_ms, per_layer_ms=s.per_layer_ms if per_layer else None)
    before = predictor.predict(s.networks[:20], s.accels[:20])
    predictor.save(tmp_path / "lat")
    loaded = LatencyPredictor.load(tmp_path / "lat")
    np.testing.assert_array_equal(loaded.predict(s.networks[:20], s.accels[:20]), before)
    assert loaded.schema_ == predictor.schema_ and loaded.mode_ == predictor.mode_


def test_load_refuses_mismatched_schema_and_version(overlay_samples, tmp_path):
    s = overlay_samples
    small_predictor(residual="none").fit(s.networks, s.accels, s.latency_ms).save(tmp_path / "lat")
    other = FeatureSchema("latency", 99, ("macs",))
    with pytest.raises(CodesignError, match=rf"saved latency v{NETWORK_FEATURES_VERSION} .* current latency v99"):
        LatencyPredictor.load(tmp_path / "lat", schema=other)
    meta_path = tmp_path / "lat" / "predictor.json"
    meta = json.loads(meta_path.read_text())
    meta["schema"]["names"] = meta["schema"]["names"][:-1]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CodesignError, match="feature schema mismatch"):
        LatencyPredictor.load(tmp_path / "lat")
    meta["format_version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CodesignError, match="format version 0"):
        LatencyPredictor.load(tmp_path / "lat")


def test_prior_must_be_used_consistently(overlay_samples):
    s = overlay_samples
    prior = np.asarray(s.latency_ms) * 1.3
    predictor = small_predictor(residual="none").fit(s.networks, s.accels, s.latency_ms, prior_ms=prior)
    # a calibrated prior that is exactly proportional is recovered exactly
    np.testing.assert_allclose(predictor.predict(s.networks, s.accels, prior_ms=prior), s.latency_ms, rtol=1e-6)
    with pytest.raises(CodesignError, match="prior_ms"):
        predictor.predict(s.networks, s.accels)


def test_bad_targets_name_the_row(overlay_samples):
    s = overlay_samples
    latency = list(s.latency_ms)
    latency[3] = -1.0
    with pytest.raises(CodesignError, match="latency #3"):
        small_predictor().fit(s.networks, s.accels, latency)


def test_network_features_count_macs_by_bits():
    conv4 = Layer("c4", "conv", 8, 8, in_h=8, in_w=8, kernel=3, padding=1, weight_bits=4, act_bits=4)
    conv8 = Layer("c8", "conv", 8, 8, in_h=8, in_w=8, kernel=1, weight_bits=8, act_bits=8)
    f = network_features(Network("n", (conv4, conv8), input_shape=(8, 8, 8)))
    assert f["macs_b4"] == conv4.macs and f["macs_b8"] == conv8.macs
    assert f["macs_k3"] == conv4.macs and f["macs_k1"] == conv8.macs
    assert f["macs"] == conv4.macs + conv8.macs and f["n_conv"] == 2


def test_featurizer_schema_follows_configs(overlay_samples):
    featurizer = LatencyFeaturizer.for_configs(overlay_samples.accels)
    assert {"accel.tm", "accel.tn", "accel.tr", "accel.tc", "device=xczu3eg"} <= set(featurizer.schema.names)
    X = featurizer.transform(overlay_samples.networks[:3], overlay_samples.accels[:3])
    assert X.shape == (3, len(featurizer.schema))


def test_additive_model_recovers_per_operation_costs():
    counts = np.array([[1, 0, 2], [0, 3, 1], [2, 2, 0], [1, 1, 1], [0, 0, 4]], dtype=float)
    costs = np.array([0.5, 1.25, 0.0])
    latency = 1.1 + counts @ costs
    from codesign.predictors.latency import AdditiveLatencyModel

    model = AdditiveLatencyModel().fit(counts, latency, names=["conv1", "conv3", "skip"])
    learned = model.costs_ms()
    assert learned["conv1"] == pytest.approx(0.5) and learned["conv3"] == pytest.approx(1.25)
    assert learned["skip"] == pytest.approx(0.0, abs=1e-9) and learned["intercept"] == pytest.approx(1.1)
    with pytest.raises(CodesignError, match="2 names for 3"):
        AdditiveLatencyModel().fit(counts, latency, names=["a", "b"])


def test_nb201_fpga_latency_from_ten_cells(nb201_table):
    from codesign.predictors.cells import CELL_FEATURE_NAMES, cell_features
    from codesign.predictors.latency import AdditiveLatencyModel
    from codesign.predictors.metrics import spearman

    cols = [i for i, n in enumerate(CELL_FEATURE_NAMES) if n.startswith("count=")]
    rows = np.random.default_rng(1).permutation(len(nb201_table))[:2000]
    counts = cell_features(list(nb201_table.arch_str.iloc[rows]))[:, cols]
    latency = nb201_table.lat_ms_fpga.to_numpy()[rows]
    model = AdditiveLatencyModel().fit(counts[:10], latency[:10])
    assert spearman(latency[10:], model.predict(counts[10:])) > 0.99


def test_per_layer_mode_learns_a_pipelined_template():
    from codesign.predictors.evaluation import random_pairs, sample_hardware
    from search_spaces.registry import make_space
    from simulators.dataflow import DataflowModel
    from simulators.devices import default_catalog
    from simulators.folding import DataflowSpace

    spaces = [make_space("mbconv_digits"), make_space("resnet_digits")]
    accel_spaces = [DataflowSpace.for_device(default_catalog().get("xczu9eg"))]
    networks, accels, families = random_pairs(spaces, accel_spaces, 40, np.random.default_rng(0))
    samples = sample_hardware(DataflowModel(), networks, accels, families)
    assert samples.per_layer_ms is not None
    train, test = family_split(samples.families, ["resnet_digits"])
    report = evaluate_latency(samples, train, test, small_predictor())
    assert report.model.mape < 0.05 < report.baseline.mape


def test_trees_add_to_the_untrained_hint_on_a_held_out_family(overlay_samples):
    """The per-layer features include the overlay's own cycle formula; the learned predictor must do better
    than that hint summed and calibrated (the same predictor without its trees)."""
    train, test = family_split(overlay_samples.families, ["resnet_mnist"])
    learned = evaluate_latency(overlay_samples, train, test, small_predictor()).model
    hint = evaluate_latency(overlay_samples, train, test, small_predictor(residual="none")).model
    assert learned.mape < hint.mape / 2
    assert learned.within_10 > hint.within_10
