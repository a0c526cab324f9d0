//! Every scheduling decision of the engine, without root, processes or files.

use super::*;
use crate::engine::state::{StepRecord, TargetRecord, TargetState};
use crate::recipe::Phase;

const X86: &str = "x86_64-unknown-linux-musl";
const ARM: &str = "aarch64-unknown-linux-musl";

fn t(tuple: &str, name: &str) -> Target {
    Target::new(tuple, name).unwrap()
}

/// The demo's shape: a primary (x86 a) whose `crossdev` announces both tuples, a second x86
/// target b, and an aarch64 target c.
fn engine() -> Engine {
    engine_with(|_| {})
}

/// [`engine`] with its checkpoint edited by `edit` first (a resumed run's).
fn engine_with(edit: impl FnOnce(&mut Checkpoint)) -> Engine {
    let primary_steps = vec![
        ("host-sync".to_string(), vec![]),
        (
            "crossdev".to_string(),
            vec![X86.to_string(), ARM.to_string()],
        ),
        ("target-env".to_string(), vec![]),
    ];
    let target_steps = vec![
        ("target-env".to_string(), vec![]),
        ("collect".to_string(), vec![]),
    ];
    let infos = vec![
        TargetInfo {
            target: t(X86, "a"),
            steps: primary_steps,
            log: "a.log".into(),
        },
        TargetInfo {
            target: t(X86, "b"),
            steps: target_steps.clone(),
            log: "b.log".into(),
        },
        TargetInfo {
            target: t(ARM, "c"),
            steps: target_steps,
            log: "c.log".into(),
        },
    ];
    let cp = Checkpoint {
        run_id: "a-1".into(),
        distcc_hosts: None,
        run_steps: vec![StepRecord::new("mounts", None)],
        toolchain_ready: Vec::new(),
        targets: infos
            .iter()
            .enumerate()
            .map(|(i, info)| TargetRecord {
                target: info.target.clone(),
                steps: info
                    .steps
                    .iter()
                    .map(|(n, _)| {
                        let phase = if i == 0 && n != "target-env" {
                            Phase::Primary
                        } else {
                            Phase::Target
                        };
                        StepRecord::new(n, Some(phase))
                    })
                    .collect(),
            })
            .collect(),
        finished: false,
    };
    let mut cp = cp;
    edit(&mut cp);
    Engine::from_parts(infos, cp)
}

fn sends(actions: &[Action]) -> Vec<(String, SupervisorMsg)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(t, m) => Some((t.name.clone(), m.clone())),
            _ => None,
        })
        .collect()
}

fn start(steps: &[&str]) -> SupervisorMsg {
    SupervisorMsg::Start {
        steps: steps.iter().map(|s| s.to_string()).collect(),
    }
}

/// Starts all workers and has them say hello; returns the engine.
fn connected() -> Engine {
    let mut e = engine();
    let started = e.start();
    let (a, b, c) = (t(X86, "a"), t(X86, "b"), t(ARM, "c"));
    // The waiting environments are prepared before any worker starts; never the primary's.
    assert_eq!(
        started,
        [
            Action::PrepareMount(b.clone()),
            Action::PrepareMount(c.clone()),
            Action::StartWorker(a),
            Action::StartWorker(b),
            Action::StartWorker(c)
        ]
    );
    let a = e.input(Input::Hello(t(X86, "a")));
    assert_eq!(
        sends(&a),
        [("a".into(), start(&["host-sync", "crossdev", "target-env"]))]
    );
    assert!(sends(&e.input(Input::Hello(t(X86, "b")))).is_empty());
    assert!(sends(&e.input(Input::Hello(t(ARM, "c")))).is_empty());
    e
}

/// `target`'s worker exits with `code` and its connection closes: the actions of both.
fn gone(e: &mut Engine, target: &Target, code: i32) -> Vec<Action> {
    let mut actions = e.input(Input::WorkerExited {
        target: target.clone(),
        code,
    });
    actions.extend(e.input(Input::Disconnected(Some(target.clone()))));
    actions
}

fn run_step(e: &mut Engine, target: &Target, step: &str) -> Vec<Action> {
    e.input(Input::StepStarted {
        target: target.clone(),
        step: step.into(),
        now_us: 1,
    })
}

#[test]
fn waiting_targets_are_mounted_then_started_on_toolchain_ready() {
    let mut e = connected();
    let a = t(X86, "a");
    run_step(&mut e, &a, "crossdev");
    let actions = e.input(Input::ToolchainReady {
        target: a.clone(),
        tuple: ARM.into(),
    });
    assert!(actions.contains(&Action::SaveCheckpoint));
    assert!(actions.contains(&Action::Mount(t(ARM, "c"))), "{actions:?}");
    assert!(!actions.contains(&Action::Mount(t(X86, "b"))));
    let actions = e.input(Input::Mounted {
        target: t(ARM, "c"),
        result: Ok(()),
    });
    assert_eq!(
        sends(&actions),
        [("c".into(), start(&["target-env", "collect"]))]
    );
    // Announced twice: nothing new.
    let again = e.input(Input::ToolchainReady {
        target: a,
        tuple: ARM.into(),
    });
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_failed_mount_stops_the_waiting_worker_and_says_why() {
    let mut e = connected();
    let a = t(X86, "a");
    run_step(&mut e, &a, "crossdev");
    e.input(Input::ToolchainReady {
        target: a,
        tuple: X86.into(),
    });
    let actions = e.input(Input::Mounted {
        target: t(X86, "b"),
        result: Err("EBUSY".into()),
    });
    assert_eq!(sends(&actions), [("b".into(), SupervisorMsg::Stop)]);
    assert!(matches!(&actions[0], Action::Say(m) if m.contains("EBUSY")));
}

#[test]
fn only_the_running_step_the_plan_names_may_announce_a_tuple() {
    let mut e = connected();
    let a = t(X86, "a");
    let b = t(X86, "b");
    // No step running.
    let actions = e.input(Input::ToolchainReady {
        target: a.clone(),
        tuple: ARM.into(),
    });
    assert!(matches!(&actions[..], [Action::Say(m)] if m.contains("ignored")));
    // The wrong step (host-sync announces nothing).
    run_step(&mut e, &a, "host-sync");
    let actions = e.input(Input::ToolchainReady {
        target: a.clone(),
        tuple: ARM.into(),
    });
    assert!(matches!(&actions[..], [Action::Say(m)] if m.contains("host-sync")));
    // Another target's step.
    let actions = e.input(Input::ToolchainReady {
        target: b,
        tuple: ARM.into(),
    });
    assert!(matches!(&actions[..], [Action::Say(_)]));
    // A tuple the step does not announce.
    e.input(Input::StepFinished {
        target: a.clone(),
        step: "host-sync".into(),
        exit_code: 0,
        duration_ms: 1,
        cost: None,
    });
    run_step(&mut e, &a, "crossdev");
    let actions = e.input(Input::ToolchainReady {
        target: a,
        tuple: "riscv64-unknown-linux-musl".into(),
    });
    assert!(matches!(&actions[..], [Action::Say(_)]));
    assert!(e.checkpoint().toolchain_ready.is_empty());
}

#[test]
fn the_sync_lock_goes_in_the_order_asked_and_a_gone_holder_passes_it_on() {
    let mut e = connected();
    let (a, b, c) = (t(X86, "a"), t(X86, "b"), t(ARM, "c"));
    let granted = |acts: &[Action]| -> Vec<String> {
        sends(acts)
            .into_iter()
            .filter(|(_, m)| *m == SupervisorMsg::SyncGranted)
            .map(|(t, _)| t)
            .collect()
    };
    assert_eq!(granted(&e.input(Input::AcquireSync(b.clone()))), ["b"]);
    assert!(granted(&e.input(Input::AcquireSync(c.clone()))).is_empty());
    assert!(granted(&e.input(Input::AcquireSync(a.clone()))).is_empty());
    // A release by a worker that does not hold it changes nothing.
    assert!(granted(&e.input(Input::ReleaseSync(a.clone()))).is_empty());
    assert_eq!(granted(&e.input(Input::ReleaseSync(b))), ["c"]);
    // The holder dies: the next in line gets it.
    let actions = gone(&mut e, &c, 137);
    assert_eq!(granted(&actions), ["a"]);
}

#[test]
fn a_worker_gone_mid_step_interrupts_it_and_kills_what_it_left() {
    let mut e = connected();
    let a = t(X86, "a");
    run_step(&mut e, &a, "host-sync");
    let actions = gone(&mut e, &a, 137);
    assert_eq!(actions[0], Action::WorkerGone(a.clone()));
    assert_eq!(actions[1], Action::KillLeftovers(a.clone()));
    assert!(actions.contains(&Action::SaveCheckpoint));
    let rec = e.checkpoint().target(&a).unwrap();
    assert_eq!(rec.steps[0].state, StepState::Interrupted);
    // The primary is gone before any toolchain: the waiting workers are told to stop.
    let stopped: Vec<String> = sends(&actions).into_iter().map(|(t, _)| t).collect();
    assert_eq!(stopped, ["b", "c"]);
}

#[test]
fn retry_resets_the_target_and_sends_its_steps_again() {
    let mut e = connected();
    let a = t(X86, "a");
    run_step(&mut e, &a, "host-sync");
    e.input(Input::StepFinished {
        target: a.clone(),
        step: "host-sync".into(),
        exit_code: 1,
        duration_ms: 1,
        cost: None,
    });
    let actions = e.input(Input::Retry(a));
    assert_eq!(
        sends(&actions),
        [("a".into(), start(&["host-sync", "crossdev", "target-env"]))]
    );
}

#[test]
fn a_failed_step_records_where_its_log_is() {
    let mut e = connected();
    let a = t(X86, "a");
    run_step(&mut e, &a, "host-sync");
    let actions = e.input(Input::StepFinished {
        target: a,
        step: "host-sync".into(),
        exit_code: 2,
        duration_ms: 1,
        cost: None,
    });
    assert!(actions.iter().any(|x| matches!(x,
        Action::Event(Event::StepFailed { log, exit_code: 2, .. }) if log == "a.log")));
}

#[test]
fn stop_before_the_steps_starts_nothing() {
    let mut e = engine();
    assert_eq!(e.input(Input::Stop), [Action::SignalWorkers]);
    assert!(e.start().is_empty());
}

#[test]
fn stop_during_the_steps_signals_once_and_releases_no_one() {
    let mut e = connected();
    let a = t(X86, "a");
    run_step(&mut e, &a, "crossdev");
    let actions = e.input(Input::Stop);
    assert_eq!(actions[0], Action::SignalWorkers);
    // The waiting workers are told to stop, and a toolchain announced now releases no one.
    let stopped: Vec<String> = sends(&actions).into_iter().map(|(t, _)| t).collect();
    assert_eq!(stopped, ["b", "c"]);
    assert!(e.input(Input::Stop).is_empty());
    let actions = e.input(Input::ToolchainReady {
        target: a,
        tuple: ARM.into(),
    });
    assert!(!actions.iter().any(|x| matches!(x, Action::Mount(_))));
    // A mount that completes after the stop does not start its worker.
    let actions = e.input(Input::Mounted {
        target: t(ARM, "c"),
        result: Ok(()),
    });
    assert_eq!(sends(&actions), [("c".into(), SupervisorMsg::Stop)]);
}

#[test]
fn a_resumed_run_starts_only_targets_with_steps_left_from_their_first_step_not_done() {
    let a = t(X86, "a");
    let b = t(X86, "b");
    let mut e = engine_with(|cp| {
        for s in ["host-sync", "crossdev", "target-env"] {
            cp.step_started(&a, s, 1);
            cp.step_finished(&a, s, 0, 1, None);
        }
        cp.step_started(&b, "target-env", 1);
        cp.step_finished(&b, "target-env", 0, 1, None);
        cp.step_started(&b, "collect", 1);
        cp.restore();
    });
    let started = e.start();
    assert_eq!(
        started,
        [
            Action::PrepareMount(b.clone()),
            Action::PrepareMount(t(ARM, "c")),
            Action::StartWorker(b.clone()),
            Action::StartWorker(t(ARM, "c"))
        ]
    );
    // The primary phase is done: the tuples are ready without a new announcement.
    assert_eq!(e.input(Input::Hello(b.clone())), [Action::Mount(b.clone())]);
    let actions = e.input(Input::Mounted {
        target: b,
        result: Ok(()),
    });
    assert_eq!(sends(&actions), [("b".into(), start(&["collect"]))]);
}

#[test]
fn a_waiting_rescue_shell_is_recorded_then_ends_with_the_decision() {
    let mut e = connected();
    let a = t(X86, "a");
    let waiting = |e: &mut Engine, now_us| {
        e.input(Input::RescueWaiting {
            target: a.clone(),
            step: "host-sync".into(),
            now_us,
        })
    };
    // Not failed (yet): nothing is recorded.
    run_step(&mut e, &a, "host-sync");
    let early = waiting(&mut e, 5);
    assert!(
        matches!(early.as_slice(), [Action::Say(m)] if m.contains("ignored")),
        "{early:?}"
    );
    e.input(Input::StepFinished {
        target: a.clone(),
        step: "host-sync".into(),
        exit_code: 1,
        duration_ms: 3,
        cost: None,
    });
    let actions = waiting(&mut e, 7);
    assert_eq!(
        actions,
        [
            Action::SaveCheckpoint,
            Action::Event(Event::RescueWaiting {
                target: a.to_string(),
                step: "host-sync".into(),
            }),
            Action::Notify(format!("{a}: host-sync failed, rescue shell waiting")),
        ]
    );
    let state = |e: &Engine| e.checkpoint().target(&a).unwrap().state();
    assert_eq!(state(&e), TargetState::RescueWaiting { since_us: 7 });
    // Resume: the step runs again.
    let mut resumed = e.clone();
    run_step(&mut resumed, &a, "host-sync");
    assert_eq!(state(&resumed), TargetState::Running);
    // Retry: the target starts over.
    let mut retried = e.clone();
    retried.input(Input::Retry(a.clone()));
    assert_eq!(
        retried.checkpoint().target(&a).unwrap().rescue_waiting(),
        None
    );
    // Abort: the worker is gone, the step stays failed and nothing waits.
    let mut aborted = e.clone();
    gone(&mut aborted, &a, 1);
    assert_eq!(state(&aborted), TargetState::Failed);
}

#[test]
fn a_worker_is_gone_once_it_exited_and_its_connection_closed_and_no_stranger_is_pending() {
    let mut e = connected();
    let a = t(X86, "a");
    let is_gone = |actions: &[Action]| actions.contains(&Action::WorkerGone(a.clone()));
    // A connection that has not said whose it is may be a's last: not gone yet.
    e.input(Input::Connected);
    let exited = e.input(Input::WorkerExited {
        target: a.clone(),
        code: 0,
    });
    assert!(!is_gone(&exited), "its connection is open: {exited:?}");
    assert!(!is_gone(&e.input(Input::Disconnected(Some(a.clone())))));
    // The stranger closes without a hello: now a is gone, once.
    let closed = e.input(Input::Disconnected(None));
    assert!(is_gone(&closed), "{closed:?}");
    assert!(closed.contains(&Action::KillLeftovers(a.clone())));
    assert!(!is_gone(&e.input(Input::Disconnected(None))));
    // A worker that never connected is gone as soon as it exited.
    let b = t(X86, "b");
    let mut fresh = engine();
    fresh.start();
    let actions = fresh.input(Input::WorkerExited {
        target: b.clone(),
        code: 1,
    });
    assert_eq!(actions[0], Action::WorkerGone(b));
}

#[test]
fn a_failure_is_notified_once_when_its_rescue_shell_waits_or_when_nobody_watches() {
    let a = t(X86, "a");
    let fail = |e: &mut Engine| {
        run_step(e, &a, "host-sync");
        e.input(Input::StepFinished {
            target: a.clone(),
            step: "host-sync".into(),
            exit_code: 1,
            duration_ms: 5,
            cost: None,
        })
    };
    let notified = |actions: &[Action]| -> Vec<String> {
        actions
            .iter()
            .filter_map(|x| match x {
                Action::Notify(title) => Some(title.clone()),
                _ => None,
            })
            .collect()
    };
    // Nobody watches: the failure itself, after the event its notification carries.
    let mut plain = connected();
    let actions = fail(&mut plain);
    let at = actions
        .iter()
        .position(|x| matches!(x, Action::Notify(_)))
        .expect("notified");
    assert!(matches!(
        actions[at - 1],
        Action::Event(Event::StepFailed { .. })
    ));
    assert_eq!(
        notified(&actions),
        ["x86_64-unknown-linux-musl.a: host-sync failed"]
    );
    // Watched: nothing at the failure, one word when the rescue shell waits.
    let mut watched = connected().watched(true);
    assert!(notified(&fail(&mut watched)).is_empty());
    let waiting = watched.input(Input::RescueWaiting {
        target: a.clone(),
        step: "host-sync".into(),
        now_us: 9,
    });
    assert_eq!(
        notified(&waiting),
        ["x86_64-unknown-linux-musl.a: host-sync failed, rescue shell waiting"]
    );
}

#[test]
fn run_steps_and_the_end_are_recorded_saved_and_logged() {
    let mut e = engine();
    let actions = e.input(Input::RunStep {
        name: crate::engine::run::MOUNTS,
        state: StepState::RUN_STEP_DONE,
        now_us: 7,
    });
    assert_eq!(
        actions,
        [
            Action::SaveCheckpoint,
            Action::Event(Event::RunStep {
                step: "mounts".into(),
                state: "done".into()
            })
        ]
    );
    assert_eq!(
        e.checkpoint().run_step("mounts").map(|s| s.state),
        Some(StepState::RUN_STEP_DONE)
    );
    assert_eq!(e.input(Input::Finished), [Action::SaveCheckpoint]);
    assert!(e.checkpoint().finished);
}

#[test]
fn each_worker_has_one_typed_state_through_its_life() {
    let mut e = engine();
    let b = t(X86, "b");
    assert_eq!(e.worker(&b), Worker::Idle);
    e.start();
    let live = |stage, connections, exited| Worker::Live {
        stage,
        connections,
        exited,
    };
    assert_eq!(e.worker(&b), live(Stage::Started, 0, None));
    e.input(Input::Hello(b.clone()));
    assert_eq!(e.worker(&b), live(Stage::Waiting, 1, None));
    // Its toolchain comes with the primary's crossdev: its mount is asked for.
    let a = t(X86, "a");
    e.input(Input::Hello(a.clone()));
    run_step(&mut e, &a, "crossdev");
    let actions = e.input(Input::ToolchainReady {
        target: a.clone(),
        tuple: X86.into(),
    });
    assert!(actions.contains(&Action::Mount(b.clone())), "{actions:?}");
    assert_eq!(e.worker(&b), live(Stage::Released, 1, None));
    e.input(Input::WorkerExited {
        target: b.clone(),
        code: 0,
    });
    assert_eq!(e.worker(&b), live(Stage::Released, 1, Some(0)));
    assert!(e.any_running());
    e.input(Input::Disconnected(Some(b.clone())));
    assert_eq!(e.worker(&b), Worker::Gone { code: 0 });
}
