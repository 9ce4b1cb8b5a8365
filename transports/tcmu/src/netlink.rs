//! The "TCM-USER" generic netlink family: device events from the kernel.
//!
//! `target_core_user` multicasts on the family's "config" group when a
//! user-backstore device is enabled (`ADDED_DEVICE`), removed
//! (`REMOVED_DEVICE`) or reconfigured (`RECONFIG_DEVICE`: a new
//! `dev_config`, `dev_size` or `emulate_write_cache`). Each event carries
//! the UIO name, the UIO minor and the LIO device index. When the handler
//! announces reply support (`SET_FEATURES` with `SUPP_KERN_CMD_REPLY`), the
//! kernel waits for an `*_DONE` reply carrying a status (0 or a negative
//! errno) before it completes the configfs write that caused the event, so
//! a reconfiguration the handler refuses fails for the administrator.
//!
//! [`Event::parse`] is the sans-I/O decoder (fuzzed); [`Netlink`] is the
//! socket, through the `neli` crate.

use std::sync::mpsc;

use neli::consts::nl::NlmF;
use neli::consts::socket::NlFamily;
use neli::genl::{AttrTypeBuilder, Genlmsghdr, GenlmsghdrBuilder, NlattrBuilder, NoUserHeader};
use neli::nl::NlPayload;
use neli::router::synchronous::{NlRouter, NlRouterReceiverHandle};
use neli::types::{Buffer, GenlBuffer};
use neli::utils::Groups;

use crate::abi::{GenlAttr, GenlCmd};

/// The family name.
pub const FAMILY: &str = "TCM-USER";
/// The multicast group of device events.
pub const CONFIG_GROUP: &str = "config";
/// The family's version (`tcmu_genl_family.version`).
pub const FAMILY_VERSION: u8 = 2;

/// Which device an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRef {
    /// The UIO name, `tcm-user/<hba>/<dev>/<cfgstring>`.
    pub name: String,
    /// The UIO minor (`/dev/uio<minor>`).
    pub minor: u32,
    /// LIO's device index (echoed in `_DONE` replies).
    pub device_id: u32,
}

/// What a `RECONFIG_DEVICE` event changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconfig {
    /// A new `dev_config` string (the handler may switch its backing).
    DevConfig(String),
    /// A new device size in bytes.
    Size(u64),
    /// Write cache enabled or disabled.
    WriteCache(bool),
}

/// A device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A device was enabled.
    Added(DeviceRef),
    /// A device is being removed.
    Removed(DeviceRef),
    /// A device is being reconfigured.
    Reconfig(DeviceRef, Reconfig),
}

/// A malformed event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The command is not an event the kernel sends.
    #[error("unexpected command {0}")]
    Command(u8),
    /// A required attribute is missing.
    #[error("missing attribute {0:?}")]
    Missing(GenlAttr),
    /// An attribute has the wrong size or encoding.
    #[error("malformed attribute {0:?}")]
    Malformed(GenlAttr),
    /// A RECONFIG_DEVICE event that changes nothing this handler knows.
    #[error("reconfiguration with no known attribute")]
    NoChange,
}

fn string(attr: GenlAttr, bytes: &[u8]) -> Result<String, EventError> {
    // NLA_STRING: NUL-terminated; keep what precedes the first NUL.
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8(bytes[..end].to_vec()).map_err(|_| EventError::Malformed(attr))
}

fn fixed<const N: usize>(attr: GenlAttr, bytes: &[u8]) -> Result<[u8; N], EventError> {
    bytes
        .get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or(EventError::Malformed(attr))
}

impl Event {
    /// Decode an event from its command and attributes (type, payload).
    ///
    /// # Errors
    ///
    /// [`EventError`] for commands that are not events and for missing or
    /// malformed attributes.
    pub fn parse<'a>(
        cmd: u8,
        attrs: impl IntoIterator<Item = (u16, &'a [u8])>,
    ) -> Result<Self, EventError> {
        let mut name = None;
        let mut minor = None;
        let mut device_id = None;
        let mut change = None;
        for (ty, payload) in attrs {
            match GenlAttr(ty) {
                GenlAttr::DEVICE => name = Some(string(GenlAttr::DEVICE, payload)?),
                GenlAttr::MINOR => {
                    minor = Some(u32::from_ne_bytes(fixed(GenlAttr::MINOR, payload)?));
                }
                GenlAttr::DEVICE_ID => {
                    device_id = Some(u32::from_ne_bytes(fixed(GenlAttr::DEVICE_ID, payload)?));
                }
                GenlAttr::DEV_CFG => {
                    change = Some(Reconfig::DevConfig(string(GenlAttr::DEV_CFG, payload)?));
                }
                GenlAttr::DEV_SIZE => {
                    change = Some(Reconfig::Size(u64::from_ne_bytes(fixed(
                        GenlAttr::DEV_SIZE,
                        payload,
                    )?)));
                }
                GenlAttr::WRITECACHE => {
                    let [v] = fixed::<1>(GenlAttr::WRITECACHE, payload)?;
                    change = Some(Reconfig::WriteCache(v != 0));
                }
                _ => {}
            }
        }
        let dev = DeviceRef {
            name: name.ok_or(EventError::Missing(GenlAttr::DEVICE))?,
            minor: minor.ok_or(EventError::Missing(GenlAttr::MINOR))?,
            device_id: device_id.ok_or(EventError::Missing(GenlAttr::DEVICE_ID))?,
        };
        match GenlCmd(cmd) {
            GenlCmd::ADDED_DEVICE => Ok(Event::Added(dev)),
            GenlCmd::REMOVED_DEVICE => Ok(Event::Removed(dev)),
            GenlCmd::RECONFIG_DEVICE => {
                Ok(Event::Reconfig(dev, change.ok_or(EventError::NoChange)?))
            }
            GenlCmd(other) => Err(EventError::Command(other)),
        }
    }

    /// The device the event is about.
    #[must_use]
    pub fn device(&self) -> &DeviceRef {
        match self {
            Event::Added(d) | Event::Removed(d) | Event::Reconfig(d, _) => d,
        }
    }

    /// The `_DONE` command that answers this event.
    #[must_use]
    pub fn done_command(&self) -> GenlCmd {
        match self {
            Event::Added(_) => GenlCmd::ADDED_DEVICE_DONE,
            Event::Removed(_) => GenlCmd::REMOVED_DEVICE_DONE,
            Event::Reconfig(..) => GenlCmd::RECONFIG_DEVICE_DONE,
        }
    }
}

/// An error of the netlink socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// The family or its group is not registered (target_core_user not loaded).
    #[error("generic netlink family TCM-USER not found (is target_core_user loaded?): {0}")]
    NoFamily(String),
    /// Sending or receiving failed.
    #[error("netlink: {0}")]
    Io(String),
    /// The receiving side closed.
    #[error("netlink receiver closed")]
    Closed,
}

type GenlMsg = Genlmsghdr<u8, u16>;

/// A socket joined to the "config" group of TCM-USER: the sending half
/// (replies, features). Events arrive on the [`Events`] half.
pub struct Netlink {
    router: NlRouter,
    family: u16,
    replies: bool,
}

/// The receiving half of a [`Netlink`] socket.
pub struct Events {
    events: NlRouterReceiverHandle<u16, GenlMsg>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("family", &self.family)
            .field("replies", &self.replies)
            .finish_non_exhaustive()
    }
}

fn attr<P: neli::Size + neli::ToBytes>(
    ty: GenlAttr,
    payload: P,
) -> Result<neli::genl::Nlattr<u16, Buffer>, NetlinkError> {
    let t = AttrTypeBuilder::default()
        .nla_type(ty.0)
        .build()
        .map_err(|e| NetlinkError::Io(e.to_string()))?;
    NlattrBuilder::default()
        .nla_type(t)
        .nla_payload(payload)
        .build()
        .map_err(|e| NetlinkError::Io(e.to_string()))
}

impl Netlink {
    /// Open the socket, join "config", and, with `replies`, tell the kernel
    /// this handler answers events with `_DONE` (`SET_FEATURES`).
    ///
    /// # Errors
    ///
    /// [`NetlinkError`] if the family is missing or the socket fails.
    pub fn connect(replies: bool) -> Result<(Self, Events), NetlinkError> {
        let (router, events) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
            .map_err(|e| NetlinkError::Io(e.to_string()))?;
        let family = router
            .resolve_genl_family(FAMILY)
            .map_err(|e| NetlinkError::NoFamily(e.to_string()))?;
        let group = router
            .resolve_nl_mcast_group(FAMILY, CONFIG_GROUP)
            .map_err(|e| NetlinkError::NoFamily(e.to_string()))?;
        router
            .add_mcast_membership(Groups::new_groups(&[group]))
            .map_err(|e| NetlinkError::Io(e.to_string()))?;
        let nl = Self {
            router,
            family,
            replies,
        };
        if replies {
            nl.set_features(true)?;
        }
        Ok((nl, Events { events }))
    }

    /// Whether events are answered with `_DONE` replies.
    #[must_use]
    pub fn replies(&self) -> bool {
        self.replies
    }

    fn send(&self, cmd: GenlCmd, attrs: GenlBuffer<u16, Buffer>) -> Result<(), NetlinkError> {
        let msg = GenlmsghdrBuilder::<u8, u16, NoUserHeader>::default()
            .cmd(cmd.0)
            .version(FAMILY_VERSION)
            .attrs(attrs)
            .build()
            .map_err(|e| NetlinkError::Io(e.to_string()))?;
        let recv = self
            .router
            .send::<_, _, u16, GenlMsg>(self.family, NlmF::ACK, NlPayload::Payload(msg))
            .map_err(|e| NetlinkError::Io(e.to_string()))?;
        for reply in recv {
            reply.map_err(|e| NetlinkError::Io(e.to_string()))?;
        }
        Ok(())
    }

    /// `SET_FEATURES`: announce (or withdraw) `_DONE` reply support. The
    /// setting is global in the kernel; withdraw it on shutdown so that a
    /// device added while no handler runs does not wait for a reply.
    ///
    /// # Errors
    ///
    /// [`NetlinkError`] if the kernel refuses (it needs CAP_NET_ADMIN).
    pub fn set_features(&self, replies: bool) -> Result<(), NetlinkError> {
        let attrs = std::iter::once(attr(GenlAttr::SUPP_KERN_CMD_REPLY, u8::from(replies))?)
            .collect::<GenlBuffer<u16, Buffer>>();
        self.send(GenlCmd::SET_FEATURES, attrs)
    }

    /// Answer `event` with its `_DONE` and `status` (0 or a negative errno),
    /// if replies are on.
    ///
    /// # Errors
    ///
    /// [`NetlinkError`] if the reply cannot be sent.
    pub fn reply(&self, event: &Event, status: i32) -> Result<(), NetlinkError> {
        if !self.replies {
            return Ok(());
        }
        let attrs = [
            attr(GenlAttr::CMD_STATUS, status)?,
            attr(GenlAttr::DEVICE_ID, event.device().device_id)?,
        ]
        .into_iter()
        .collect::<GenlBuffer<u16, Buffer>>();
        self.send(event.done_command(), attrs)
    }
}

impl Events {
    /// Wait for the next device event. Malformed events are returned as
    /// `Ok(Err(..))` so the caller can log them and go on.
    ///
    /// # Errors
    ///
    /// [`NetlinkError::Closed`] when the socket is gone.
    pub fn next_event(&mut self) -> Result<Result<Event, EventError>, NetlinkError> {
        loop {
            let msg = match self.events.next() {
                None => return Err(NetlinkError::Closed),
                Some(Err(e)) => return Err(NetlinkError::Io(e.to_string())),
                Some(Ok(msg)) => msg,
            };
            let NlPayload::Payload(genl) = msg.nl_payload() else {
                continue;
            };
            let attrs: Vec<(u16, &[u8])> = genl
                .attrs()
                .iter()
                .map(|a| (*a.nla_type().nla_type(), a.nla_payload().as_ref()))
                .collect();
            return Ok(Event::parse(*genl.cmd(), attrs));
        }
    }

    /// Receive events on a thread, handing them out through a channel.
    #[must_use]
    pub fn into_channel(
        mut self,
    ) -> (
        mpsc::Receiver<Result<Event, EventError>>,
        std::thread::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            while let Ok(ev) = self.next_event() {
                if tx.send(ev).is_err() {
                    break;
                }
            }
        });
        (rx, handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(extra: &[(u16, Vec<u8>)]) -> Vec<(u16, Vec<u8>)> {
        let mut v = vec![
            (1u16, b"tcm-user/0/dev0/file//tmp/x\0".to_vec()),
            (2, 0u32.to_ne_bytes().to_vec()),
            (8, 7u32.to_ne_bytes().to_vec()),
        ];
        v.extend_from_slice(extra);
        v
    }

    fn parse(cmd: u8, attrs: &[(u16, Vec<u8>)]) -> Result<Event, EventError> {
        Event::parse(cmd, attrs.iter().map(|(t, p)| (*t, p.as_slice())))
    }

    #[test]
    fn accepts_device_events() {
        // target_core_user.c tcmu_netlink_event_init: DEVICE, MINOR, DEVICE_ID.
        let ev = parse(1, &base(&[])).unwrap();
        assert_eq!(
            ev,
            Event::Added(DeviceRef {
                name: "tcm-user/0/dev0/file//tmp/x".into(),
                minor: 0,
                device_id: 7
            })
        );
        assert_eq!(ev.done_command(), GenlCmd::ADDED_DEVICE_DONE);
        assert!(matches!(parse(2, &base(&[])).unwrap(), Event::Removed(_)));
        let size = parse(3, &base(&[(5, (1u64 << 30).to_ne_bytes().to_vec())])).unwrap();
        assert_eq!(
            size,
            Event::Reconfig(ev.device().clone(), Reconfig::Size(1 << 30))
        );
        let wc = parse(3, &base(&[(6, vec![1])])).unwrap();
        assert!(matches!(wc, Event::Reconfig(_, Reconfig::WriteCache(true))));
        let cfg = parse(3, &base(&[(4, b"file//tmp/y\0".to_vec())])).unwrap();
        assert!(
            matches!(cfg, Event::Reconfig(_, Reconfig::DevConfig(ref s)) if s == "file//tmp/y")
        );
    }

    #[test]
    fn rejects_malformed_events() {
        assert_eq!(parse(3, &base(&[])), Err(EventError::NoChange));
        assert_eq!(parse(4, &base(&[])), Err(EventError::Command(4)));
        assert_eq!(
            parse(1, &base(&[])[1..]),
            Err(EventError::Missing(GenlAttr::DEVICE))
        );
        assert_eq!(
            parse(3, &base(&[(5, vec![1, 2, 3])])),
            Err(EventError::Malformed(GenlAttr::DEV_SIZE))
        );
        assert_eq!(
            parse(
                1,
                &[(1, vec![0xff, 0xfe]), (2, vec![0; 4]), (8, vec![0; 4])]
            ),
            Err(EventError::Malformed(GenlAttr::DEVICE))
        );
    }
}
