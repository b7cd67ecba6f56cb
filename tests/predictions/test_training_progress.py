"""Training from the database tells its progress: the service's stages around the engine's,
and the commands draw them on stderr, never on stdout."""

import json
from io import StringIO
from itertools import groupby, pairwise

import pytest
from django.core.management import call_command

from predictions.management.progress import TrainingProgress
from predictions.ml.progress import ProgressEvent
from predictions.models import ModelVersion
from predictions.services.training import train_churn_version, train_next_action_version
from tests.predictions.conftest import CUTOFF, FAST_CHURN, HORIZON

pytestmark = pytest.mark.django_db(transaction=True)


def stages_in_order(events: list[ProgressEvent]) -> list[str]:
    return [stage for stage, _ in groupby(event.stage for event in events)]


def assert_monotonic_to_one(events: list[ProgressEvent]) -> None:
    fractions = [event.fraction for event in events]
    assert (fractions[0], fractions[-1]) == (0.0, 1.0)
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(later >= earlier for earlier, later in pairwise(fractions))


def test_a_churn_version_trains_through_loading_the_engine_and_registering(generated_members):
    heard: list[ProgressEvent] = []

    outcome = train_churn_version(
        cutoff=CUTOFF, horizon_days=HORIZON, config=FAST_CHURN, progress=heard.append
    )

    assert stages_in_order(heard) == [
        "loading data",
        "preparing events",
        "features",
        "fitting candidates",
        "calibration and bootstrap refits",
        "evaluation",
        "registering",
    ]
    assert_monotonic_to_one(heard)
    assert heard[-1].detail == f"version {outcome.version.pk}"


def test_a_next_action_version_trains_through_snapshots_the_engine_and_registering(
    generated_members,
):
    heard: list[ProgressEvent] = []

    outcome = train_next_action_version(cutoff=CUTOFF, progress=heard.append)

    assert stages_in_order(heard) == [
        "loading data",
        "features",
        "labels",
        "joining labels",
        "fitting",
        "calibration",
        "evaluation",
        "registering",
    ]
    assert_monotonic_to_one(heard)
    snapshots = len(outcome.version.training_cutoffs)
    features = [event.done for event in heard if event.stage == "features" and event.done]
    assert features == list(range(1, snapshots + 1))


def test_train_json_keeps_stdout_one_json_object_while_stages_go_to_stderr(generated_members):
    out, err = StringIO(), StringIO()

    call_command("train", "--kind", "next_action", "--json", stdout=out, stderr=err)

    report = json.loads(out.getvalue())
    assert ModelVersion.objects.get(pk=report["version"]).kind == "next_action"
    lines = err.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "loading data",
        "features",
        "labels",
        "joining labels",
        "fitting",
        "calibration",
        "evaluation",
        "registering",
    ]
    assert lines[0].startswith("[  0% 0:")


@pytest.mark.parametrize("quiet", [["--no-progress"], ["--verbosity", "0"]])
def test_no_progress_or_verbosity_0_trains_silently(generated_members, quiet):
    out, err = StringIO(), StringIO()

    call_command("train", "--kind", "next_action", "--json", *quiet, stdout=out, stderr=err)

    assert json.loads(out.getvalue())["version"] == ModelVersion.objects.get().pk
    assert err.getvalue() == ""


def test_bootstrap_names_the_kind_before_each_stage(generated_members):
    err = StringIO()

    call_command("bootstrap_models", stdout=StringIO(), stderr=err)

    stages = [line.split("] ", 1)[1] for line in err.getvalue().splitlines() if "] " in line]
    assert stages[0] == "churn: loading data"
    assert "next_action: loading data" in stages
    assert stages.index("churn: registering") < stages.index("next_action: loading data")


def test_a_terminal_gets_a_line_per_stage_and_a_bar_while_a_stage_counts_steps(capsys):
    lines: list[str] = []
    clock = iter([0.0, 0.0, 0.0, 75.0]).__next__  # started, then each line
    progress = TrainingProgress(lines.append, bars=True, clock=clock)

    progress(ProgressEvent(stage="loading data", fraction=0.0))
    progress(ProgressEvent(stage="features", fraction=0.5, done=0, total=4))
    progress(ProgressEvent(stage="features", fraction=0.6, done=1, total=4, detail="cutoff 1"))
    progress(ProgressEvent(stage="registering", fraction=0.9))
    progress.close()

    assert lines == ["[  0% 0:00] loading data", "[ 50% 0:00] features", "[ 90% 1:15] registering"]
    assert "features" in capsys.readouterr().err  # the bar, on the real stderr
