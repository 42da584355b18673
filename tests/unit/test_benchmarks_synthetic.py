import numpy as np
import pytest

from benchmarks.synthetic import extend_rows, label


@pytest.fixture
def real():
    return np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)


def test_the_real_rows_come_first_and_unchanged(real):
    catalogue = extend_rows(real, 500, seed=1)
    assert catalogue.shape == (500, 8) and catalogue.dtype == np.float32
    np.testing.assert_array_equal(catalogue[:50], real)


def test_synthetic_rows_are_perturbed_copies_of_real_rows(real):
    catalogue = extend_rows(real, 150, seed=1, noise=0.1)
    copies = catalogue[50:]
    sources = real[np.arange(100) % 50]
    assert not np.array_equal(copies, sources)
    # Noise of 0.1 x each dimension's spread: small next to the spread of the real rows.
    assert np.abs(copies - sources).mean() < 0.2 * real.std(axis=0).mean()


def test_same_seed_same_catalogue_other_seed_other_noise(real):
    np.testing.assert_array_equal(extend_rows(real, 200, seed=3), extend_rows(real, 200, seed=3))
    assert not np.array_equal(extend_rows(real, 200, seed=3), extend_rows(real, 200, seed=4))


def test_index_rows_stay_unit_length(real):
    unit = real / np.linalg.norm(real, axis=1, keepdims=True)
    catalogue = extend_rows(unit, 300, seed=2, unit_rows=True)
    np.testing.assert_allclose(np.linalg.norm(catalogue, axis=1), 1.0, rtol=1e-5)


def test_one_value_per_item_extends_too(real):
    bias = real[:, 0]
    extended = extend_rows(bias, 120, seed=5)
    assert extended.shape == (120,)
    np.testing.assert_array_equal(extended[:50], bias)


def test_a_small_catalogue_is_a_prefix_of_the_real_one(real):
    np.testing.assert_array_equal(extend_rows(real, 10, seed=0), real[:10])
    with pytest.raises(ValueError):
        extend_rows(real, 0, seed=0)


def test_labels_say_what_is_synthetic():
    assert str(label(3659, 3659)) == "3,659 items (real)"
    big = label(40_000, 3659)
    assert big.synthetic and big.synthetic_items == 36_341
    assert str(big) == "40,000 items (3,659 real + 36,341 synthetic)"
    assert not label(1000, 3659).synthetic
