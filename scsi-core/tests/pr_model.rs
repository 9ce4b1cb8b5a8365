//! A state-machine property test: random PERSISTENT RESERVE OUT sequences,
//! READs and WRITEs from three nexuses, checked step by step against a
//! small reference model written from SPC-4 §5.13 (tables 47 and the
//! service action descriptions), including which unit attentions reach
//! whom. A fourth, never registered nexus observes READ KEYS and READ
//! RESERVATION after every step.

mod pr_util;

use std::collections::VecDeque;

use pr_util::*;
use proptest::prelude::*;
use tgtkit_scsi_core::sense::{Asc, SenseKey};
use tgtkit_scsi_core::status::Status;

const N: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Register {
        n: usize,
        key: u64,
        sa_key: u64,
    },
    RegisterIgnore {
        n: usize,
        sa_key: u64,
    },
    Reserve {
        n: usize,
        key: u64,
        ty: u8,
    },
    Release {
        n: usize,
        key: u64,
        ty: u8,
    },
    Clear {
        n: usize,
        key: u64,
    },
    Preempt {
        n: usize,
        key: u64,
        sa_key: u64,
        ty: u8,
    },
    Read {
        n: usize,
    },
    Write {
        n: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Good,
    Conflict,
    Illegal,
    Ua(Asc),
}

/// The reference model.
#[derive(Debug, Default)]
struct Model {
    /// (nexus, key) in registration order.
    regs: Vec<(usize, u64)>,
    /// (holder, type).
    res: Option<(usize, u8)>,
    generation: u32,
    ua: [VecDeque<Asc>; N],
}

fn all_reg(ty: u8) -> bool {
    ty == WE_AR || ty == EA_AR
}

impl Model {
    fn key_of(&self, n: usize) -> Option<u64> {
        self.regs.iter().find(|r| r.0 == n).map(|r| r.1)
    }
    fn holder(&self, n: usize) -> bool {
        match self.res {
            Some((_, ty)) if all_reg(ty) => self.key_of(n).is_some(),
            Some((h, _)) => h == n,
            None => false,
        }
    }
    fn raise(&mut self, to: &[usize], except: usize, asc: Asc) {
        for &n in to {
            if n != except && !self.ua[n].contains(&asc) {
                self.ua[n].push_back(asc);
            }
        }
    }
    fn registrants(&self) -> Vec<usize> {
        self.regs.iter().map(|r| r.0).collect()
    }
    fn remove_key(&mut self, key: u64, me: usize) -> Vec<usize> {
        let gone: Vec<usize> = self
            .regs
            .iter()
            .filter(|r| r.1 == key && r.0 != me)
            .map(|r| r.0)
            .collect();
        self.regs.retain(|r| !gone.contains(&r.0));
        gone
    }

    fn step(&mut self, op: &Op) -> Expect {
        let n = match *op {
            Op::Register { n, .. }
            | Op::RegisterIgnore { n, .. }
            | Op::Reserve { n, .. }
            | Op::Release { n, .. }
            | Op::Clear { n, .. }
            | Op::Preempt { n, .. }
            | Op::Read { n }
            | Op::Write { n } => n,
        };
        // SAM-5 §5.14: a pending unit attention is reported instead.
        if let Some(asc) = self.ua[n].pop_front() {
            return Expect::Ua(asc);
        }
        let valid = |ty: u8| TYPES.contains(&ty);
        match *op {
            Op::Register { n, key, sa_key } => self.register(n, Some(key), sa_key),
            Op::RegisterIgnore { n, sa_key } => self.register(n, None, sa_key),
            Op::Reserve { n, key, ty } => {
                if !valid(ty) {
                    return Expect::Illegal;
                }
                if self.key_of(n) != Some(key) {
                    return Expect::Conflict;
                }
                match self.res {
                    None => {
                        self.res = Some((n, ty));
                        Expect::Good
                    }
                    Some((_, t)) if self.holder(n) && t == ty => Expect::Good,
                    Some(_) => Expect::Conflict,
                }
            }
            Op::Release { n, key, ty } => {
                if self.key_of(n) != Some(key) {
                    return Expect::Conflict;
                }
                let Some((_, t)) = self.res else {
                    return Expect::Good;
                };
                if !self.holder(n) {
                    return Expect::Good;
                }
                if t != ty {
                    return Expect::Illegal;
                }
                self.res = None;
                if t != WE && t != EA {
                    let to = self.registrants();
                    self.raise(&to, n, Asc::RESERVATIONS_RELEASED);
                }
                Expect::Good
            }
            Op::Clear { n, key } => {
                if self.key_of(n) != Some(key) {
                    return Expect::Conflict;
                }
                let to = self.registrants();
                self.raise(&to, n, Asc::RESERVATIONS_PREEMPTED);
                self.regs.clear();
                self.res = None;
                self.generation += 1;
                Expect::Good
            }
            Op::Preempt { n, key, sa_key, ty } => {
                if self.key_of(n) != Some(key) {
                    return Expect::Conflict;
                }
                let gone = match self.res {
                    None => {
                        if sa_key == 0 {
                            return Expect::Illegal;
                        }
                        let gone = self.remove_key(sa_key, n);
                        if gone.is_empty() {
                            return Expect::Conflict;
                        }
                        gone
                    }
                    Some((_, t)) if all_reg(t) && sa_key == 0 => {
                        if !valid(ty) {
                            return Expect::Illegal;
                        }
                        let gone: Vec<usize> =
                            self.registrants().into_iter().filter(|&x| x != n).collect();
                        self.regs.retain(|r| r.0 == n);
                        self.res = Some((n, ty));
                        gone
                    }
                    Some((h, t)) if !all_reg(t) && Some(sa_key) == self.key_of(h) => {
                        if !valid(ty) {
                            return Expect::Illegal;
                        }
                        let gone = self.remove_key(sa_key, n);
                        self.res = Some((n, ty));
                        if t != ty {
                            let to = self.registrants();
                            self.raise(&to, n, Asc::RESERVATIONS_RELEASED);
                        }
                        gone
                    }
                    Some(_) => {
                        if sa_key == 0 {
                            return Expect::Illegal;
                        }
                        let gone = self.remove_key(sa_key, n);
                        if gone.is_empty() {
                            return Expect::Conflict;
                        }
                        gone
                    }
                };
                self.raise(&gone, n, Asc::REGISTRATIONS_PREEMPTED);
                self.generation += 1;
                Expect::Good
            }
            Op::Read { n } | Op::Write { n } => {
                let write = matches!(op, Op::Write { .. });
                let Some((_, ty)) = self.res else {
                    return Expect::Good;
                };
                if self.holder(n) {
                    return Expect::Good;
                }
                let registered = self.key_of(n).is_some();
                let allowed = match ty {
                    WE => !write,
                    EA => false,
                    _ if registered => true,
                    WE_RO | WE_AR => !write,
                    _ => false,
                };
                if allowed {
                    Expect::Good
                } else {
                    Expect::Conflict
                }
            }
        }
    }

    fn register(&mut self, n: usize, key: Option<u64>, sa_key: u64) -> Expect {
        match self.key_of(n) {
            None => {
                if key.is_some_and(|k| k != 0) {
                    return Expect::Conflict;
                }
                if sa_key == 0 {
                    return Expect::Good;
                }
                self.regs.push((n, sa_key));
            }
            Some(k) => {
                if key.is_some_and(|key| key != k) {
                    return Expect::Conflict;
                }
                if sa_key == 0 {
                    self.regs.retain(|r| r.0 != n);
                    match self.res {
                        Some((_, t)) if all_reg(t) && self.regs.is_empty() => {
                            self.res = None;
                        }
                        Some((_, t)) if all_reg(t) => {}
                        Some((h, t)) if h == n => {
                            self.res = None;
                            if t == WE_RO || t == EA_RO {
                                let to = self.registrants();
                                self.raise(&to, n, Asc::RESERVATIONS_RELEASED);
                            }
                        }
                        _ => {}
                    }
                } else if let Some(r) = self.regs.iter_mut().find(|r| r.0 == n) {
                    r.1 = sa_key;
                }
            }
        }
        self.generation += 1;
        Expect::Good
    }
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..N;
    let key = 0u64..4;
    let ty = prop::sample::select(vec![WE, EA, WE_RO, EA_RO, WE_AR, EA_AR, 2]);
    prop_oneof![
        3 => (n.clone(), key.clone(), key.clone()).prop_map(|(n, key, sa_key)| Op::Register { n, key, sa_key }),
        2 => (n.clone(), key.clone()).prop_map(|(n, sa_key)| Op::RegisterIgnore { n, sa_key }),
        3 => (n.clone(), key.clone(), ty.clone()).prop_map(|(n, key, ty)| Op::Reserve { n, key, ty }),
        2 => (n.clone(), key.clone(), ty.clone()).prop_map(|(n, key, ty)| Op::Release { n, key, ty }),
        1 => (n.clone(), key.clone()).prop_map(|(n, key)| Op::Clear { n, key }),
        2 => (n.clone(), key.clone(), key.clone(), ty).prop_map(|(n, key, sa_key, ty)| Op::Preempt { n, key, sa_key, ty }),
        2 => n.clone().prop_map(|n| Op::Read { n }),
        2 => n.prop_map(|n| Op::Write { n }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn accepts_random_sequences_like_the_reference_model(ops in prop::collection::vec(op(), 1..48)) {
        let t = target();
        let inits: Vec<_> = (0..N).map(|i| init(&t, &format!("iqn.2026-11.test:n{i}"))).collect();
        let observer = init(&t, "iqn.2026-11.test:observer");
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            let want = model.step(op);
            let o = match *op {
                Op::Register { n, key, sa_key } => prout(&inits[n], REGISTER, 0, key, sa_key),
                Op::RegisterIgnore { n, sa_key } => prout(&inits[n], REGISTER_AND_IGNORE, 0, 0, sa_key),
                Op::Reserve { n, key, ty } => prout(&inits[n], RESERVE, ty, key, 0),
                Op::Release { n, key, ty } => prout(&inits[n], RELEASE, ty, key, 0),
                Op::Clear { n, key } => prout(&inits[n], CLEAR, 0, key, 0),
                Op::Preempt { n, key, sa_key, ty } => prout(&inits[n], PREEMPT, ty, key, sa_key),
                Op::Read { n } => inits[n].run(&[0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0], 512),
                Op::Write { n } => inits[n].send(&[0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0], &[7; 512]),
            };
            let got = match o.status() {
                Status::GOOD => Expect::Good,
                Status::RESERVATION_CONFLICT => Expect::Conflict,
                Status::CHECK_CONDITION => {
                    let s = o.sense().unwrap();
                    if s.key == SenseKey::UNIT_ATTENTION { Expect::Ua(s.asc) } else { Expect::Illegal }
                }
                other => panic!("status {other:?}"),
            };
            prop_assert_eq!(got, want, "step {} {:?} model {:?}", step, op, model);
            let (generation, mut keys) = read_keys(&observer);
            keys.sort_unstable();
            let mut want_keys: Vec<u64> = model.regs.iter().map(|r| r.1).collect();
            want_keys.sort_unstable();
            prop_assert_eq!(generation, model.generation, "PRgeneration after step {}", step);
            prop_assert_eq!(keys, want_keys, "keys after step {}", step);
            let want_res = model.res.map(|(h, ty)| {
                (if all_reg(ty) { 0 } else { model.key_of(h).unwrap_or(0) }, ty)
            });
            prop_assert_eq!(read_reservation(&observer), want_res, "reservation after step {}", step);
        }
    }
}
