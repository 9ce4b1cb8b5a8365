//! Asymmetric logical unit access (SPC-4 §5.15): target port groups, their
//! access states, REPORT TARGET PORT GROUPS and SET TARGET PORT GROUPS.
//!
//! A [`Target`] starts with one target port group (ID 1) that holds every
//! relative target port and is active/optimized, which is what a target
//! without ALUA looks like to a multipath initiator (INQUIRY reports
//! implicit ALUA). The embedder splits its ports into groups with
//! [`Target::add_port_group`] and moves them between states with
//! [`Target::set_access_state`] (implicit ALUA: its own cluster manager,
//! lock or fencing decides). With an [`AluaPolicy`] installed
//! ([`Target::set_alua_policy`]) initiators may ask for a state with SET
//! TARGET PORT GROUPS (explicit ALUA); the policy grants or refuses each
//! request. States apply to every logical unit of the target.
//!
//! A state change raises ASYMMETRIC ACCESS STATE CHANGED on every I_T
//! nexus (but the one whose SET TARGET PORT GROUPS made it), and each
//! state lets through only the commands SPC-4 §5.15.2.4 to §5.15.2.6 allow:
//! the others answer NOT READY with the state's additional sense code.
//!
//! ```
//! use tgtkit_scsi_core::engine::{Target, TargetConfig};
//! use tgtkit_scsi_core::alua::AccessState;
//!
//! let target = Target::new(TargetConfig::default());
//! // Port 2 is the standby path of this node.
//! target.add_port_group(2, &[2], AccessState::Standby).unwrap();
//! assert_eq!(target.access_state_of_port(2), AccessState::Standby);
//! assert_eq!(target.access_state_of_port(1), AccessState::ActiveOptimized);
//! // Failover: the standby group takes over.
//! target.set_access_state(2, AccessState::ActiveOptimized);
//! ```
//!
//! [`Target`]: crate::engine::Target
//! [`Target::add_port_group`]: crate::engine::Target::add_port_group
//! [`Target::set_access_state`]: crate::engine::Target::set_access_state
//! [`Target::set_alua_policy`]: crate::engine::Target::set_alua_policy

use crate::sense::{Asc, Sense, SenseKey};
use crate::table::Handler;

/// An asymmetric access state (SPC-4 table 150).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccessState {
    /// Active/optimized (0h).
    ActiveOptimized,
    /// Active/non-optimized (1h).
    ActiveNonOptimized,
    /// Standby (2h).
    Standby,
    /// Unavailable (3h).
    Unavailable,
    /// Transitioning between states (Fh).
    Transitioning,
}

impl AccessState {
    /// The state's code in REPORT TARGET PORT GROUPS.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            AccessState::ActiveOptimized => 0x0,
            AccessState::ActiveNonOptimized => 0x1,
            AccessState::Standby => 0x2,
            AccessState::Unavailable => 0x3,
            AccessState::Transitioning => 0xf,
        }
    }

    /// The state SET TARGET PORT GROUPS may ask for with `code` (SPC-4
    /// §6.37: transitioning and offline cannot be asked for).
    #[must_use]
    pub fn requestable(code: u8) -> Option<Self> {
        match code {
            0x0 => Some(AccessState::ActiveOptimized),
            0x1 => Some(AccessState::ActiveNonOptimized),
            0x2 => Some(AccessState::Standby),
            0x3 => Some(AccessState::Unavailable),
            _ => None,
        }
    }

    /// Whether the logical units are fully usable through the group.
    #[must_use]
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AccessState::ActiveOptimized | AccessState::ActiveNonOptimized
        )
    }

    /// The answer to a command of `handler` through a port in this state,
    /// if it may not run.
    pub(crate) fn refusal(self, handler: Handler) -> Option<Sense> {
        use crate::table::RunsWhen;
        let (needs, asc) = match self {
            AccessState::ActiveOptimized | AccessState::ActiveNonOptimized => return None,
            AccessState::Standby => (RunsWhen::STANDBY, Asc::LUN_NOT_ACCESSIBLE_STANDBY),
            AccessState::Unavailable => {
                (RunsWhen::UNAVAILABLE, Asc::LUN_NOT_ACCESSIBLE_UNAVAILABLE)
            }
            AccessState::Transitioning => (
                RunsWhen::TRANSITIONING,
                Asc::LUN_NOT_ACCESSIBLE_TRANSITIONING,
            ),
        };
        let allowed = handler.runs_when().contains(needs);
        (!allowed).then(|| Sense::new(SenseKey::NOT_READY, asc))
    }
}

/// The embedder's say on explicit ALUA: SET TARGET PORT GROUPS asks it for
/// each state change before the engine makes it.
pub trait AluaPolicy: Send + Sync {
    /// Whether target port group `group` may enter `state` now (after
    /// taking whatever cluster lock or fencing the embedder needs). A
    /// refusal fails the command with SET TARGET PORT GROUPS COMMAND
    /// FAILED and changes nothing.
    fn allow(&self, group: u16, state: AccessState) -> bool;
}

/// One target port group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortGroup {
    pub id: u16,
    pub state: AccessState,
    /// Relative target port identifiers; empty for the default group,
    /// which holds every port no other group claims.
    pub ports: Vec<u16>,
    /// STATUS CODE: 1 = last changed by SET TARGET PORT GROUPS, 2 = by the
    /// embedder (implicitly).
    pub status: u8,
}

/// The default group's ID.
pub(crate) const DEFAULT_GROUP: u16 = 1;

/// The target's groups: the default group first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Groups(pub Vec<PortGroup>);

impl Default for Groups {
    fn default() -> Self {
        Self(vec![PortGroup {
            id: DEFAULT_GROUP,
            state: AccessState::ActiveOptimized,
            ports: Vec::new(),
            status: 0,
        }])
    }
}

impl Groups {
    /// The group holding relative target port `port`.
    pub(crate) fn of_port(&self, port: u16) -> &PortGroup {
        self.0
            .iter()
            .find(|g| g.ports.contains(&port))
            .unwrap_or(&self.0[0])
    }

    pub(crate) fn all_active(&self) -> bool {
        self.0.iter().all(|g| g.state.is_active())
    }

    /// REPORT TARGET PORT GROUPS parameter data (SPC-4 §6.36), in the
    /// length-only format or (`extended`) the extended header format.
    /// `ports` lists every relative port the target has registered nexuses
    /// on, for the default group's descriptor.
    pub(crate) fn report(&self, extended: bool, known_ports: &[u16], explicit: bool) -> Vec<u8> {
        let header = if extended { 8 } else { 4 };
        let mut d = vec![0u8; header];
        if extended {
            d[4] = 0x10; // FORMAT TYPE 001b
            d[5] = 0; // IMPLICIT TRANSITION TIME: not reported
        }
        for g in &self.0 {
            let ports: Vec<u16> = if g.id == DEFAULT_GROUP && g.ports.is_empty() {
                known_ports
                    .iter()
                    .copied()
                    .filter(|p| self.of_port(*p).id == DEFAULT_GROUP)
                    .collect()
            } else {
                g.ports.clone()
            };
            d.push(g.state.code()); // PREF clear
                                    // T_SUP, U_SUP, S_SUP, AN_SUP, AO_SUP.
            d.push(0x80 | 0x08 | 0x04 | 0x02 | 0x01);
            d.extend_from_slice(&g.id.to_be_bytes());
            d.push(0);
            d.push(if explicit || g.status == 2 {
                g.status
            } else {
                0
            });
            d.push(0);
            d.push(u8::try_from(ports.len()).unwrap_or(u8::MAX));
            for p in ports.iter().take(255) {
                d.extend_from_slice(&[0, 0]);
                d.extend_from_slice(&p.to_be_bytes());
            }
        }
        let len = u32::try_from(d.len() - 4).unwrap_or(u32::MAX);
        d[0..4].copy_from_slice(&len.to_be_bytes());
        d
    }
}

/// Parse a SET TARGET PORT GROUPS parameter list (SPC-4 §6.37): a 4-byte
/// header, then 4-byte descriptors of (state, group).
pub(crate) fn parse_set(p: &[u8], groups: &Groups) -> Result<Vec<(u16, AccessState)>, Sense> {
    if p.len() < 4 || (p.len() - 4) % 4 != 0 {
        return Err(Sense::illegal(Asc::PARAMETER_LIST_LENGTH_ERROR));
    }
    let mut out = Vec::new();
    for (i, d) in p[4..].chunks_exact(4).enumerate() {
        let at = u16::try_from(4 + 4 * i).unwrap_or(u16::MAX);
        let state = AccessState::requestable(d[0] & 0x0f)
            .ok_or_else(|| Sense::invalid_param_field(at, Some(3)))?;
        let group = u16::from_be_bytes([d[2], d[3]]);
        if !groups.0.iter().any(|g| g.id == group) {
            return Err(Sense::invalid_param_field(at + 2, None));
        }
        out.push((group, state));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_default_group_with_every_port() {
        let g = Groups::default();
        let d = g.report(false, &[1, 2], false);
        assert_eq!(&d[..4], &[0, 0, 0, 16]);
        assert_eq!(&d[4..12], &[0x00, 0x8f, 0, 1, 0, 0, 0, 2]);
        assert_eq!(&d[12..20], &[0, 0, 0, 1, 0, 0, 0, 2]);
        let d = g.report(true, &[1], false);
        assert_eq!(d[4], 0x10);
        assert_eq!(
            u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize,
            d.len() - 4
        );
    }

    #[test]
    fn lets_each_state_through_only_what_spc4_allows() {
        use Handler as H;
        assert!(AccessState::ActiveNonOptimized.refusal(H::Read).is_none());
        let s = AccessState::Standby.refusal(H::Read).unwrap();
        assert_eq!(
            (s.key, s.asc),
            (SenseKey::NOT_READY, Asc::LUN_NOT_ACCESSIBLE_STANDBY)
        );
        assert!(AccessState::Standby.refusal(H::ModeSense).is_none());
        assert!(AccessState::Standby.refusal(H::TestUnitReady).is_some());
        assert!(AccessState::Unavailable.refusal(H::ModeSense).is_some());
        assert!(AccessState::Unavailable
            .refusal(H::SetTargetPortGroups)
            .is_none());
        assert!(AccessState::Transitioning
            .refusal(H::SetTargetPortGroups)
            .is_some());
        assert!(AccessState::Transitioning.refusal(H::Inquiry).is_none());
    }

    #[test]
    fn parses_set_target_port_groups_lists() {
        let g = Groups::default();
        assert_eq!(
            parse_set(&[0, 0, 0, 0, 0x02, 0, 0, 1], &g).unwrap(),
            vec![(1, AccessState::Standby)]
        );
        let e = parse_set(&[0, 0, 0, 0, 0x0f, 0, 0, 1], &g).unwrap_err();
        assert_eq!(e.field.unwrap().byte, 4);
        let e = parse_set(&[0, 0, 0, 0, 0x00, 0, 0, 9], &g).unwrap_err();
        assert_eq!(e.field.unwrap().byte, 6);
        let e = parse_set(&[0, 0, 0, 0, 0], &g).unwrap_err();
        assert_eq!(e.asc, Asc::PARAMETER_LIST_LENGTH_ERROR);
    }
}
