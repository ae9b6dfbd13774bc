"""Run a study: data once, then each arm x seed trained and evaluated, the report rewritten as they finish."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from mstkd.errors import MSTKDError
from mstkd.study.arms import Say, arm_experiment, evaluate_arm, train_arm
from mstkd.study.config import StudyConfig
from mstkd.study.data import prepare_data
from mstkd.study.folder import StudyFolder
from mstkd.study.report import write_report


def run_study(
    study: StudyConfig,
    out: Path,
    command: str,
    arms: Optional[Sequence[str]] = None,
    report_only: bool = False,
    say: Say = print,
) -> Optional[Dict[str, Path]]:
    """Train and evaluate the chosen arms (default all), seed by seed; None when a stop signal ended it."""
    chosen = list(arms or study.arms)
    unknown = [arm for arm in chosen if arm not in study.arms]
    if unknown:
        raise MSTKDError(
            f"No arm named {', '.join(unknown)} in the study; its arms are {', '.join(study.arms)}."
        )
    folder = StudyFolder(Path(out))
    folder.check_usable()
    if not report_only:
        cases = prepare_data(study, folder.root)
        # Seed by seed, so that a study stopped early has every arm at its first seeds.
        for seed in study.seeds:
            for arm in chosen:
                run = folder.run(arm, seed)
                if not train_arm(arm_experiment(study, cases, arm, seed), run, say):
                    say(f"Stopped in {run}; run the same command again to continue.")
                    return None
                for test, test_cases in cases.tests.items():
                    evaluation = folder.evaluation(study.evaluation.convention, test, arm, seed)
                    evaluate_arm(study, run, test, test_cases, evaluation, say)
                write_report(study, folder, command, with_figures=False)  # partial results, quickly
    return write_report(study, folder, command)
