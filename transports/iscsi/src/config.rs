//! Configuration of an iSCSI portal group and the target nodes behind it:
//! names, authentication, initiator ACLs and LUN masking.

use std::collections::HashMap;

use crate::chap::ChapCredentials;
use crate::params::TargetLimits;

/// How initiators must authenticate (RFC 7143 §12).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// One-way CHAP: the initiator must prove it knows this secret.
    /// `None` allows AuthMethod=None.
    pub chap: Option<ChapCredentials>,
    /// Mutual CHAP: what the target answers when the initiator challenges it.
    pub mutual_chap: Option<ChapCredentials>,
}

impl AuthConfig {
    /// Whether AuthMethod=None is acceptable.
    #[must_use]
    pub fn allows_none(&self) -> bool {
        self.chap.is_none()
    }
}

/// Which initiators may log in, and what each of them sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// Initiator names allowed to log in; empty allows every initiator.
    pub allowed_initiators: Vec<String>,
    /// Per-initiator LUN masking: an initiator listed here sees only these
    /// LUN numbers; initiators not listed see every LUN.
    pub lun_masks: HashMap<String, Vec<u16>>,
}

impl Acl {
    /// Whether `initiator` may log in.
    #[must_use]
    pub fn allows(&self, initiator: &str) -> bool {
        self.allowed_initiators.is_empty()
            || self
                .allowed_initiators
                .iter()
                .any(|a| a.eq_ignore_ascii_case(initiator))
    }

    /// The LUNs `initiator` may see, or `None` for all of them.
    #[must_use]
    pub fn visible_luns(&self, initiator: &str) -> Option<&[u16]> {
        self.lun_masks
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(initiator))
            .map(|(_, v)| v.as_slice())
    }
}

/// One iSCSI target node (an IQN) served by a portal group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetNode {
    /// The iSCSI name (`iqn.` or `eui.` or `naa.`).
    pub name: String,
    /// TargetAlias, declared at login.
    pub alias: Option<String>,
    /// Authentication required for Normal sessions to this node.
    pub auth: AuthConfig,
    /// Initiator ACL and LUN masking.
    pub acl: Acl,
}

impl TargetNode {
    /// A node with no authentication and no ACL.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            alias: None,
            auth: AuthConfig::default(),
            acl: Acl::default(),
        }
    }
}

/// A portal group: the addresses it listens on and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGroup {
    /// Target Portal Group Tag.
    pub tpgt: u16,
    /// Portal addresses (`host:port`, IPv6 in brackets) for SendTargets.
    pub addresses: Vec<String>,
    /// Negotiation limits and queue depth.
    pub limits: TargetLimits,
    /// Authentication for Discovery sessions.
    pub discovery_auth: AuthConfig,
    /// Seconds of silence on a connection before the target sends a
    /// NOP-In ping; 0 disables pings.
    pub nop_in_interval_secs: u32,
    /// Seconds to wait for the NOP-Out answering a ping before dropping the
    /// connection.
    pub nop_in_timeout_secs: u32,
    /// Seconds a connection may take to complete its login before it is
    /// dropped (needs a [`crate::Sleeper`]); 0 disables the limit.
    pub login_timeout_secs: u32,
}

impl Default for PortalGroup {
    fn default() -> Self {
        Self {
            tpgt: 1,
            addresses: Vec::new(),
            limits: TargetLimits::default(),
            discovery_auth: AuthConfig::default(),
            nop_in_interval_secs: 30,
            nop_in_timeout_secs: 30,
            login_timeout_secs: 30,
        }
    }
}

/// Everything login needs to know: the portal group and its nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortalConfig {
    /// The portal group.
    pub group: PortalGroup,
    /// The target nodes.
    pub nodes: Vec<TargetNode>,
    /// The portals of the same nodes in the target's other portal groups
    /// (served by other [`IscsiServer`](crate::IscsiServer)s): SendTargets
    /// reports them after this group's own addresses, each with its tag
    /// (RFC 7143 appendix C), so that one discovery finds every path.
    pub other_portals: Vec<Portal>,
}

/// One portal of a portal group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    /// Target Portal Group Tag.
    pub tpgt: u16,
    /// `host:port` (IPv6 in brackets).
    pub address: String,
}

impl PortalConfig {
    /// The node called `name` (iSCSI names compare case-insensitively,
    /// RFC 3722 normalizes them to lower case).
    #[must_use]
    pub fn node(&self, name: &str) -> Option<(usize, &TargetNode)> {
        self.nodes
            .iter()
            .enumerate()
            .find(|(_, n)| n.name.eq_ignore_ascii_case(name))
    }
}
