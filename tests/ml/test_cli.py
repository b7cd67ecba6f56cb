"""`python -m predictions.ml` reads the import CSVs and prints the training report."""

import json

import pandas as pd
import pytest

from predictions.ml.artifacts import load_churn_bundle
from predictions.ml.cli import main
from predictions.ml.csv_input import EVENTS_CSV_COLUMNS, read_project_csvs
from tests.ml.conftest import CUTOFF, HORIZON, make_loyalty_data


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    """A small synthetic program written in the project's import formats."""
    data = make_loyalty_data(n_members=400, seed=21)
    folder = tmp_path_factory.mktemp("csv")
    external = {member: f"M-{member:05d}" for member in data.members["member_id"]}
    events = data.events.assign(member_external_id=data.events["member_id"].map(external))
    events["occurred_at"] = events["occurred_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    columns = list(EVENTS_CSV_COLUMNS)
    for column in columns:
        if column not in events.columns:
            events[column] = ""
    events[columns].to_csv(folder / "events.csv", index=False)
    members = pd.DataFrame(
        {
            "external_id": data.members["member_id"].map(external),
            "joined_at": pd.to_datetime(data.members["joined_on"]).dt.strftime("%Y-%m-%d"),
            "tier": data.members["tier"],
            "points_balance": data.members["points_balance"].astype(int),
            "consent_profiling": "true",
            "age_band": "",
            "region": "",
        }
    )
    # One member with no join date and no tier, and one only present in the events file.
    members.loc[0, ["joined_at", "tier"]] = ["", ""]
    members = members[members["external_id"] != external[data.members["member_id"].iloc[-1]]]
    members.to_csv(folder / "members.csv", index=False)
    return folder


def test_csv_reader_maps_external_ids_and_tiers(csv_files):
    events, members, external_ids = read_project_csvs(
        events_path=csv_files / "events.csv", members_path=csv_files / "members.csv"
    )
    assert len(members) == 400 and len(external_ids) == 400
    assert members["member_id"].tolist() == list(range(400))
    assert external_ids[-1] == "M-04000"  # appended: only in the events file
    assert members["tier_rank"].iloc[0] == -1 and pd.isna(members["joined_on"].iloc[0])
    assert set(members["tier_rank"].iloc[1:-1]) <= {0, 1, 2}
    assert str(events["occurred_at"].dtype) == "datetime64[ns, UTC]"
    assert set(events["member_id"]) <= set(members["member_id"])


def test_churn_command_prints_the_report_as_json(csv_files, tmp_path, capsys):
    code = main(
        [
            "churn",
            "--events",
            str(csv_files / "events.csv"),
            "--members",
            str(csv_files / "members.csv"),
            "--cutoff",
            CUTOFF.date().isoformat(),
            "--horizon",
            str(HORIZON),
            "--max-cutoffs",
            "4",
            "--bootstrap-models",
            "2",
            "--save",
            str(tmp_path / "bundle"),
            "--json",
        ]
    )
    assert code == 0
    output = json.loads(capsys.readouterr().out)
    assert output["evaluation"]["available"] is True
    assert output["model"]["n"] == output["rows"]["evaluation"] > 0
    assert set(output["baselines"]) == {"recency", "rfm_logistic", "bgnbd"}
    assert output["scored"]["members"] == 400
    assert {"train_s", "score_s", "score_members_per_s"} <= set(output["timings"])
    bundle = load_churn_bundle(directory=tmp_path / "bundle", checksums=output["checksums"])
    assert bundle.selected == output["selected"]


def test_next_action_command_prints_a_summary(csv_files, capsys):
    code = main(
        [
            "next-action",
            "--events",
            str(csv_files / "events.csv"),
            "--members",
            str(csv_files / "members.csv"),
            "--cutoff",
            CUTOFF.date().isoformat(),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "top1" in out and "timings" in out


def test_bad_input_exits_with_a_message(tmp_path, capsys):
    (tmp_path / "events.csv").write_text(
        "member_external_id,occurred_at,kind\nM1,2024-01-01T00:00:00Z,teleport\n"
    )
    (tmp_path / "members.csv").write_text("external_id\nM1\n")
    code = main(
        [
            "churn",
            "--events",
            str(tmp_path / "events.csv"),
            "--members",
            str(tmp_path / "members.csv"),
            "--cutoff",
            "2024-06-01",
        ]
    )
    assert code == 2
    assert "unknown kind 'teleport'" in capsys.readouterr().err
