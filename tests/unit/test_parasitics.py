"""The exact IR-drop solver of one tile (nvmxbar.core.parasitics): small tiles solved by hand, the transfer matrix
against the solves, the Green's-function form at the solved nodes, the spacing convention, reciprocity, zero-ohm
merging and bad input. ngspice's check of the same circuit: tests/integration/test_ngspice.py."""

import numpy as np
import pytest

from nvmxbar.core import parasitics as P
from nvmxbar.core import spice

RNG = np.random.default_rng(20261208)
#: wire mixes: every resistance non-zero, the common r_drv = r_sense = 0, and the zero-ohm merges of each kind
MIXES = [
    P.Wires(1.86, 5.57, 500.0, 50.0),
    P.Wires(1.86, 5.57),
    P.Wires(0.0, 5.57),
    P.Wires(0.0, 5.57, 300.0, 0.0),
    P.Wires(2.5, 0.0),
    P.Wires(2.5, 0.0, 0.0, 40.0),
    P.Wires(0.0, 0.0, 200.0, 0.0),
    P.Wires(0.0, 0.0, 0.0, 200.0),
    P.Wires(0.0, 0.0, 100.0, 100.0),
]
IDS = [f"row{w.row_ohm}-col{w.col_ohm}-drv{w.driver_ohm}-sense{w.sense_ohm}" for w in MIXES]


def tile(R=7, n=5, seed=0, zeros=2):
    """Random conductances of 6 kOhm-ish cells (so that the wires matter), a few cells 0."""
    rng = np.random.default_rng(seed)
    G = rng.uniform(1e-6, 1.7e-4, (R, n))
    G.flat[rng.choice(R * n, zeros, replace=False)] = 0.0
    return G


@pytest.mark.parametrize("w", MIXES, ids=IDS)
def test_one_cell_is_a_series_circuit(w):
    G, V, p0 = 3.0e-5, 0.17, 4
    expected = V / (w.driver_ohm + (p0 + 1) * w.row_ohm + 1 / G + w.col_ohm + w.sense_ohm)
    I = P.column_currents(np.array([[G]]), np.array([V]), [p0], w)
    assert I.shape == (1,)
    assert I[0] == pytest.approx(expected, rel=1e-13)
    assert P.transfer_matrix(np.array([[G]]), [p0], w)[0, 0] == pytest.approx(expected / V, rel=1e-13)


@pytest.mark.parametrize("w", [P.Wires(1.86, 5.57), P.Wires(3.0, 7.0, 400.0, 60.0), P.Wires(0.0, 5.0, 100.0, 10.0)])
def test_one_row_two_columns_by_hand(w):
    """R = 1, n = 2 at positions p0, p1. Column k is a series path to ground: cell plus its column wire, conductance
    h_k = 1 / (1/G_k + r_col + r_sense). The row: V -- r1 = r_drv + (p0+1) r_row -- a0 -- r2 = (p1-p0) r_row -- a1.
    KCL at the two row nodes:
        (1/r1 + 1/r2 + h0) a0 - (1/r2) a1 = V / r1
        -(1/r2) a0 + (1/r2 + h1) a1 = 0
    and I_k = h_k a_k. (r_row = 0: a0 = a1, one node: (1/r1 + h0 + h1) a = V / r1.)"""
    G0, G1, V, p0, p1 = 2.0e-4, 1.2e-4, 0.15, 1, 4
    h0 = 1 / (1 / G0 + w.col_ohm + w.sense_ohm)
    h1 = 1 / (1 / G1 + w.col_ohm + w.sense_ohm)
    r1 = w.driver_ohm + (p0 + 1) * w.row_ohm
    if w.row_ohm > 0:
        r2 = (p1 - p0) * w.row_ohm
        m11, m12, m22 = 1 / r1 + 1 / r2 + h0, -1 / r2, 1 / r2 + h1
        det = m11 * m22 - m12 * m12
        a0 = (V / r1) * m22 / det  # Cramer's rule
        a1 = -m12 * (V / r1) / det
    else:
        a0 = a1 = (V / r1) / (1 / r1 + h0 + h1)
    I = P.column_currents(np.array([[G0, G1]]), np.array([V]), [p0, p1], w)
    np.testing.assert_allclose(I, [h0 * a0, h1 * a1], rtol=1e-12)


@pytest.mark.parametrize("w", [P.Wires(1.86, 5.57), P.Wires(3.0, 7.0, 400.0, 60.0), P.Wires(2.0, 0.0, 100.0, 30.0)])
def test_two_rows_one_column_by_hand(w):
    """R = 2, n = 1 at position p0. Row i is a series path from its source: driver, row wire and cell, conductance
    h_i = 1 / (r_drv + (p0+1) r_row + 1/G_i), into the column node b_i. The column: b0 -- r_col -- b1 --
    (r_col + r_sense) -- 0 V. KCL at the two column nodes:
        (h0 + 1/r_col) b0 - (1/r_col) b1 = h0 V0
        -(1/r_col) b0 + (h1 + 1/r_col + 1/(r_col + r_sense)) b1 = h1 V1
    and I = b1 / (r_col + r_sense). (r_col = 0: b0 = b1 = b, (h0 + h1 + 1/r_sense) b = h0 V0 + h1 V1.)"""
    G0, G1, V0, V1, p0 = 1.5e-4, 9.0e-5, 0.2, 0.07, 2
    r_in = w.driver_ohm + (p0 + 1) * w.row_ohm
    h0, h1 = 1 / (r_in + 1 / G0), 1 / (r_in + 1 / G1)
    r_out = w.col_ohm + w.sense_ohm
    if w.col_ohm > 0:
        m11, m12, m22 = h0 + 1 / w.col_ohm, -1 / w.col_ohm, h1 + 1 / w.col_ohm + 1 / r_out
        det = m11 * m22 - m12 * m12
        b1 = (m11 * h1 * V1 - m12 * h0 * V0) / det  # Cramer's rule
    else:
        b1 = (h0 * V0 + h1 * V1) / (h0 + h1 + 1 / r_out)
    I = P.column_currents(np.array([[G0], [G1]]), np.array([V0, V1]), [p0], w)
    assert I[0] == pytest.approx(b1 / r_out, rel=1e-12)


@pytest.mark.parametrize("w", MIXES, ids=IDS)
@pytest.mark.parametrize("shape", [(7, 5), (4, 9)], ids=["tall-adjoint", "wide-forward"])
def test_transfer_matrix_is_the_solves(w, shape):
    G = tile(*shape)
    R, n = G.shape
    p = np.cumsum(RNG.integers(1, 4, n))
    W = P.transfer_matrix(G, p, w)
    assert W.shape == (R, n)
    unit = P.column_currents(G, np.eye(R), p, w)  # (n, R): column i is the response to V = e_i
    np.testing.assert_allclose(W, unit.T, rtol=1e-12, atol=1e-13 * np.abs(W).max())
    V = RNG.uniform(0, 0.2, (R, 6))
    I = P.column_currents(G, V, p, w)
    assert I.shape == (n, 6)
    np.testing.assert_allclose(I, (V.T @ W).T, rtol=1e-11, atol=1e-13 * np.abs(I).max())
    single = P.column_currents(G, V[:, 2], p, w)
    assert single.shape == (n,)
    np.testing.assert_allclose(single, I[:, 2], rtol=1e-12)
    # superposition: the circuit is linear
    both = P.column_currents(G, V[:, 0] + 2 * V[:, 1], p, w)
    np.testing.assert_allclose(both, I[:, 0] + 2 * I[:, 1], rtol=1e-11)


@pytest.mark.parametrize("w", MIXES, ids=IDS)
def test_greens_function_form_at_the_solved_nodes(w):
    """V_i - a(i,k) = sum_k' I[i,k'] (r_drv + r_row (p_min(k,k') + 1)), b(i,k) = sum_i' I[i',k] (r_sense +
    r_col (R - max(i,i'))), with the cell currents I[i,k] = G[i,k] (a - b); and the sense currents are the column
    sums of the cell currents."""
    G = tile(6, 5, seed=3)
    R, n = G.shape
    p = np.array([0, 1, 5, 6, 12])
    V = RNG.uniform(0, 0.2, (R, 3))
    a, b, I = P.solve_nodes(G, V, p, w)
    assert a.shape == b.shape == (R, n, 3)
    cell = G[:, :, None] * (a - b)
    row_r = w.driver_ohm + w.row_ohm * (p[np.minimum.outer(np.arange(n), np.arange(n))] + 1)
    col_r = w.sense_ohm + w.col_ohm * (R - np.maximum.outer(np.arange(R), np.arange(R)))
    scale = V.max()
    np.testing.assert_allclose(V[:, None, :] - a, np.einsum("ijm,kj->ikm", cell, row_r), atol=1e-12 * scale)
    np.testing.assert_allclose(b, np.einsum("ikm,ji->jkm", cell, col_r), atol=1e-12 * scale)
    np.testing.assert_allclose(I, cell.sum(0), rtol=1e-10, atol=1e-13 * np.abs(I).max())
    np.testing.assert_allclose(I, P.column_currents(G, V, p, w), rtol=1e-13)


def test_no_wire_resistance_is_the_ideal_crossbar():
    G = tile(9, 6)
    V = RNG.uniform(0, 0.2, 9)
    ideal = P.Wires(0.0, 0.0)
    assert P.transfer_matrix(G, None, ideal).tolist() == G.tolist()
    np.testing.assert_allclose(P.column_currents(G, V, None, ideal), G.T @ V, rtol=1e-15)
    a, b, _ = P.solve_nodes(G, V, None, ideal)
    assert np.all(a == V[:, None]) and np.all(b == 0)
    # and the solved network tends to it
    tiny = P.Wires(1e-9, 1e-9, 1e-9, 1e-9)
    np.testing.assert_allclose(P.transfer_matrix(G, None, tiny), G, rtol=1e-8, atol=1e-20)
    # while real wires move it by more than a per cent
    on = G > 0
    assert np.abs(P.transfer_matrix(G, None, P.Wires(1.86, 5.57))[on] / G[on] - 1).max() > 0.01


@pytest.mark.parametrize("driver", [0.0, 300.0])
def test_spread_positions_are_longer_row_segments(driver):
    """Every pitch between active columns is one r_row segment: positions 7, 15, 23, ... are a contiguous tile
    (0, 1, 2, ...) with r_row x 8; positions 0, 8, 16, ... the same with 7 r_row less before the first cell."""
    G = tile(6, 5, seed=4)
    r = 1.86
    contiguous = P.transfer_matrix(G, None, P.Wires(8 * r, 5.57, driver, 50.0))
    spread7 = P.transfer_matrix(G, 8 * np.arange(5) + 7, P.Wires(r, 5.57, driver, 50.0))
    spread0 = P.transfer_matrix(G, 8 * np.arange(5), P.Wires(r, 5.57, driver + 7 * r, 50.0))
    np.testing.assert_allclose(spread7, contiguous, rtol=1e-12)
    np.testing.assert_allclose(spread0, contiguous, rtol=1e-12)


def test_an_inactive_column_is_a_column_of_no_cells():
    """A column with no conducting cell carries nothing: the tile without it (positions 0, 2, 3) equals the tile
    with it (positions 0, 1, 2, 3) and its cells 0 (same row-wire pitches), whose current is 0."""
    G = tile(5, 3, seed=5, zeros=0)
    w = P.Wires(1.86, 5.57, 100.0, 20.0)
    full = np.insert(G, 1, 0.0, axis=1)
    W_full = P.transfer_matrix(full, [0, 1, 2, 3], w)
    np.testing.assert_allclose(W_full[:, [0, 2, 3]], P.transfer_matrix(G, [0, 2, 3], w), rtol=1e-12)
    assert np.all(W_full[:, 1] == 0)


@pytest.mark.parametrize("w", [P.Wires(1.86, 5.57), P.Wires(2.0, 6.0, 500.0, 50.0), P.Wires(0.0, 6.0, 0.0, 50.0)])
def test_reciprocity_the_transposed_tile(w):
    """The network is reciprocal (K symmetric): driving column k's sense port and reading row i's source port
    gives W[i,k]. That transposed problem is a tile of its own: rows = the old columns (driven from their sense end:
    driver r_sense, row wire r_col), columns = the old rows (sensed at their source end: sense r_drv, column wire
    r_row), both orders reversed; so its W is W[::-1, ::-1].T."""
    G = tile(6, 4, seed=6)
    W = P.transfer_matrix(G, None, w)
    wt = P.Wires(w.col_ohm, w.row_ohm, w.sense_ohm, w.driver_ohm)
    np.testing.assert_allclose(P.transfer_matrix(G[::-1, ::-1].T, None, wt), W[::-1, ::-1].T, rtol=1e-11)


def test_nodal_system_is_the_block_matrix_of_section_4_1():
    G = tile(4, 3, seed=7)
    R, n = G.shape
    w = P.Wires(2.0, 5.0, 100.0, 20.0)
    s = P.nodal_system(G, [1, 2, 4], w)
    K = s.K.toarray()
    assert K.shape == (2 * R * n,) * 2 and s.B.shape == (2 * R * n, R) and s.C.shape == (n, 2 * R * n)
    assert np.array_equal(K, K.T)
    np.linalg.cholesky(K)  # positive definite
    rn = R * n
    np.testing.assert_allclose(K[:rn, rn:], -np.diag(G.ravel()), rtol=1e-15)  # -D_G
    g_in = 1 / (100.0 + 2 * 2.0)
    assert K[0, 0] == pytest.approx(g_in + 1 / 2.0 + G[0, 0], rel=1e-14)  # a(0,0): driver, one segment, cell
    assert K[rn + (R - 1) * n, rn + (R - 1) * n] == pytest.approx(1 / 5.0 + 1 / 25.0 + G[-1, 0], rel=1e-14)
    assert s.B.toarray()[2 * n, 2] == pytest.approx(g_in) and s.B.nnz == R
    assert s.C.toarray()[1, rn + (R - 1) * n + 1] == pytest.approx(1 / 25.0) and s.C.nnz == n
    assert np.array_equal(s.index[0], np.arange(rn).reshape(R, n))
    assert np.array_equal(s.index[1], rn + np.arange(rn).reshape(R, n))


def test_zero_ohm_segments_merge_nodes():
    G = tile(4, 3, seed=8)
    assert P.nodal_system(G, None, P.Wires(0.0, 5.0)).K.shape == (12, 12)  # rows are their sources: b only
    assert P.nodal_system(G, None, P.Wires(0.0, 5.0, 10.0, 0.0)).K.shape == (4 + 12,) * 2  # one node per row
    assert P.nodal_system(G, None, P.Wires(2.0, 0.0, 0.0, 10.0)).K.shape == (12 + 3,) * 2  # one node per column
    s = P.nodal_system(G, None, P.Wires(0.0, 0.0, 10.0, 0.0))
    assert s.K.shape == (4, 4) and s.C.nnz == np.count_nonzero(G) == 10  # C: the cells into the sense nodes


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("row_ohm", {"row_ohm": -1.0, "col_ohm": 1.0}),
        ("col_ohm", {"row_ohm": 1.0, "col_ohm": -0.5}),
        ("driver_ohm", {"row_ohm": 1.0, "col_ohm": 1.0, "driver_ohm": -3.0}),
        ("sense_ohm", {"row_ohm": 1.0, "col_ohm": 1.0, "sense_ohm": float("nan")}),
        ("row_ohm", {"row_ohm": float("inf"), "col_ohm": 1.0}),
        ("col_ohm", {"row_ohm": 1.0, "col_ohm": "x"}),
    ],
)
def test_bad_wires_name_the_field(field, kwargs):
    with pytest.raises(ValueError, match=f"Wires.{field}"):
        P.Wires(**kwargs)


@pytest.mark.parametrize(
    "positions, match",
    [
        ([0, 2, 2], "strictly increasing"),
        ([3, 1, 5], "strictly increasing"),
        ([-1, 0, 1], ">= 0"),
        ([0, 1], "one position per active column"),
        ([0, 1.5, 3], "integers"),
        ([[0, 1, 2]], "one position per active column"),
    ],
)
def test_bad_positions(positions, match):
    with pytest.raises(ValueError, match=match):
        P.transfer_matrix(tile(3, 3), positions, P.Wires(1.0, 1.0))


def test_bad_shapes_and_values():
    w = P.Wires(1.0, 1.0)
    with pytest.raises(ValueError, match="V: need shape \\(3,\\)"):
        P.column_currents(tile(3, 2), np.ones(4), None, w)
    with pytest.raises(ValueError, match="V: need shape"):
        P.column_currents(tile(3, 2), np.ones((3, 2, 2)), None, w)
    with pytest.raises(ValueError, match="G: need a 2-D"):
        P.transfer_matrix(np.ones(3), None, w)
    with pytest.raises(ValueError, match="G: conductances must be finite and >= 0"):
        P.transfer_matrix(-tile(3, 2), None, w)
    with pytest.raises(ValueError, match="wires: need a Wires"):
        P.transfer_matrix(tile(3, 2), None, (1.0, 1.0))


def test_netlist_merges_zero_ohm_segments_and_omits_empty_cells():
    """SPICE resistors must be non-zero: with r_drv = r_sense = 0 no driver or sense resistor is written, and the
    first row segment starts at the source node; G = 0 cells are not written. (ngspice's solution of it:
    tests/integration/test_ngspice.py.)"""
    G = tile(3, 4, seed=9, zeros=0)
    G[1, 2] = 0.0
    text = spice.netlist(G, np.full(3, 0.1), [0, 1, 3, 4], P.Wires(1.86, 5.57), title="check")
    lines = text.splitlines()
    assert lines[0] == "* check"
    resistors = [line.split() for line in lines if line.startswith("R")]
    assert all(float(r[3]) > 0 for r in resistors)
    names = {r[0] for r in resistors}
    assert "RC1_2" not in names and "RC0_2" in names
    assert not any(n.startswith(("RD", "RT")) for n in names)
    assert len(names) == 3 * 4 + 3 * 4 - 1 + 3 * 4  # row segments, cells, column segments
    assert ["RW0_0", "d0", "a0_0", "1.86"] in resistors
    assert ["RW2_2", "a2_1", "a2_2", repr(2 * 1.86)] in resistors
    assert ["RB2_1", "b2_1", "t1", "5.57"] in resistors
    assert "option numdgt=15" in lines and "op" in lines and lines[-3:] == ["quit", ".endc", ".end"]
    assert f"wrdata {spice.OUTPUT_FILE} i(VS0) i(VS1) i(VS2) i(VS3)" in lines


def test_run_ngspice_without_ngspice_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="install the Debian package `ngspice`"):
        spice.run_ngspice("* empty\n.end\n")
