//! The restart planner: OTP's rules as a pure function.
//!
//! Given a strategy, the children (their restart types and whether they are
//! running) and which child exited how, it says which siblings to stop (in
//! reverse start order), which specs to forget and which children to start
//! (in start order). It knows nothing of processes or wasm, so OTP's table
//! is tested here directly; the supervisor loop (server.rs) carries a plan
//! out. Restart intensity is the other pure piece: a sliding window of
//! restart times.

use crate::spec::{Restart, Strategy};
use plasmoid_runtime::ExitReason;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a child ended, as restart types see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `normal`.
    Normal,
    /// `shutdown` (with or without a detail), as OTP's `shutdown` and
    /// `{shutdown, Term}`.
    Shutdown,
    /// Anything else: a crash, a kill, a lost node.
    Abnormal,
}

impl From<&ExitReason> for Exit {
    fn from(r: &ExitReason) -> Exit {
        match r {
            ExitReason::Normal => Exit::Normal,
            ExitReason::Shutdown(_) => Exit::Shutdown,
            _ => Exit::Abnormal,
        }
    }
}

/// What the planner needs to know of one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub restart: Restart,
    /// Still running (the exited child counts as not running).
    pub running: bool,
}

/// What to do about one exit. Indices are positions in the children list
/// as it was given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Running siblings to stop, in this order (last started first).
    pub stop: Vec<usize>,
    /// Children whose spec is forgotten (after the stops).
    pub remove: Vec<usize>,
    /// Children to start again, in this order.
    pub start: Vec<usize>,
}

impl Plan {
    /// Whether carrying this plan out is a restart (counted by intensity).
    pub fn is_restart(&self) -> bool {
        !self.start.is_empty()
    }
}

/// Whether a child of this restart type is restarted after this exit.
pub fn restarts(restart: Restart, exit: Exit) -> bool {
    match restart {
        Restart::Permanent => true,
        Restart::Transient => exit == Exit::Abnormal,
        Restart::Temporary => false,
    }
}

/// OTP's decision for `children[exited]` ending with `exit`.
pub fn on_exit(strategy: Strategy, children: &[Member], exited: usize, exit: Exit) -> Plan {
    let Some(me) = children.get(exited) else {
        return Plan::default();
    };
    if !restarts(me.restart, exit) {
        // Not restarted: a temporary child is forgotten, and so is any
        // instance of a simple-one-for-one template.
        let forget = me.restart == Restart::Temporary || strategy == Strategy::SimpleOneForOne;
        return Plan {
            remove: if forget { vec![exited] } else { Vec::new() },
            ..Plan::default()
        };
    }
    let range = match strategy {
        Strategy::OneForOne | Strategy::SimpleOneForOne => exited..exited + 1,
        Strategy::OneForAll => 0..children.len(),
        Strategy::RestForOne => exited..children.len(),
    };
    let siblings = || range.clone().filter(move |&j| j != exited);
    Plan {
        stop: siblings().rev().filter(|&j| children[j].running).collect(),
        // A temporary sibling taken down is never restarted (OTP 18+).
        remove: siblings()
            .filter(|&j| children[j].restart == Restart::Temporary)
            .collect(),
        start: range
            .clone()
            .filter(|&j| j == exited || children[j].restart != Restart::Temporary)
            .collect(),
    }
}

/// Restart intensity: at most `max` restarts within `window`; one more and
/// the supervisor gives up.
#[derive(Clone, Debug)]
pub struct Intensity {
    max: u32,
    window: Duration,
    times: VecDeque<Instant>,
}

impl Intensity {
    pub fn new(max: u32, window: Duration) -> Intensity {
        Intensity {
            max,
            window,
            times: VecDeque::new(),
        }
    }

    /// Record a restart at `now`; `false` when that is one too many.
    pub fn record(&mut self, now: Instant) -> bool {
        self.times.push_back(now);
        while self
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.times.pop_front();
        }
        // Bounded: past `max + 1` entries the answer is already `false`.
        while self.times.len() > self.max as usize + 1 {
            self.times.pop_front();
        }
        self.times.len() as u32 <= self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Restart::{Permanent, Temporary, Transient};
    use Strategy::{OneForAll, OneForOne, RestForOne, SimpleOneForOne};

    fn kids(types: &[Restart], exited: usize) -> Vec<Member> {
        types
            .iter()
            .enumerate()
            .map(|(i, &restart)| Member {
                restart,
                running: i != exited,
            })
            .collect()
    }

    /// OTP's table of restart types: restarted or not, for each exit.
    #[test]
    fn restart_types_follow_otp() {
        let table = [
            (Permanent, Exit::Normal, true),
            (Permanent, Exit::Shutdown, true),
            (Permanent, Exit::Abnormal, true),
            (Transient, Exit::Normal, false),
            (Transient, Exit::Shutdown, false),
            (Transient, Exit::Abnormal, true),
            (Temporary, Exit::Normal, false),
            (Temporary, Exit::Shutdown, false),
            (Temporary, Exit::Abnormal, false),
        ];
        for (restart, exit, want) in table {
            assert_eq!(restarts(restart, exit), want, "{restart:?} after {exit:?}");
            for strategy in [OneForOne, OneForAll, RestForOne, SimpleOneForOne] {
                let plan = on_exit(
                    strategy,
                    &kids(&[Permanent, restart, Permanent], 1),
                    1,
                    exit,
                );
                assert_eq!(plan.is_restart(), want, "{strategy:?} {restart:?} {exit:?}");
                if !want {
                    assert!(plan.stop.is_empty(), "nothing stopped: {plan:?}");
                    let forgotten = restart == Temporary || strategy == SimpleOneForOne;
                    assert_eq!(
                        plan.remove == vec![1],
                        forgotten,
                        "{strategy:?} {restart:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn exit_reasons_classify_as_otp() {
        assert_eq!(Exit::from(&ExitReason::Normal), Exit::Normal);
        assert_eq!(
            Exit::from(&ExitReason::Shutdown(String::new())),
            Exit::Shutdown
        );
        assert_eq!(
            Exit::from(&ExitReason::Shutdown("x".into())),
            Exit::Shutdown
        );
        for r in [
            ExitReason::Killed,
            ExitReason::Kill,
            ExitReason::Exception("boom".into()),
            ExitReason::Noproc,
            ExitReason::Noconnection,
        ] {
            assert_eq!(Exit::from(&r), Exit::Abnormal, "{r:?}");
        }
    }

    #[test]
    fn one_for_one_touches_only_the_child() {
        let plan = on_exit(OneForOne, &kids(&[Permanent; 4], 2), 2, Exit::Abnormal);
        assert_eq!(
            plan,
            Plan {
                stop: vec![],
                remove: vec![],
                start: vec![2]
            }
        );
    }

    #[test]
    fn one_for_all_stops_all_in_reverse_and_starts_all_in_order() {
        let plan = on_exit(OneForAll, &kids(&[Permanent; 4], 1), 1, Exit::Abnormal);
        assert_eq!(plan.stop, vec![3, 2, 0]);
        assert_eq!(plan.start, vec![0, 1, 2, 3]);
        assert!(plan.remove.is_empty());
    }

    #[test]
    fn rest_for_one_takes_the_later_siblings_only() {
        let plan = on_exit(RestForOne, &kids(&[Permanent; 4], 1), 1, Exit::Abnormal);
        assert_eq!(plan.stop, vec![3, 2]);
        assert_eq!(plan.start, vec![1, 2, 3]);
    }

    #[test]
    fn temporary_siblings_taken_down_are_forgotten() {
        let types = [Permanent, Permanent, Temporary, Transient];
        let plan = on_exit(OneForAll, &kids(&types, 0), 0, Exit::Abnormal);
        assert_eq!(plan.stop, vec![3, 2, 1]);
        assert_eq!(plan.remove, vec![2]);
        assert_eq!(plan.start, vec![0, 1, 3], "transient siblings come back");
        let plan = on_exit(RestForOne, &kids(&types, 1), 1, Exit::Shutdown);
        assert_eq!(plan.stop, vec![3, 2]);
        assert_eq!(plan.remove, vec![2]);
        assert_eq!(plan.start, vec![1, 3]);
    }

    #[test]
    fn stopped_siblings_are_not_stopped_again_but_restarted() {
        // A sibling terminated by hand (terminate_child) is not running:
        // nothing to stop, and OTP starts it with the others.
        let mut children = kids(&[Permanent; 3], 0);
        children[2].running = false;
        let plan = on_exit(OneForAll, &children, 0, Exit::Abnormal);
        assert_eq!(plan.stop, vec![1]);
        assert_eq!(plan.start, vec![0, 1, 2]);
    }

    #[test]
    fn simple_one_for_one_instances_restart_alone_or_are_forgotten() {
        let plan = on_exit(
            SimpleOneForOne,
            &kids(&[Permanent; 3], 1),
            1,
            Exit::Abnormal,
        );
        assert_eq!(plan.start, vec![1]);
        assert!(plan.stop.is_empty());
        let plan = on_exit(SimpleOneForOne, &kids(&[Transient; 3], 1), 1, Exit::Normal);
        assert_eq!(
            plan,
            Plan {
                stop: vec![],
                remove: vec![1],
                start: vec![]
            }
        );
    }

    #[test]
    fn an_unknown_child_plans_nothing() {
        assert_eq!(
            on_exit(OneForAll, &kids(&[Permanent], 0), 5, Exit::Abnormal),
            Plan::default()
        );
    }

    #[test]
    fn intensity_allows_max_restarts_within_the_window() {
        let t0 = Instant::now();
        let mut i = Intensity::new(3, Duration::from_secs(5));
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(i.record(at(0)));
        assert!(i.record(at(100)));
        assert!(i.record(at(200)));
        assert!(!i.record(at(300)), "the fourth within 5 s is one too many");
        let mut i = Intensity::new(1, Duration::from_secs(5));
        assert!(i.record(at(0)));
        assert!(i.record(at(5_001)), "the first fell out of the window");
        assert!(!i.record(at(5_002)));
    }

    #[test]
    fn zero_intensity_gives_up_at_the_first_restart() {
        let mut i = Intensity::new(0, Duration::from_secs(1));
        assert!(!i.record(Instant::now()));
    }

    #[test]
    fn intensity_keeps_a_bounded_window() {
        let t0 = Instant::now();
        let mut i = Intensity::new(2, Duration::from_secs(3600));
        for ms in 0..10_000 {
            i.record(t0 + Duration::from_millis(ms));
        }
        assert!(i.times.len() <= 3);
    }
}
