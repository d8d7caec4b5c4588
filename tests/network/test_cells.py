"""Update rules of the synapse unit cells on hand-checkable cases."""

import math

import numpy as np
import pytest

from pyspice_rram.network.layer import STAT_PULSES, STAT_REFRESH, STAT_UPDATES
from pyspice_rram.network.pulses import depress, potentiate, pulses_for_state
from pyspice_rram.network.rng import seed_state
from pyspice_rram.network.update import pulse_counts
from pyspice_rram.network.cells import (BinaryPairCell, DeviceSpec, HybridCell,
                                        MultiDeviceCell, PairCell, make_cell)


def _layer(cell, n_in=3, n_out=2, w_max=1.0, W0=None, seed=0):
    W0 = np.zeros((n_in + 1, n_out)) if W0 is None else W0
    return cell.build_layer(W0, w_max, np.random.default_rng(seed))


def test_deterministic_pulse_counts():
    # N = 10 states, w_max = 1: one pulse = 0.1 of weight
    st = _layer(PairCell(DeviceSpec(n_states=10)))
    x = np.array([1.0, 0.5, 0.0])
    delta = np.array([-0.26, 0.14])
    st.update(x, delta, 1.0, seed_state(0))
    # dW = -x delta: row0 [0.26, -0.14] -> [3, -1] pulses; row1 [0.13, -0.07] -> [1, -1];
    # row2 (x = 0) nothing; bias row (x = 1) like row0.
    expected = np.array([[0.3, -0.1], [0.1, -0.1], [0.0, 0.0], [0.3, -0.1]], np.float32)
    np.testing.assert_allclose(st.Wa, expected, atol=1e-6)
    np.testing.assert_allclose(st.Wr, expected, atol=1e-6)
    assert st.stats[0, STAT_UPDATES] == 6
    assert st.stats[0, STAT_PULSES] == 3 + 1 + 1 + 1 + 3 + 1
    # positive updates potentiate G+, negative ones G- (unidirectional pair)
    assert st.S[0, 0, 0, 0] == pytest.approx(0.3) and st.S[0, 1, 0, 0] == 0.0
    assert st.S[0, 1, 0, 1] == pytest.approx(0.1) and st.S[0, 0, 0, 1] == 0.0


def test_below_half_pulse_no_update():
    st = _layer(PairCell(DeviceSpec(n_states=10)))
    st.update(np.array([1.0, 1.0, 1.0]), np.array([0.049, -0.049]), 1.0, seed_state(0))
    assert st.stats[0, STAT_UPDATES] == 0
    assert np.all(st.Wa == 0)


def test_saturation_without_refresh():
    st = _layer(PairCell(DeviceSpec(n_states=10, refresh=False)), n_in=1, n_out=1)
    st.update(np.array([1.0]), np.array([-1.5]), 1.0, seed_state(0))  # 15 pulses
    assert st.Wa[0, 0] == pytest.approx(1.0)  # clipped at G_max: W = w_max
    st.update(np.array([1.0]), np.array([-0.3]), 1.0, seed_state(0))
    assert st.Wa[0, 0] == pytest.approx(1.0)


def test_bidirectional_depresses_partner_when_saturated():
    st = _layer(PairCell(DeviceSpec(n_states=10, unidirectional=False)), n_in=1, n_out=1,
                W0=np.array([[0.0], [0.0]]))
    st.S[0, 0, 0, 0] = 1.0   # G+ saturated
    st.S[0, 1, 0, 0] = 0.5
    st.recompute()
    st.update(np.array([1.0]), np.array([-0.2]), 1.0, seed_state(0))  # +2 pulses
    assert st.S[0, 0, 0, 0] == 1.0
    assert st.S[0, 1, 0, 0] == pytest.approx(0.3)
    assert st.Wa[0, 0] == pytest.approx(0.7)


def test_refresh_resets_and_reprograms_difference():
    st = _layer(PairCell(DeviceSpec(n_states=10)), n_in=1, n_out=1)
    st.S[0, 0, 0, 0] = 0.9
    st.S[0, 1, 0, 0] = 0.3
    st.recompute()
    st.update(np.array([1.0]), np.array([-0.1]), 1.0, seed_state(0))  # +1 pulse -> G+ = 1
    assert st.stats[0, STAT_REFRESH] == 0
    assert st.Wa[0, 0] == pytest.approx(0.7)
    # G+ saturated, one more pulse: refresh (both reset, difference 1.0 - 0.3 = 0.7 into G+)
    # then the pulse lands: G+ = 0.8, G- = 0
    st.update(np.array([1.0]), np.array([-0.1]), 1.0, seed_state(0))
    assert st.stats[0, STAT_REFRESH] == 1
    assert st.S[0, 0, 0, 0] == pytest.approx(0.8)
    assert st.S[0, 1, 0, 0] == 0.0
    assert st.Wa[0, 0] == pytest.approx(0.8)


def test_nonlinear_pulse_response_matches_formula():
    beta, N = 3.0, 20
    rng = seed_state(0)
    for m in (1, 5, 20):
        s = potentiate(0.0, m, N, beta, 0.0, rng)
        assert s == pytest.approx((1 - math.exp(-beta * m / N)) / (1 - math.exp(-beta)))
    # m pulses at once == m single pulses
    s = 0.0
    for _ in range(7):
        s = potentiate(s, 1, N, beta, 0.0, rng)
    assert s == pytest.approx(potentiate(0.0, 7, N, beta, 0.0, rng), rel=1e-9)
    assert pulses_for_state(s, N, beta) == pytest.approx(7)
    # depression is the mirror image
    assert depress(1.0, 5, N, beta, 0.0, rng) == pytest.approx(1 - potentiate(0.0, 5, N, beta, 0.0, rng))


def test_cycle_to_cycle_noise_delta_over_mu():
    rng = seed_state(3)
    d = np.array([potentiate(0.5, 1, 100, 0.0, 0.34, rng) - 0.5 for _ in range(20000)])
    assert d.mean() == pytest.approx(0.01, rel=0.02)
    assert d.std() / d.mean() == pytest.approx(0.34, rel=0.05)
    # over 4 pulses the spread grows like sqrt(4)
    d4 = np.array([potentiate(0.2, 4, 100, 0.0, 0.34, rng) - 0.2 for _ in range(20000)])
    assert d4.std() == pytest.approx(0.34 * 0.01 * 2, rel=0.05)


def test_stochastic_rounding_is_unbiased():
    st = _layer(PairCell(DeviceSpec(n_states=1000), rounding="stochastic"), n_in=1,
                n_out=1, w_max=1000.0, W0=np.zeros((2, 1)))
    rng = seed_state(1)
    for _ in range(2000):   # each update is 0.3 of a pulse on both rows (x and bias)
        st.update(np.array([1.0]), np.array([-0.3]), 1.0, rng)
    # expected 600 pulses per synapse (+- binomial noise sqrt(2000 0.3 0.7) = 20)
    assert st.stats[0, STAT_PULSES] / 2 == pytest.approx(600, abs=60)
    assert st.S[0, 0, :, 0] * 1000 == pytest.approx(st.stats[0, STAT_PULSES] / 2, abs=60)


def test_pulse_coincidence_expected_count():
    st = _layer(PairCell(DeviceSpec(n_states=1000, refresh=False), rounding="coincidence",
                         bl=20), n_in=1, n_out=1, W0=np.zeros((2, 1)))
    rng = seed_state(2)
    # x = 0.5, delta = -0.004, lr = 1, step 0.001 -> E[n] = 2 per update (p_x 0.5, p_d 0.2)
    for _ in range(500):
        st.update(np.array([0.5]), np.array([-0.004]), 1.0, rng)
    pulses_x = st.S[0, 0, 0, 0] * 1000
    assert pulses_x == pytest.approx(1000, rel=0.1)
    assert st.S[0, 1, 0, 0] == 0.0


def test_hybrid_phase_switch_and_target_array():
    cell = HybridCell(DeviceSpec(n_states=10), k=10, switch_threshold=0.005)
    assert cell.next_phase(0, [0.1, 0.8]) == 0
    assert cell.next_phase(0, [0.1, 0.8, 0.85]) == 0
    assert cell.next_phase(0, [0.1, 0.8, 0.85, 0.854]) == 1
    assert cell.next_phase(1, [0.1, 0.8, 0.9]) == 1          # never switches back
    st = _layer(cell, n_in=1, n_out=1)
    st.update(np.array([1.0]), np.array([-0.1]), 1.0, seed_state(0))   # big: 1 pulse = 0.1
    assert st.Wa[0, 0] == pytest.approx(0.1)
    assert st.stats[:, STAT_UPDATES].tolist() == [2, 0]
    st.set_active(1)                                                # fine-tuning phase
    st.update(np.array([1.0]), np.array([-0.03]), 1.0, seed_state(0))  # small: 3 pulses of 0.01
    assert st.Wa[0, 0] == pytest.approx(0.13)
    assert st.S[1, 0, 0, 0] == pytest.approx(0.3)
    assert st.stats[:, STAT_UPDATES].tolist() == [2, 2]
    assert st.array_weights()[:, 0, 0] == pytest.approx([0.1, 0.03])


def test_hybrid_small_rounding_per_array():
    # big array deterministic (0.3 pulse -> nothing), small array stochastic: the same 0.3
    # of a big pulse is 3 small pulses exactly, and 0.35 of a small pulse fires in ~35 %
    cell = HybridCell(DeviceSpec(n_states=1000), k=10, small_rounding="stochastic")
    st = _layer(cell, n_in=1, n_out=1, w_max=1000.0)        # big step 1, small step 0.1
    st.update(np.array([1.0]), np.array([-0.3]), 1.0, seed_state(0))
    assert st.stats[0, STAT_UPDATES] == 0 and np.all(st.S == 0)
    st.set_active(1)
    rng = seed_state(1)
    for _ in range(2000):
        st.update(np.array([1.0]), np.array([-0.035]), 1.0, rng)
    # 2 synapses (x and bias) x 2000 updates x 0.35 expected pulses; binomial sd ~ 30
    assert st.stats[1, STAT_PULSES] == pytest.approx(1400, abs=120)
    with pytest.raises(ValueError):
        HybridCell(small_rounding="nope")


def test_hybrid_small_states():
    cell = HybridCell(DeviceSpec(n_states=10), k=10, small_states=400)
    st = _layer(cell, n_in=1, n_out=1)
    st.set_active(1)
    st.update(np.array([1.0]), np.array([-0.001]), 1.0, seed_state(0))  # step 1/(10*400)
    assert st.Wa[0, 0] == pytest.approx(4 * 0.1 / 400)


def test_multi_device_counter_order():
    cell = MultiDeviceCell(DeviceSpec(n_states=1), n_devices=3, rounding="deterministic")
    st = _layer(cell, n_in=1, n_out=1)
    # binary devices, w_max = 1 -> one pulse = 1/3 of the weight range
    hits = []
    for step in range(3):
        before = st.S.copy()
        st.update(np.array([0.0]), np.array([-1.0 / 3]), 1.0, seed_state(step))  # bias only
        changed = np.argwhere(st.S != before)
        hits.append(int(changed[0][0]))
        st.cfg["counter"] += 1          # the global counter advances once per sample
    assert hits == [0, 1, 2]
    assert st.Wa[1, 0] == pytest.approx(1.0)   # all three + devices at G_max: W = w_max
    # counter wraps to device 0; a negative update sets its G-
    st.update(np.array([0.0]), np.array([1.0 / 3]), 1.0, seed_state(9))
    assert st.S[0, :, 1, 0].tolist() == [1.0, 1.0] and st.stats[0, STAT_REFRESH] == 0
    assert st.Wa[1, 0] == pytest.approx(2.0 / 3)
    # device 0's G+ and G- are both saturated: the next + update on it refreshes the pair
    st.cfg["counter"] = 3
    st.update(np.array([0.0]), np.array([-1.0 / 3]), 1.0, seed_state(9))
    assert st.stats[0, STAT_REFRESH] == 1
    assert st.S[0, :, 1, 0].tolist() == [1.0, 0.0]
    assert st.Wa[1, 0] == pytest.approx(1.0)


def test_two_t_two_r_sign_read_and_refresh():
    cell = BinaryPairCell(DeviceSpec(n_states=10))
    st = cell.build_layer(np.array([[0.2], [-0.1]]), 1.0, np.random.default_rng(0),
                          read_scale=0.5)
    np.testing.assert_allclose(st.Wr[:, 0], [0.5, -0.5])
    np.testing.assert_allclose(st.Wa[:, 0], [0.2, -0.1], atol=1e-6)
    # +2 pulses on both rows: row 1 flips sign
    st.update(np.array([1.0]), np.array([-0.2]), 1.0, seed_state(0))
    np.testing.assert_allclose(st.Wa[:, 0], [0.4, 0.1], atol=1e-6)
    np.testing.assert_allclose(st.Wr[:, 0], [0.5, 0.5])
    # drive row 0's G+ into saturation -> refresh keeps the analog weight
    st.S[0, 1, 0, 0] = 0.5
    st.S[0, 0, 0, 0] = 1.0
    st.recompute()
    st.update(np.array([1.0]), np.array([-0.1]), 1.0, seed_state(0))
    assert st.stats[0, STAT_REFRESH] >= 1
    assert st.S[0, 1, 0, 0] == 0.0 and st.S[0, 0, 0, 0] == pytest.approx(0.6)
    assert st.Wa[0, 0] == pytest.approx(0.6)


def test_device_to_device_spread():
    dev = DeviceSpec(n_states=50, d2d=0.5, g_ratio=11.0)
    st = PairCell(dev).build_layer(np.zeros((201, 100)), 1.0, np.random.default_rng(0))
    g0 = st.G0[0]
    assert g0.mean() == pytest.approx(0.1, rel=0.02)           # G_min / dG = 1/(11-1)
    assert g0.std() / 0.1 == pytest.approx(0.5, rel=0.05)
    assert np.all(st.GR == 1.0)                                # d2d spreads G_min only
    # offset of a pair at identical states: W = G0+ - G0-
    np.testing.assert_allclose(st.Wa, g0[0] - g0[1], atol=1e-6)
    # the range spread on its own
    st = PairCell(DeviceSpec(d2d_range=0.3)).build_layer(np.zeros((201, 100)), 1.0,
                                                         np.random.default_rng(1))
    assert np.all(st.G0 == st.G0.flat[0]) and st.GR.std() == pytest.approx(0.3, rel=0.05)
    # effective-area spread: G_min and range scale by the same log-normal factor
    st = PairCell(DeviceSpec(d2d_area=0.2, g_ratio=11.0)).build_layer(
        np.zeros((201, 100)), 1.0, np.random.default_rng(2))
    np.testing.assert_allclose(st.G0 / st.GR, 0.1, rtol=1e-6)
    assert np.log(st.GR).std() == pytest.approx(0.2, rel=0.05)


def test_make_cell_and_device_from_card():
    with pytest.raises(ValueError):
        make_cell("nope")
    with pytest.raises(ValueError):
        make_cell("hybrid", DeviceSpec(), bogus=1)
    card_mod = pytest.importorskip("pyspice_rram.device.card")
    card = card_mod.ModelCard.reference()
    spec = DeviceSpec.from_card(card, c2c=0.0)
    assert spec.n_states == pytest.approx(round(card.n_states()))
    assert spec.beta_p == card.beta_p and spec.c2c == 0.0
    assert spec.g_ratio == pytest.approx(card.g_max() / card.g_min())
    assert spec.d2d_area == card.d2d_g_sigma and spec.d2d == 0.0


def test_incremental_weight_matches_recompute():
    # many random updates with noise and refreshes: the running weight equals the sum of
    # the device conductances (incremental path for the no-d2d case, full path otherwise)
    for d2d in (0.0, 0.3):
        cell = HybridCell(DeviceSpec(n_states=20, c2c=0.34, d2d=d2d), k=5,
                          rounding="stochastic")
        rng = np.random.default_rng(0)
        st = cell.build_layer(rng.uniform(-0.3, 0.3, (9, 6)), 1.0, rng)
        r = seed_state(5)
        for step in range(400):
            st.set_active(step // 200)
            st.update(rng.uniform(0, 1, 8), rng.normal(0, 0.3, 6), 1.0, r)
        assert st.stats[:, STAT_REFRESH].sum() > 0
        w = st.Wa.copy()
        st.recompute()
        np.testing.assert_allclose(w, st.Wa, atol=1e-5)


def test_stochastic_rounding_per_pair_expectation():
    # E[pulses] = |v| for every pair, for |v| < 1 (geometric skipping + thinning) and >= 1
    n_out = 40
    N = 1e6
    st = _layer(PairCell(DeviceSpec(n_states=N, refresh=False), rounding="stochastic"),
                n_in=2, n_out=n_out, w_max=N, W0=np.zeros((3, n_out)))   # step = 1 weight unit
    v = np.linspace(0.02, 2.5, n_out) * np.where(np.arange(n_out) % 2, 1, -1)
    x = np.array([1.0, 0.5])
    rng = seed_state(11)
    reps = 3000
    for _ in range(reps):
        st.update(x, -v, 1.0, rng)            # dW = -lr x delta = x v
    pulses = (st.S[0, 0] + st.S[0, 1]) * N     # (in+1, out): every pulse lands on one device
    for row, xr in ((0, 1.0), (1, 0.5), (2, 1.0)):
        expect = np.abs(v) * xr * reps
        sd = np.sqrt(reps * 0.25) + 1
        assert np.all(np.abs(pulses[row] - expect) < 5 * sd), (row, pulses[row] - expect)
    # sign: positive v potentiates G+, negative v potentiates G-
    assert np.all(st.S[0, 0, 0, v < 0] == 0) and np.all(st.S[0, 1, 0, v > 0] == 0)


def test_stochastic_rounding_tiny_deltas_fire_nothing():
    # A block of columns whose |dW| / step is ~1e-39 (float32 sigmoid derivatives of
    # saturated hidden units): the geometric skip is ~1e39 and must end the block, not
    # overflow int64 (it used to index colbuf at INT64_MIN and crash the process).
    n_out, N, reps = 48, 1e6, 5000
    st = _layer(PairCell(DeviceSpec(n_states=N, refresh=False), rounding="stochastic"),
                n_in=2, n_out=n_out, w_max=N, W0=np.zeros((3, n_out)))   # step = 1
    delta = np.full(n_out, 1e-39, dtype=np.float32)
    delta[:16] = -0.01            # first block: tail probabilities 0.01 x
    rng = seed_state(3)
    for _ in range(reps):
        st.update(np.array([1.0, 0.5]), delta, 1.0, rng)
    pulses = (st.S[0, 0] + st.S[0, 1]) * N
    assert not (pulses[:, 16:] > 0).any()
    # E[pulses] per pair of the first block = reps * 0.01 * x (x = 1, 0.5, bias 1)
    assert pulses[0, :16].mean() == pytest.approx(50, rel=0.15)
    assert pulses[1, :16].mean() == pytest.approx(25, rel=0.2)


def test_two_t_two_r_init_has_no_zero_weights():
    # W0 = 0 would leave G+ = G- (read +s everywhere); every pair starts at >= one pulse
    # with the sign of W0 (here +/- alternating, and exact zeros read as +)
    W0 = np.zeros((5, 4))
    W0[::2] = -1e-4
    st = BinaryPairCell(DeviceSpec(n_states=50)).build_layer(W0, 1.0, np.random.default_rng(0),
                                                             read_scale=0.3)
    np.testing.assert_allclose(np.abs(st.Wa), 1.0 / 50, rtol=1e-6)
    np.testing.assert_array_equal(np.sign(st.Wa), np.where(W0 < 0, -1.0, 1.0))
    np.testing.assert_allclose(st.Wr, 0.3 * np.sign(st.Wa))


@pytest.mark.parametrize("d2d", [0.0, 0.1])
def test_stochastic_rounding_tiny_probabilities(d2d):
    # columns with |v| ~ 1e-29 next to one large column: the geometric skip length
    # log(u) / log1p(-|v|) overflows int64 -- it must end the block, not index out of bounds
    n_out = 20
    st = _layer(PairCell(DeviceSpec(n_states=1000, d2d=d2d), rounding="stochastic"), n_in=1,
                n_out=n_out, w_max=100.0)                     # step 0.1
    S0 = st.S.copy()
    delta = np.full(n_out, -1e-30)
    delta[0] = -0.5                                  # v = 5 pulses exactly
    rng = seed_state(4)
    for _ in range(50):
        st.update(np.array([1.0]), delta, 1.0, rng)
    assert st.stats[0, STAT_PULSES] == 2 * 50 * 5  # input row and bias row
    assert np.array_equal(st.S[..., 1:], S0[..., 1:])


def _fused_and_general(cell, W0, w_max, seed=0):
    """Two copies of a uniform (no d2d) layer: the first takes the fused stochastic-rounding
    rows of update_layer, the second (``cfg.uniform`` cleared) the general event path -- the
    same model, since all G0 are equal and GR = 1."""
    a = cell.build_layer(W0, w_max, np.random.default_rng(seed))
    b = a.copy()
    assert a.cfg["uniform"][0]
    b.cfg["uniform"] = False
    return a, b


@pytest.mark.parametrize("cell", [
    PairCell(DeviceSpec(n_states=20), rounding="stochastic"),
    PairCell(DeviceSpec(n_states=20, refresh=False), rounding="stochastic"),
    HybridCell(DeviceSpec(n_states=20), rounding="stochastic", k=4),
    BinaryPairCell(DeviceSpec(n_states=20), rounding="stochastic"),
])
@pytest.mark.parametrize("n_out, x_min", [(70, 0), (24, 0), (10, 1)])
def test_fused_rows_equal_general_path_integer_pulses(cell, n_out, x_min):
    # integer pulse counts and no noise: both paths are deterministic and must agree,
    # including saturation, refresh and lost pulses (rows expect >= ROW_FUSED pulses;
    # n_out < 64 with consecutive rows (x_min = 1) goes through the flat-block variant)
    n_in, N = 4, 20
    rng = np.random.default_rng(1)
    W0 = rng.uniform(-0.6, 0.6, (n_in + 1, n_out)) * N
    a, b = _fused_and_general(cell, W0, float(N))          # step = w_max / N = 1 (big array)
    for st in (a, b):
        st.S[0, :, 1, :6] = 1.0                             # some saturated devices
        st.S[0, 1, 1, 6:9] = 0.0
        st.recompute()
    for step in range(12):
        if isinstance(cell, HybridCell):
            for st in (a, b):
                st.set_active(step % 2)
        x = rng.integers(x_min, 3, n_in).astype(float)       # x in {x_min, .., 2}
        pulse = 0.25 if isinstance(cell, HybridCell) and step % 2 else 1.0   # small: 1/k
        delta = -rng.integers(-3, 4, n_out).astype(float) * pulse
        for st in (a, b):
            st.update(x, delta, 1.0, seed_state(step))
        np.testing.assert_allclose(a.S, b.S, atol=1e-6)
        np.testing.assert_allclose(a.Wa, b.Wa, atol=1e-5)
        if a.sign_read:     # sign read: W = 0 up to float rounding is a tie
            clear = np.abs(b.Wa) > 1e-5
            np.testing.assert_array_equal(a.Wr[clear], b.Wr[clear])
            assert set(np.unique(np.abs(a.Wr))) == {np.float32(a.cfg["read_scale"][0])}
        else:
            np.testing.assert_allclose(a.Wr, b.Wr, atol=1e-5)
        np.testing.assert_array_equal(a.stats, b.stats)
    assert a.stats[:, STAT_UPDATES].sum() > 50
    if cell.device.refresh:
        assert a.stats[:, STAT_REFRESH].sum() > 0


def test_fused_rows_hand_computed_refresh_and_noise():
    # one fused row (v = +1 on 40 columns, N = 10, no noise): column 0 has G+ saturated and
    # G- = 0.3 -> refresh (0.7 into G+) then the pulse: G+ = 0.8; column 1 has G+ = 1, G- = 0
    # -> pulse lost; the others get one pulse: G+ = 0.1
    n_out = 40
    st = _layer(PairCell(DeviceSpec(n_states=10), rounding="stochastic"), n_in=1,
                n_out=n_out, W0=np.zeros((2, n_out)))
    st.S[0, 0, 0, 0], st.S[0, 1, 0, 0] = 1.0, 0.3
    st.S[0, 0, 0, 1] = 1.0
    st.recompute()
    st.update(np.array([1.0]), np.full(n_out, -0.1), 1.0, seed_state(0))   # v = 1
    assert st.S[0, 0, 0, 0] == pytest.approx(0.8) and st.S[0, 1, 0, 0] == 0.0
    assert st.S[0, 0, 0, 1] == 1.0 and st.S[0, 1, 0, 1] == 0.0
    np.testing.assert_allclose(st.S[0, 0, 0, 2:], 0.1, atol=1e-7)
    np.testing.assert_allclose(st.Wa[0], st.S[0, 0, 0] - st.S[0, 1, 0], atol=1e-6)
    assert st.stats[0].tolist() == [n_out - 1 + n_out, 2 * n_out - 1, 1]
    # delta/mu of one pulse and of 4 pulses at once, on the fused path
    N = 100
    st = _layer(PairCell(DeviceSpec(n_states=N, c2c=0.34, refresh=False),
                         rounding="stochastic"), n_in=1, n_out=2000, w_max=float(N),
                W0=np.zeros((2, 2000)))
    for m in (1, 4):
        s0 = st.S[0, 0, 0].copy()
        st.update(np.array([1.0]), np.full(2000, -float(m)), 1.0, seed_state(m))
        d = st.S[0, 0, 0] - s0
        assert d.mean() == pytest.approx(m / N, rel=0.02)
        assert d.std() == pytest.approx(0.34 * np.sqrt(m) / N, rel=0.06)


def test_pulse_counts_of_fused_rows():
    # float32 (vectorised) and int64 counting agree with numpy
    nb = np.random.default_rng(0).integers(-7, 8, 1000).astype(np.int32)
    expect = (int(np.count_nonzero(nb)), int(np.abs(nb).sum()))
    assert pulse_counts(nb, 1000, 7.0) == expect              # float32 path
    assert pulse_counts(nb, 1000, 1e6) == expect              # 1000 * 1e6 >= 2**24: int path
    assert pulse_counts(nb, 10, 7.0) == (int(np.count_nonzero(nb[:10])), int(np.abs(nb[:10]).sum()))
