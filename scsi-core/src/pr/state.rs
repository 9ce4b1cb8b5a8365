//! The persistent reservation state of one logical unit and the PERSISTENT
//! RESERVE OUT state machine (SPC-4 §5.13), as pure functions: a request and
//! the current state in, the new state and its side effects (unit
//! attentions, aborted nexuses) out. The engine applies the effects.

use crate::pr::transport_id::TransportId;
use crate::sense::{Asc, Sense};
use crate::table::PrConflicts;

/// Most registrations a logical unit keeps; more are refused with
/// INSUFFICIENT REGISTRATION RESOURCES (SPC-4 §5.13.7).
pub const MAX_REGISTRATIONS: usize = 256;

/// A persistent reservation type (SPC-4 table 213): an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PrType(pub u8);

impl PrType {
    /// Write Exclusive.
    pub const WRITE_EXCLUSIVE: Self = Self(0x1);
    /// Exclusive Access.
    pub const EXCLUSIVE_ACCESS: Self = Self(0x3);
    /// Write Exclusive – Registrants Only.
    pub const WRITE_EXCLUSIVE_RO: Self = Self(0x5);
    /// Exclusive Access – Registrants Only.
    pub const EXCLUSIVE_ACCESS_RO: Self = Self(0x6);
    /// Write Exclusive – All Registrants.
    pub const WRITE_EXCLUSIVE_AR: Self = Self(0x7);
    /// Exclusive Access – All Registrants.
    pub const EXCLUSIVE_ACCESS_AR: Self = Self(0x8);

    /// One of the six types SPC-4 defines.
    #[must_use]
    pub fn is_valid(self) -> bool {
        matches!(self.0, 1 | 3 | 5 | 6 | 7 | 8)
    }

    /// An All Registrants type: every registrant is a holder.
    #[must_use]
    pub fn all_registrants(self) -> bool {
        matches!(self.0, 7 | 8)
    }

    /// A Registrants Only type.
    #[must_use]
    pub fn registrants_only(self) -> bool {
        matches!(self.0, 5 | 6)
    }

    /// A Write Exclusive type (reads stay open to others).
    #[must_use]
    pub fn write_exclusive(self) -> bool {
        matches!(self.0, 1 | 5 | 7)
    }

    /// The conflict columns ([`table::column`](crate::table::column) bits)
    /// that can refuse someone under a reservation of this type: a command
    /// whose columns miss all of them conflicts with no I_T nexus.
    #[must_use]
    pub(crate) fn columns(self) -> u8 {
        use crate::table::column;
        match self {
            Self::WRITE_EXCLUSIVE => column::WE,
            Self::EXCLUSIVE_ACCESS => column::EA,
            t if t.write_exclusive() => column::REGISTERED | column::UNREG_WE,
            _ => column::REGISTERED | column::UNREG_EA,
        }
    }
}

/// What an I_T nexus is to the persistent reservation of one logical unit:
/// the two facts its conflict check needs (see [`PrState::standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    /// It has a registration.
    pub registered: bool,
    /// It holds the reservation (every registrant does under the All
    /// Registrants types).
    pub holder: bool,
}

impl std::fmt::Debug for PrType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrType({:#x})", self.0)
    }
}

/// The identity of an I_T nexus as reservations see it (SPC-4 §5.13.2):
/// the initiator port's TransportID and the relative target port. A
/// re-login from the same initiator port has the same identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItNexusIdentity {
    /// The initiator port.
    pub initiator: TransportId,
    /// The relative target port identifier.
    pub relative_port: u16,
}

/// One registration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Registration {
    /// The reservation key.
    pub key: u64,
    /// The registered initiator port(s).
    pub initiator: TransportId,
    /// The relative target port of the registration.
    pub relative_port: u16,
    /// Registered through every target port (ALL_TG_PT).
    pub all_tg_pt: bool,
}

impl Registration {
    /// Whether this registration covers I_T nexus `who`.
    #[must_use]
    pub fn names(&self, who: &ItNexusIdentity) -> bool {
        self.initiator.matches(&who.initiator)
            && (self.all_tg_pt || self.relative_port == who.relative_port)
    }
}

/// The persistent reservation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reservation {
    /// Its type (scope is always logical unit).
    pub pr_type: PrType,
    /// The I_T nexus that holds it (for All Registrants types, the one that
    /// established it; every registrant holds it).
    pub holder: ItNexusIdentity,
}

/// Registrations and reservation of one logical unit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrState {
    /// PRgeneration (SPC-4 §6.15.2).
    pub generation: u32,
    /// Registrations, oldest first.
    pub registrations: Vec<Registration>,
    /// The persistent reservation, if any.
    pub reservation: Option<Reservation>,
    /// Activate persist through power loss, as last set.
    pub aptpl: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// RESERVATION CONFLICT status.
    Conflict,
    /// CHECK CONDITION with this sense.
    Check(Sense),
}

impl From<Sense> for Refusal {
    fn from(s: Sense) -> Self {
        Refusal::Check(s)
    }
}

/// A decoded PERSISTENT RESERVE OUT request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProutRequest {
    /// Service action.
    pub service_action: u8,
    /// SCOPE from the CDB.
    pub scope: u8,
    /// TYPE from the CDB.
    pub pr_type: PrType,
    /// RESERVATION KEY.
    pub key: u64,
    /// SERVICE ACTION RESERVATION KEY.
    pub sa_key: u64,
    /// SPEC_I_PT.
    pub spec_i_pt: bool,
    /// ALL_TG_PT.
    pub all_tg_pt: bool,
    /// APTPL.
    pub aptpl: bool,
    /// TransportIDs (SPEC_I_PT), or the one of REGISTER AND MOVE.
    pub transport_ids: Vec<TransportId>,
    /// REGISTER AND MOVE: UNREG.
    pub unreg: bool,
    /// REGISTER AND MOVE: RELATIVE TARGET PORT IDENTIFIER.
    pub move_relative_port: u16,
}

/// Who gets a unit attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaEffect {
    /// Every nexus named by one of these registrations, other than the
    /// nexus that sent the command.
    pub to: Vec<Registration>,
    /// The condition.
    pub asc: Asc,
}

/// Side effects of a PERSISTENT RESERVE OUT command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effects {
    /// Unit attentions to establish.
    pub ua: Vec<UaEffect>,
    /// Abort the tasks of the nexuses these registrations named (PREEMPT
    /// AND ABORT).
    pub abort: Vec<Registration>,
}

/// Service action codes.
pub mod sa {
    #![allow(missing_docs)]
    pub const REGISTER: u8 = 0;
    pub const RESERVE: u8 = 1;
    pub const RELEASE: u8 = 2;
    pub const CLEAR: u8 = 3;
    pub const PREEMPT: u8 = 4;
    pub const PREEMPT_AND_ABORT: u8 = 5;
    pub const REGISTER_AND_IGNORE: u8 = 6;
    pub const REGISTER_AND_MOVE: u8 = 7;
    pub const REPLACE_LOST_RESERVATION: u8 = 8;
}

fn invalid_scope_or_type(req: &ProutRequest) -> Result<(), Refusal> {
    if req.scope != 0 {
        return Err(Sense::invalid_cdb_field(2, Some(4)).into());
    }
    if !req.pr_type.is_valid() {
        return Err(Sense::invalid_cdb_field(2, Some(0)).into());
    }
    Ok(())
}

impl PrState {
    /// Index of the registration of `who`.
    #[must_use]
    pub fn registration_of(&self, who: &ItNexusIdentity) -> Option<usize> {
        self.registrations.iter().position(|r| r.names(who))
    }

    /// Whether `who` holds the persistent reservation.
    #[must_use]
    pub fn is_holder(&self, who: &ItNexusIdentity) -> bool {
        match &self.reservation {
            None => false,
            Some(r) if r.pr_type.all_registrants() => self.registration_of(who).is_some(),
            Some(r) => r.holder == *who,
        }
    }

    /// The key READ RESERVATION reports: the holder's key, or zero for All
    /// Registrants types (SPC-4 §6.15.3.3).
    #[must_use]
    pub fn reservation_key(&self) -> u64 {
        match &self.reservation {
            Some(r) if !r.pr_type.all_registrants() => self
                .registration_of(&r.holder)
                .map_or(0, |i| self.registrations[i].key),
            _ => 0,
        }
    }

    /// Whether a command with conflict columns `c` from `who` conflicts
    /// with the persistent reservation (SPC-4 §5.13.1 table 47).
    #[must_use]
    pub fn conflicts(&self, who: &ItNexusIdentity, c: &PrConflicts) -> bool {
        self.reservation.is_some() && self.conflicts_as(self.standing(who), c)
    }

    /// The conflict columns ([`table::column`](crate::table::column) bits)
    /// the reservation held, if any, can fire (0 when none is held).
    #[must_use]
    pub(crate) fn columns(&self) -> u8 {
        self.reservation.as_ref().map_or(0, |r| r.pr_type.columns())
    }

    /// What `who` is to the reservation: registered, holder.
    #[must_use]
    pub(crate) fn standing(&self, who: &ItNexusIdentity) -> Standing {
        let registered = self.registration_of(who).is_some();
        let holder = match &self.reservation {
            None => false,
            Some(r) if r.pr_type.all_registrants() => registered,
            Some(r) => r.holder == *who,
        };
        Standing { registered, holder }
    }

    /// [`Self::conflicts`] for an I_T nexus of standing `s`.
    #[must_use]
    pub(crate) fn conflicts_as(&self, s: Standing, c: &PrConflicts) -> bool {
        let Some(res) = &self.reservation else {
            return false;
        };
        if s.holder {
            return false;
        }
        match res.pr_type {
            PrType::WRITE_EXCLUSIVE => c.we,
            PrType::EXCLUSIVE_ACCESS => c.ea,
            _ if s.registered => c.registered,
            t if t.write_exclusive() => c.unreg_we,
            _ => c.unreg_ea,
        }
    }

    fn others(&self, me: &ItNexusIdentity) -> Vec<Registration> {
        self.registrations
            .iter()
            .filter(|r| !r.names(me))
            .cloned()
            .collect()
    }

    /// Remove every registration (other than `me`'s) with key `key`.
    fn remove_key(&mut self, key: u64, me: &ItNexusIdentity) -> Vec<Registration> {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.registrations)
            .into_iter()
            .partition(|r| r.key == key && !r.names(me));
        self.registrations = keep;
        gone
    }

    /// Process PERSISTENT RESERVE OUT `req` from `me`. `can_persist` says
    /// whether the logical unit has a [`PrStore`](crate::pr::PrStore) (so
    /// APTPL may be set).
    ///
    /// # Errors
    ///
    /// [`Refusal`]: RESERVATION CONFLICT or the sense for CHECK CONDITION.
    pub fn prout(
        &self,
        me: &ItNexusIdentity,
        req: &ProutRequest,
        can_persist: bool,
    ) -> Result<(PrState, Effects), Refusal> {
        let mut s = self.clone();
        let mut fx = Effects::default();
        let mine = self.registration_of(me);
        let registered_with = |key: u64| -> Result<usize, Refusal> {
            match mine {
                Some(i) if self.registrations[i].key == key => Ok(i),
                _ => Err(Refusal::Conflict),
            }
        };
        match req.service_action {
            sa::REGISTER | sa::REGISTER_AND_IGNORE => {
                let ignore = req.service_action == sa::REGISTER_AND_IGNORE;
                if req.aptpl && !can_persist {
                    return Err(Sense::invalid_param_field(20, Some(0)).into());
                }
                if ignore && req.spec_i_pt {
                    return Err(Sense::invalid_param_field(20, Some(3)).into());
                }
                match mine {
                    None => {
                        if !ignore && req.key != 0 {
                            return Err(Refusal::Conflict);
                        }
                        if req.sa_key == 0 {
                            return Ok((s, fx));
                        }
                        let mut add = vec![Registration {
                            key: req.sa_key,
                            initiator: me.initiator.clone(),
                            relative_port: me.relative_port,
                            all_tg_pt: req.all_tg_pt,
                        }];
                        for tid in &req.transport_ids {
                            let reg = Registration {
                                key: req.sa_key,
                                initiator: tid.clone(),
                                relative_port: me.relative_port,
                                all_tg_pt: req.all_tg_pt,
                            };
                            if add.contains(&reg) {
                                continue;
                            }
                            // SPC-4 §6.16.4: a TransportID naming a registered
                            // I_T nexus is an invalid parameter list.
                            if s.registrations.iter().any(|r| r.initiator == *tid) {
                                return Err(Sense::invalid_param_field(24, None).into());
                            }
                            add.push(reg);
                        }
                        if s.registrations.len() + add.len() > MAX_REGISTRATIONS {
                            return Err(
                                Sense::illegal(Asc::INSUFFICIENT_REGISTRATION_RESOURCES).into()
                            );
                        }
                        s.registrations.extend(add);
                    }
                    Some(i) => {
                        if !ignore && req.key != self.registrations[i].key {
                            return Err(Refusal::Conflict);
                        }
                        if req.spec_i_pt {
                            return Err(Sense::invalid_param_field(20, Some(3)).into());
                        }
                        if req.sa_key == 0 {
                            s.unregister(i, &mut fx);
                        } else {
                            s.registrations[i].key = req.sa_key;
                        }
                    }
                }
                s.generation = s.generation.wrapping_add(1);
                s.aptpl = req.aptpl;
            }
            sa::RESERVE => {
                invalid_scope_or_type(req)?;
                registered_with(req.key)?;
                match &self.reservation {
                    None => {
                        s.reservation = Some(Reservation {
                            pr_type: req.pr_type,
                            holder: me.clone(),
                        });
                    }
                    Some(r) if self.is_holder(me) && r.pr_type == req.pr_type => {}
                    Some(_) => return Err(Refusal::Conflict),
                }
            }
            sa::RELEASE => {
                registered_with(req.key)?;
                let Some(r) = &self.reservation else {
                    return Ok((s, fx));
                };
                if !self.is_holder(me) {
                    return Ok((s, fx));
                }
                if req.scope != 0 || req.pr_type != r.pr_type {
                    return Err(
                        Sense::illegal(Asc::INVALID_RELEASE_OF_PERSISTENT_RESERVATION).into(),
                    );
                }
                s.reservation = None;
                if r.pr_type.registrants_only() || r.pr_type.all_registrants() {
                    fx.ua.push(UaEffect {
                        to: self.others(me),
                        asc: Asc::RESERVATIONS_RELEASED,
                    });
                }
            }
            sa::CLEAR => {
                registered_with(req.key)?;
                fx.ua.push(UaEffect {
                    to: self.others(me),
                    asc: Asc::RESERVATIONS_PREEMPTED,
                });
                s.registrations.clear();
                s.reservation = None;
                s.generation = s.generation.wrapping_add(1);
            }
            sa::PREEMPT | sa::PREEMPT_AND_ABORT => {
                registered_with(req.key)?;
                let (gone, changed) = match &self.reservation {
                    None => {
                        if req.sa_key == 0 {
                            return Err(Sense::invalid_param_field(8, None).into());
                        }
                        (s.remove_key(req.sa_key, me), false)
                    }
                    Some(r) if r.pr_type.all_registrants() && req.sa_key == 0 => {
                        invalid_scope_or_type(req)?;
                        let gone = s.others(me);
                        s.registrations.retain(|x| x.names(me));
                        s.reservation = Some(Reservation {
                            pr_type: req.pr_type,
                            holder: me.clone(),
                        });
                        (gone, true)
                    }
                    Some(r)
                        if !r.pr_type.all_registrants() && req.sa_key == self.reservation_key() =>
                    {
                        invalid_scope_or_type(req)?;
                        let gone = s.remove_key(req.sa_key, me);
                        s.reservation = Some(Reservation {
                            pr_type: req.pr_type,
                            holder: me.clone(),
                        });
                        if r.pr_type != req.pr_type {
                            // SPC-4 §5.13.11.4.3: the others learn the type changed.
                            fx.ua.push(UaEffect {
                                to: s.others(me),
                                asc: Asc::RESERVATIONS_RELEASED,
                            });
                        }
                        (gone, true)
                    }
                    Some(_) => {
                        if req.sa_key == 0 {
                            return Err(Sense::invalid_param_field(8, None).into());
                        }
                        (s.remove_key(req.sa_key, me), false)
                    }
                };
                if gone.is_empty() && !changed {
                    // SPC-4 §5.13.11.4.2: no registration has that key.
                    return Err(Refusal::Conflict);
                }
                if let Some(r) = &s.reservation {
                    if r.pr_type.all_registrants() && s.registrations.is_empty() {
                        s.reservation = None;
                    }
                }
                if req.service_action == sa::PREEMPT_AND_ABORT {
                    fx.abort.clone_from(&gone);
                }
                fx.ua.push(UaEffect {
                    to: gone,
                    asc: Asc::REGISTRATIONS_PREEMPTED,
                });
                s.generation = s.generation.wrapping_add(1);
            }
            sa::REGISTER_AND_MOVE => {
                if req.aptpl && !can_persist {
                    return Err(Sense::invalid_param_field(17, Some(0)).into());
                }
                let i = registered_with(req.key)?;
                let Some(r) = &self.reservation else {
                    return Err(Refusal::Conflict);
                };
                if r.pr_type.all_registrants() || !self.is_holder(me) {
                    return Err(Refusal::Conflict);
                }
                if req.sa_key == 0 {
                    return Err(Sense::invalid_param_field(8, None).into());
                }
                let Some(tid) = req.transport_ids.first() else {
                    return Err(Sense::invalid_param_field(20, None).into());
                };
                let dest = ItNexusIdentity {
                    initiator: tid.clone(),
                    relative_port: req.move_relative_port,
                };
                if self.registrations[i].names(&dest) || dest.initiator.matches(&me.initiator) {
                    return Err(Sense::invalid_param_field(24, None).into());
                }
                match s.registration_of(&dest) {
                    Some(j) => s.registrations[j].key = req.sa_key,
                    None => {
                        if s.registrations.len() >= MAX_REGISTRATIONS {
                            return Err(
                                Sense::illegal(Asc::INSUFFICIENT_REGISTRATION_RESOURCES).into()
                            );
                        }
                        s.registrations.push(Registration {
                            key: req.sa_key,
                            initiator: dest.initiator.clone(),
                            relative_port: dest.relative_port,
                            all_tg_pt: false,
                        });
                    }
                }
                s.reservation = Some(Reservation {
                    pr_type: r.pr_type,
                    holder: dest,
                });
                if req.unreg {
                    if let Some(k) = s.registration_of(me) {
                        s.registrations.remove(k);
                    }
                }
                s.generation = s.generation.wrapping_add(1);
                s.aptpl = req.aptpl;
            }
            sa::REPLACE_LOST_RESERVATION => {
                invalid_scope_or_type(req)?;
                registered_with(req.key)?;
                if let Some(old) = &self.reservation {
                    if old.pr_type != req.pr_type || !self.is_holder(me) {
                        fx.ua.push(UaEffect {
                            to: self.others(me),
                            asc: Asc::RESERVATIONS_RELEASED,
                        });
                    }
                }
                s.reservation = Some(Reservation {
                    pr_type: req.pr_type,
                    holder: me.clone(),
                });
            }
            _ => return Err(Sense::invalid_cdb_field(1, Some(4)).into()),
        }
        Ok((s, fx))
    }

    /// Remove registration `i` (an unregister), releasing the reservation
    /// if its holder goes (SPC-4 §5.13.11.2.3).
    fn unregister(&mut self, i: usize, fx: &mut Effects) {
        let gone = self.registrations.remove(i);
        let Some(r) = self.reservation.clone() else {
            return;
        };
        if r.pr_type.all_registrants() {
            if self.registrations.is_empty() {
                self.reservation = None;
            }
        } else if gone.names(&r.holder) {
            self.reservation = None;
            if r.pr_type.registrants_only() {
                fx.ua.push(UaEffect {
                    to: self.registrations.clone(),
                    asc: Asc::RESERVATIONS_RELEASED,
                });
            }
        }
    }
}
