//! Property test of the derived target state: workers' step events arrive interleaved in any
//! order across targets, and `failed` shows only while a step of that target has failed.

use proptest::prelude::*;

use super::*;
use crate::config::Target;

/// What one target's worker does next.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Start its next step, or end the running one with this exit code.
    Advance(i32),
    /// Its rescue shell opens on the failed step.
    Rescue,
    /// Its worker ends (killed, stopped, or aborted from the rescue shell).
    Exit,
    /// The rescue flow's resume: the failed step starts again.
    Resume,
    /// The rescue flow's retry of the target.
    Retry,
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => prop_oneof![Just(0), Just(0), Just(0), Just(1), Just(130)].prop_map(Act::Advance),
        1 => Just(Act::Rescue),
        1 => Just(Act::Exit),
        1 => Just(Act::Resume),
        1 => Just(Act::Retry),
    ]
}

fn checkpoint() -> Checkpoint {
    let targets = ["a", "b", "c"]
        .iter()
        .map(|n| TargetRecord {
            target: Target::new("aarch64-unknown-linux-musl", n).unwrap(),
            steps: ["target-env", "world", "collect"]
                .iter()
                .map(|s| StepRecord::new(s, Some(Phase::Target)))
                .collect(),
        })
        .collect();
    Checkpoint {
        run_id: "p-1".into(),
        run_steps: Vec::new(),
        toolchain_ready: Vec::new(),
        targets,
        distcc_hosts: None,
        finished: false,
    }
}

/// What the model knows of one target: its worker's next step, the running one, and the
/// step that failed (until it starts again or the target is reset).
#[derive(Debug, Default, Clone)]
struct Model {
    next: usize,
    running: Option<usize>,
    failed: Option<usize>,
    gone: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn failed_shows_only_after_a_step_failed(
        events in proptest::collection::vec((0usize..3, act()), 0..80)
    ) {
        let mut cp = checkpoint();
        let mut models = vec![Model::default(); 3];
        for (now, (i, a)) in events.into_iter().enumerate() {
            let target = cp.targets[i].target.clone();
            let m = &mut models[i];
            let steps: Vec<String> = cp.targets[i].steps.iter().map(|s| s.name.clone()).collect();
            match a {
                Act::Advance(code) if !m.gone => match m.running {
                    Some(s) => {
                        cp.step_finished(&target, &steps[s], code, 1, None);
                        m.running = None;
                        if code == 0 {
                            m.next = s + 1;
                        } else {
                            m.failed = Some(s);
                            m.gone = true;
                        }
                    }
                    None if m.next < steps.len() => {
                        cp.step_started(&target, &steps[m.next], now as u64);
                        m.running = Some(m.next);
                    }
                    None => {}
                },
                Act::Advance(_) => {}
                Act::Rescue => {
                    if let Some(s) = m.failed {
                        prop_assert!(cp.rescue_waiting(&target, &steps[s], now as u64));
                    }
                }
                Act::Exit => {
                    cp.worker_exited(&target);
                    m.running = None;
                    m.gone = true;
                }
                Act::Resume => {
                    if let Some(s) = m.failed.take() {
                        cp.step_started(&target, &steps[s], now as u64);
                        m.running = Some(s);
                        m.gone = false;
                    }
                }
                Act::Retry => {
                    cp.reset_target(&target);
                    *m = Model::default();
                }
            }
            for (t, m) in cp.targets.iter().zip(&models) {
                let state = t.state();
                let failed = matches!(state, TargetState::Failed | TargetState::RescueWaiting { .. });
                prop_assert_eq!(
                    failed,
                    m.failed.is_some(),
                    "{} is {:?} with {:?}", t.target, state, m
                );
                if m.running.is_some() {
                    prop_assert_eq!(state, TargetState::Running);
                }
            }
        }
    }
}
