//! Every phase decision of the run, without root, mounts, network or files: stop during each
//! phase, each phase failing, resume from each phase.

use super::*;
use RunAction::*;

fn first_build() -> Run {
    Run::new(Start {
        first_build: true,
        stage3_done: false,
    })
}

fn tarball() -> PathBuf {
    PathBuf::from("/tree/distfiles/stage3.tar.xz")
}

/// Drives a fresh first build up to (and into) `phase`; returns the machine.
fn at(phase: Phase) -> Run {
    let mut run = first_build();
    run.begin();
    let steps = [
        (Phase::Download, RunInput::Fetched(tarball())),
        (
            Phase::BaseMounts,
            RunInput::BaseMounted {
                root_present: false,
            },
        ),
        (Phase::Extraction, RunInput::Extracted),
        (Phase::PrimaryMounts, RunInput::PrimaryMounted),
        (Phase::Steps, RunInput::StepsEnded { all_done: true }),
    ];
    for (p, input) in steps {
        if p == phase {
            break;
        }
        run.input(input);
    }
    assert_eq!(run.phase(), Some(phase));
    run
}

fn interrupted(phase: Phase) -> Outcome {
    Outcome::Interrupted {
        why: "interrupted".into(),
        phase,
    }
}

/// The tail every ending has: summary, teardown (exactly once), end.
fn ending(outcome: Outcome) -> Vec<RunAction> {
    vec![Summary(outcome.clone()), TearDown, End(outcome)]
}

fn with_ending(mut head: Vec<RunAction>, outcome: Outcome) -> Vec<RunAction> {
    head.extend(ending(outcome));
    head
}

#[test]
fn a_first_build_runs_every_phase_in_order_and_ends_done() {
    let mut run = first_build();
    assert_eq!(
        run.begin(),
        vec![SetRunStep(STAGE3, StepState::Running), FetchStage3]
    );
    assert_eq!(
        run.input(RunInput::Fetched(tarball())),
        vec![SetRunStep(MOUNTS, StepState::Running), MountBase]
    );
    assert_eq!(
        run.input(RunInput::BaseMounted {
            root_present: false
        }),
        vec![Extract(tarball())]
    );
    assert_eq!(
        run.input(RunInput::Extracted),
        vec![SetRunStep(STAGE3, StepState::RUN_STEP_DONE), MountPrimary]
    );
    assert_eq!(
        run.input(RunInput::PrimaryMounted),
        vec![SetRunStep(MOUNTS, StepState::RUN_STEP_DONE), StartSteps]
    );
    assert_eq!(
        run.input(RunInput::StepsEnded { all_done: true }),
        vec![SetRunStep(ARCHIVE, StepState::Running), Archive]
    );
    let h = PathBuf::from("/tree/history/2026-11-30.sqfs");
    assert_eq!(
        run.input(RunInput::Archived(h)),
        with_ending(
            vec![
                SetRunStep(ARCHIVE, StepState::RUN_STEP_DONE),
                MarkFinished,
                Say("history saved as /tree/history/2026-11-30.sqfs".into()),
            ],
            Outcome::Done
        )
    );
    assert_eq!(run.state(), &RunState::Ended(Outcome::Done));
    assert_eq!(Outcome::Done.exit_code(), 0);
}

#[test]
fn an_update_mounts_its_history_and_never_fetches_a_stage3() {
    let mut run = Run::new(Start {
        first_build: false,
        stage3_done: false,
    });
    assert_eq!(
        run.begin(),
        vec![SetRunStep(MOUNTS, StepState::Running), MountBase]
    );
    assert_eq!(
        run.input(RunInput::BaseMounted { root_present: true }),
        vec![MountPrimary]
    );
}

#[test]
fn a_stop_in_each_phase_before_the_steps_interrupts_its_running_run_steps() {
    let cases = [
        (Phase::Download, vec![STAGE3]),
        // The stage3 stays unfinished until extracted: both run steps are running.
        (Phase::BaseMounts, vec![STAGE3, MOUNTS]),
        (Phase::Extraction, vec![STAGE3, MOUNTS]),
        (Phase::PrimaryMounts, vec![MOUNTS]),
    ];
    for (phase, steps) in cases {
        let mut run = at(phase);
        let got = run.input(RunInput::Stop("interrupted".into()));
        let mut head: Vec<RunAction> = steps
            .iter()
            .map(|s| SetRunStep(s, StepState::Interrupted))
            .collect();
        // The work in flight stops (an extraction removes its partial root, the mounts stop
        // between two mounts) before anything else, and so before teardown.
        match phase {
            Phase::Extraction => head.insert(0, StopExtraction),
            Phase::BaseMounts | Phase::PrimaryMounts => head.insert(0, StopMounting),
            _ => {}
        }
        assert_eq!(
            got,
            with_ending(head, interrupted(phase)),
            "stop during {phase:?}"
        );
        assert_eq!(run.state(), &RunState::Ended(interrupted(phase)));
        assert_eq!(interrupted(phase).exit_code(), 130);
        // A late answer of the abandoned phase changes nothing.
        assert!(run.input(RunInput::Extracted).is_empty());
        assert!(run.input(RunInput::Stop("terminated".into())).is_empty());
    }
}

#[test]
fn a_stop_during_the_steps_stops_the_workers_then_ends_interrupted_without_archive() {
    let mut run = at(Phase::Steps);
    assert_eq!(
        run.input(RunInput::Stop("terminated".into())),
        vec![StopWorkers]
    );
    // A second signal while the workers stop: the first reason stands, nothing is repeated.
    assert!(run.input(RunInput::Stop("interrupted".into())).is_empty());
    let outcome = Outcome::Interrupted {
        why: "terminated".into(),
        phase: Phase::Steps,
    };
    // Even with every step done, a stopped run is not archived.
    assert_eq!(
        run.input(RunInput::StepsEnded { all_done: true }),
        ending(outcome)
    );
}

#[test]
fn a_stop_during_the_archive_stops_the_archiver_first_and_leaves_it_resumable() {
    let mut run = at(Phase::Archive);
    assert_eq!(
        run.input(RunInput::Stop("interrupted".into())),
        with_ending(
            vec![StopArchiver, SetRunStep(ARCHIVE, StepState::Interrupted)],
            interrupted(Phase::Archive)
        )
    );
    // The archiver's late answer does not finish the run.
    assert!(run
        .input(RunInput::Archived(PathBuf::from("/h/x.sqfs")))
        .is_empty());
}

#[test]
fn a_failing_phase_fails_its_run_steps_and_exits_by_the_kind_of_failure() {
    for phase in [
        Phase::Download,
        Phase::BaseMounts,
        Phase::Extraction,
        Phase::PrimaryMounts,
    ] {
        for failure in [
            Failure::Environment("no route to host".into()),
            Failure::BadInput("digest mismatch".into()),
        ] {
            let mut run = at(phase);
            let got = run.input(RunInput::Failed(failure.clone()));
            let outcome = Outcome::Failed {
                phase,
                failure: failure.clone(),
            };
            let code = outcome.exit_code();
            assert!(got.contains(&TearDown), "{phase:?}");
            assert!(!got.contains(&StartSteps) && !got.contains(&Archive));
            assert_eq!(got.last(), Some(&End(outcome)));
            assert!(got
                .iter()
                .filter(|a| matches!(a, SetRunStep(..)))
                .all(|a| matches!(a, SetRunStep(_, StepState::RUN_STEP_FAILED))));
            let want = if matches!(failure, Failure::BadInput(_)) {
                2
            } else {
                1
            };
            assert_eq!(code, want, "{phase:?} {failure:?}");
        }
    }
}

#[test]
fn the_download_failing_mounts_nothing() {
    let mut run = at(Phase::Download);
    let got = run.input(RunInput::Failed(Failure::Environment("timeout".into())));
    assert!(!got.iter().any(|a| matches!(a, MountBase | MountPrimary)));
    assert_eq!(got[0], SetRunStep(STAGE3, StepState::RUN_STEP_FAILED));
}

#[test]
fn failing_steps_end_the_run_failed_without_archive() {
    let mut run = at(Phase::Steps);
    assert_eq!(
        run.input(RunInput::StepsEnded { all_done: false }),
        ending(Outcome::StepsFailed)
    );
    assert_eq!(Outcome::StepsFailed.exit_code(), 1);
}

#[test]
fn a_checkpoint_failure_during_the_steps_stops_the_workers_and_exits_1() {
    let mut run = at(Phase::Steps);
    let failure = Failure::Environment("cannot write checkpoint.json: no space".into());
    assert_eq!(
        run.input(RunInput::Failed(failure.clone())),
        vec![StopWorkers]
    );
    let outcome = Outcome::Failed {
        phase: Phase::Steps,
        failure,
    };
    assert_eq!(
        run.input(RunInput::StepsEnded { all_done: false }),
        ending(outcome.clone())
    );
    assert_eq!(outcome.exit_code(), 1);
}

#[test]
fn a_failing_archive_removes_its_partial_output_and_exits_1() {
    let mut run = at(Phase::Archive);
    let got = run.input(RunInput::Failed(Failure::Environment(
        "mksquashfs: exit 1".into(),
    )));
    let outcome = Outcome::ArchiveFailed("mksquashfs: exit 1".into());
    assert_eq!(
        got,
        with_ending(
            vec![
                StopArchiver,
                SetRunStep(ARCHIVE, StepState::RUN_STEP_FAILED)
            ],
            outcome.clone()
        )
    );
    assert_eq!(outcome.exit_code(), 1);
    assert_eq!(outcome.word(), "failed");
}

#[test]
fn resume_after_the_stage3_is_done_starts_at_the_mounts() {
    let mut run = Run::new(Start {
        first_build: true,
        stage3_done: true,
    });
    assert_eq!(
        run.begin(),
        vec![SetRunStep(MOUNTS, StepState::Running), MountBase]
    );
    // The environment kept by the base (a bind base) is used as it is.
    assert_eq!(
        run.input(RunInput::BaseMounted { root_present: true }),
        vec![MountPrimary]
    );
    assert_eq!(
        run.input(RunInput::PrimaryMounted),
        vec![SetRunStep(MOUNTS, StepState::RUN_STEP_DONE), StartSteps]
    );
}

#[test]
fn resume_of_a_first_build_whose_environment_is_gone_fails_and_says_start_a_new_run() {
    let mut run = Run::new(Start {
        first_build: true,
        stage3_done: true,
    });
    run.begin();
    let got = run.input(RunInput::BaseMounted {
        root_present: false,
    });
    let Some(End(Outcome::Failed { phase, failure })) = got.last() else {
        panic!("{got:?}");
    };
    assert_eq!(*phase, Phase::BaseMounts);
    assert!(failure.message().contains("start a new run"));
    assert_eq!(got[0], SetRunStep(MOUNTS, StepState::RUN_STEP_FAILED));
}

#[test]
fn resume_of_an_interrupted_download_or_extraction_fetches_again() {
    // stage3 interrupted (download or extraction): not done, so it is fetched (a kept,
    // verified tarball is reused by the fetch) and extracted again.
    let mut run = first_build();
    assert_eq!(run.begin()[1], FetchStage3);
}

#[test]
fn resume_with_every_step_done_goes_straight_to_the_archive() {
    // An interrupted archive: the steps phase starts no worker and ends at once.
    let mut run = Run::new(Start {
        first_build: false,
        stage3_done: false,
    });
    run.begin();
    run.input(RunInput::BaseMounted { root_present: true });
    run.input(RunInput::PrimaryMounted);
    assert_eq!(
        run.input(RunInput::StepsEnded { all_done: true }),
        vec![SetRunStep(ARCHIVE, StepState::Running), Archive]
    );
}

#[test]
fn begin_twice_does_nothing_the_second_time() {
    let mut run = first_build();
    run.begin();
    assert!(run.begin().is_empty());
}

#[test]
fn the_phase_words_match_the_messages_users_see() {
    assert_eq!(
        Phase::Download.words(),
        "the stage3 download and verification"
    );
    assert_eq!(Phase::Extraction.words(), "the stage3 extraction");
    assert_eq!(Phase::BaseMounts.words(), "the mounts");
    assert_eq!(Phase::PrimaryMounts.words(), "the mounts");
    assert_eq!(Phase::Archive.words(), "the archive");
}
