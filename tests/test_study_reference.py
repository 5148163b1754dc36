"""The reference work's released nets as shipped data, and ``compare_with_reference``'s table and files.

Golden numbers were read off the 83 released ``net_K_stats.stats`` files (asyms/stream@ae06c7f).
"""

from __future__ import annotations

import pandas as pd
import pytest

from eenas.errors import EenasError
from eenas.study.reference import (
    LINEAR_HEAD_MAX_PARAMS,
    REFERENCE_COLUMNS,
    compare_with_reference,
    comparison_table,
    load_reference,
    search_front,
)

COMMIT = "ae06c7f90fa6cad769a71e550cfaa49652c3e62f"
LINEAR_HEAD = 5120 * 10 + 10  # one FC layer, 5120 features -> 10 classes
LARGE_HEAD = 5120 * 2560 + 2560 + 2560 * 10 + 10  # FC 5120 -> 2560 -> 10
REFERENCE_GROUPS = ["reference: linear final head", "reference: large final head"]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return load_reference()


def _split(cell: str) -> list[float]:
    return [float(v) for v in cell.split(";")]


def _front(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """(iter, net) of the nets no other net beats on both accuracy and ET ratio, lowest ET first."""
    best, keep = -1.0, []
    for row in frame.sort_values(["et_ratio", "top1_accuracy"], ascending=[True, False]).itertuples():
        if row.top1_accuracy > best:
            best, keep = row.top1_accuracy, keep + [(row.iter, row.net)]
    return keep


def test_shipped_csv_holds_every_released_net_with_its_provenance(reference):
    assert len(reference) == 83
    assert not reference.duplicated(["iter", "net"]).any()
    assert reference.groupby("iter").size().to_dict() == {0: 10, 2: 10, 3: 27, 4: 17, 5: 7, 6: 10, 7: 2}
    assert set(reference["commit"]) == {COMMIT}
    folders = [f"stream/inputs/eenn/workload/nas/iter_{i}/net_{n}/" for i, n in reference[["iter", "net"]].values]
    assert reference["path"].tolist() == folders


def test_columns_agree_with_each_other(reference):
    for row in reference.itertuples():
        ratios, ex_lay, b = _split(row.exits_ratios), _split(row.ex_lay), _split(row.b)
        assert len(ratios) == len(ex_lay) == sum(b) + 1 == row.n_exits
        assert sum(ratios) == pytest.approx(1.0, abs=1e-9)
        assert ex_lay[-1] == (row.final_head_kind == "linear")
    assert set(reference["final_head_params"]) == {LINEAR_HEAD, LARGE_HEAD}
    kinds = reference["final_head_params"].map(lambda p: "linear" if p < LINEAR_HEAD_MAX_PARAMS else "large")
    assert (kinds == reference["final_head_kind"]).all()
    assert set(reference["backbone_macs"]) == {195_325_952}


def test_ranges_and_the_claims_about_them(reference):
    # Claim: 84.4-88.9% top-1.  Holds: 84.41% (iter_4/net_4) to 88.92% (iter_2/net_9).
    assert (reference["top1_accuracy"].min(), reference["top1_accuracy"].max()) == (0.8441, 0.8892)
    assert reference["et_ratio"].agg(["min", "max"]).tolist() == pytest.approx([0.103299, 0.494512], abs=1e-6)
    linear = reference[reference["final_head_kind"] == "linear"]
    large = reference[reference["final_head_kind"] == "large"]
    assert (len(linear), len(large)) == (55, 28)
    assert linear["et_ratio"].agg(["min", "max"]).tolist() == pytest.approx([0.405544, 0.494512], abs=1e-6)
    assert (linear["top1_accuracy"].min(), linear["top1_accuracy"].max()) == (0.8471, 0.8854)
    # Claim: linear-head nets at ET ratios of about 0.41-0.45 at 88.0-88.5%.  Holds for their front, whose
    # lowest-ET end is 87.41% at 0.4055; linear nets as a whole reach 0.49 and go down to 84.7%.
    linear_front = linear.set_index(["iter", "net"]).loc[_front(linear)]
    assert linear_front.index.tolist() == [(3, 8), (0, 1), (6, 4), (2, 7), (6, 0)]
    assert linear_front["top1_accuracy"].tolist() == [0.8741, 0.8804, 0.8830, 0.8851, 0.8854]
    assert linear_front["et_ratio"].tolist() == pytest.approx([0.4055, 0.4140, 0.4408, 0.4521, 0.4531], abs=1e-4)
    # Claim: ratios near 0.10 come with a ~13M-parameter final head.  Holds, and more: every net below the
    # lowest linear-head ratio has the large head, and the front of all 83 nets is large-head only.
    lowest = reference.loc[reference["et_ratio"].idxmin()]
    assert (lowest["iter"], lowest["net"], lowest["n_exits"], lowest["final_head_params"]) == (7, 3, 2, 13_135_370)
    assert (reference[reference["et_ratio"] < linear["et_ratio"].min()]["final_head_kind"] == "large").sum() == 18
    assert _front(reference) == _front(large) == [(7, 3), (4, 16), (2, 9)]


def test_reference_rows_of_the_table_are_the_groups_statistics(reference):
    table = comparison_table(reference).set_index("group")
    assert table.index.tolist() == REFERENCE_GROUPS
    for group, kind in zip(REFERENCE_GROUPS, ("linear", "large")):
        part = reference[reference["final_head_kind"] == kind]
        row = table.loc[group]
        assert row["count"] == len(part)
        accuracy = 100 * part["top1_accuracy"]
        assert row[["accuracy_pct_min", "accuracy_pct_median", "accuracy_pct_max"]].tolist() == pytest.approx(
            [accuracy.min(), accuracy.median(), accuracy.max()])
        assert row["et_ratio_median"] == pytest.approx(part["et_ratio"].median())
        assert (row["exits_min"], row["exits_max"]) == (2, 8)
    assert table.loc[REFERENCE_GROUPS[0], "et_ratio_median"] == pytest.approx(0.464396, abs=1e-6)
    assert table.loc[REFERENCE_GROUPS[1], "et_ratio_median"] == pytest.approx(0.347397, abs=1e-6)


def test_compare_writes_table_markdown_and_figure(tmp_path):
    front = pd.DataFrame({"accuracy": [0.80, 0.85, 0.90, 0.70], "et_ratio": [0.2, 0.3, 0.5, 0.1],
                          "n_exits": [3, 4, 5, 2], "label": ["8-bit backbone"] * 3 + ["4-bit backbone"]})
    table = compare_with_reference(front, tmp_path)
    written = pd.read_csv(tmp_path / "reference_comparison.csv")
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    assert table["group"].tolist() == ["eenas: 8-bit backbone", "eenas: 4-bit backbone", *REFERENCE_GROUPS]
    eight = table.iloc[0]
    assert eight[["count", "accuracy_pct_min", "accuracy_pct_median", "accuracy_pct_max", "et_ratio_min",
                  "et_ratio_median", "et_ratio_max", "exits_min", "exits_max"]].tolist() == pytest.approx(
        [3, 80.0, 85.0, 90.0, 0.2, 0.3, 0.5, 3, 5])
    assert table.iloc[1][["count", "accuracy_pct_median", "et_ratio_median"]].tolist() == pytest.approx([1, 70.0, 0.1])
    assert table["count"].tolist()[2:] == [55, 28]
    text = (tmp_path / "reference_comparison.md").read_text()
    assert "](reference_comparison.png)" in text and "eenas: 4-bit backbone" in text and COMMIT in text
    assert (tmp_path / "reference_comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_search_front_counts_the_final_classifier_and_reads_the_test_split(tmp_path):
    pareto = pd.DataFrame({"k": [0, 1], "backbone_bits": [8, 4], "accuracy": [0.5, 0.5], "et_ratio": [9.0, 9.0]})
    stats = {0: {"accuracy": 0.81, "et_ratio": 0.25, "exits": [{}, {}, {}]},
             1: {"accuracy": 0.78, "et_ratio": 0.40, "exits": [{}, {}]}}
    front = search_front(pareto, stats)
    assert front.to_dict("list") == {"accuracy": [0.81, 0.78], "et_ratio": [0.25, 0.40], "n_exits": [3, 2],
                                     "label": ["8-bit backbone", "4-bit backbone"]}
    empty = search_front(pd.DataFrame(columns=["k", "backbone_bits"]), {})
    assert empty.empty and list(empty) == REFERENCE_COLUMNS
    assert compare_with_reference(empty, tmp_path)["group"].tolist() == REFERENCE_GROUPS


@pytest.mark.parametrize("front, message", [
    (pd.DataFrame({"accuracy": [0.8], "et_ratio": [0.3], "label": ["x"]}), "missing column(s) n_exits"),
    (pd.DataFrame({"accuracy": [80.0], "et_ratio": [0.3], "n_exits": [3], "label": ["x"]}), "not a percentage"),
    (pd.DataFrame({"accuracy": [0.8], "et_ratio": [0.0], "n_exits": [3], "label": ["x"]}), "et_ratio must be positive"),
])
def test_bad_fronts_are_refused_naming_the_field(reference, front, message):
    with pytest.raises(EenasError, match=message.replace("(", r"\(").replace(")", r"\)")):
        comparison_table(reference, front)
