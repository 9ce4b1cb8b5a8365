//! The xenbus device states (`io/xenbus.h`) and a sans-I/O backend state
//! machine.
//!
//! A backend and its frontend each publish a `state` node; each reacts to
//! the other's. [`Backend`] takes the frontend's moves in
//! ([`Backend::handle_frontend`], [`Backend::handle_connected`], ...) and
//! hands out [`Action`]s ([`Backend::poll_action`]) for the caller to do
//! in order: write the feature keys, map the rings, tear them down, write
//! its own `state`. It does no I/O and keeps no clock.
//!
//! ```text
//!  start ──▶ InitWait ──(frontend Initialised/Connected)──▶ [Connect] ──ok──▶ Connected
//!               ▲                                              │ err
//!               │ (frontend Initialising, after Closed)        ▼
//!            Closed ◀──(frontend Closed)── Closing ◀──(frontend Closing)── Connected
//!               │ not online, or frontend gone
//!               ▼
//!            [Remove]
//! ```
//!
//! Reconfiguration: a frontend in `Reconfiguring` makes a connected
//! backend disconnect and answer `Reconfiguring`; when the frontend moves
//! to `Reconfigured` the backend connects again (fresh rings), then goes
//! back to `Connected`. A frontend whose directory disappears
//! ([`Backend::handle_frontend_gone`]) is torn down at once: disconnect,
//! `Closed`, remove. Any other move is ignored (logged by the caller), as
//! Linux's blkback ignores what it does not expect.
//!
//! LUN hot-plug ([`Backend::with_lun_hotplug`], the vscsiif protocol):
//! there `Reconfiguring` keeps the ring up. The toolstack adds or closes
//! `vscsi-devs/dev-N` entries and writes the backend's state 7; the
//! frontend drops the closing LUNs and answers `Reconfiguring`; the backend
//! then applies the change ([`Action::Reconfigure`]) and answers
//! `Reconfigured`; the frontend adds the new LUNs and goes `Connected`, and
//! so does the backend.

use std::collections::VecDeque;
use std::fmt;

/// A xenbus state (`enum xenbus_state`); unknown numbers survive.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct XenbusState(pub u32);

impl XenbusState {
    /// `XenbusStateUnknown`.
    pub const UNKNOWN: Self = Self(0);
    /// `XenbusStateInitialising`.
    pub const INITIALISING: Self = Self(1);
    /// `XenbusStateInitWait`: the backend's features are published.
    pub const INIT_WAIT: Self = Self(2);
    /// `XenbusStateInitialised`: the frontend's rings are published.
    pub const INITIALISED: Self = Self(3);
    /// `XenbusStateConnected`.
    pub const CONNECTED: Self = Self(4);
    /// `XenbusStateClosing`.
    pub const CLOSING: Self = Self(5);
    /// `XenbusStateClosed`.
    pub const CLOSED: Self = Self(6);
    /// `XenbusStateReconfiguring`.
    pub const RECONFIGURING: Self = Self(7);
    /// `XenbusStateReconfigured`.
    pub const RECONFIGURED: Self = Self(8);

    /// Parse a `state` node's value (decimal, surrounding whitespace and
    /// NULs ignored); garbage is [`XenbusState::UNKNOWN`].
    #[must_use]
    pub fn parse(value: &[u8]) -> Self {
        let s = String::from_utf8_lossy(value);
        Self(
            s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .parse()
                .unwrap_or(0),
        )
    }

    /// The value to write in a `state` node.
    #[must_use]
    pub fn to_value(self) -> String {
        self.0.to_string()
    }

    /// The C name without `XenbusState`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Unknown",
            1 => "Initialising",
            2 => "InitWait",
            3 => "Initialised",
            4 => "Connected",
            5 => "Closing",
            6 => "Closed",
            7 => "Reconfiguring",
            8 => "Reconfigured",
            _ => "Invalid",
        }
    }
}

impl fmt::Debug for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the caller must do next, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write the feature keys a backend publishes before `InitWait`.
    Advertise,
    /// Read the frontend's ring keys, map the rings, bind the event
    /// channels and start serving; then write the connect keys (sectors,
    /// features) and report [`Backend::handle_connected`].
    Connect,
    /// Stop serving: drain the requests in flight, unmap, unbind.
    Disconnect,
    /// Write the backend's `state` node.
    SwitchState(XenbusState),
    /// The device is gone: forget it (stop watching its nodes).
    Remove,
    /// LUN hot-plug ([`Backend::with_lun_hotplug`]): apply the device
    /// entries the toolstack added or closed, with the rings kept up.
    Reconfigure,
    /// LUN hot-plug: the frontend is `Connected` and has attached the
    /// entries offered so far; mark them connected.
    ConfirmDevices,
}

/// A backend's view of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    state: XenbusState,
    connected: bool,
    connecting: bool,
    removed: bool,
    online: bool,
    lun_hotplug: bool,
    actions: VecDeque<Action>,
}

impl Default for Backend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend {
    /// A new device whose backend node reads `Initialising`: it advertises
    /// its features and moves to `InitWait` (see [`Backend::poll_action`]).
    #[must_use]
    pub fn new() -> Self {
        let mut b = Self {
            state: XenbusState::INITIALISING,
            connected: false,
            connecting: false,
            removed: false,
            online: true,
            lun_hotplug: false,
            actions: VecDeque::new(),
        };
        b.init_wait();
        b
    }

    /// A backend for a protocol whose `Reconfiguring` is LUN hot-plug with
    /// the rings kept up (vscsiif), not a reconnect: see the module docs.
    #[must_use]
    pub fn with_lun_hotplug(mut self) -> Self {
        self.lun_hotplug = true;
        self
    }

    /// The state last asked for with [`Action::SwitchState`].
    #[must_use]
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// Whether the rings are up (between a successful connect and the next
    /// disconnect).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether [`Action::Remove`] was issued.
    #[must_use]
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// The next action, if any.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn switch(&mut self, s: XenbusState) {
        if self.state != s {
            self.state = s;
            self.actions.push_back(Action::SwitchState(s));
        }
    }

    fn init_wait(&mut self) {
        self.actions.push_back(Action::Advertise);
        self.switch(XenbusState::INIT_WAIT);
    }

    fn disconnect(&mut self) {
        if self.connected || self.connecting {
            self.connected = false;
            self.connecting = false;
            self.actions.push_back(Action::Disconnect);
        }
    }

    fn remove(&mut self) {
        if !self.removed {
            self.removed = true;
            self.actions.push_back(Action::Remove);
        }
    }

    /// The backend's `online` node changed (the toolstack writes 0 before
    /// a detach).
    pub fn handle_online(&mut self, online: bool) {
        self.online = online;
        if !online && self.state == XenbusState::CLOSED {
            self.remove();
        }
    }

    /// The frontend's `state` node now reads `fe`.
    pub fn handle_frontend(&mut self, fe: XenbusState) {
        if self.removed {
            return;
        }
        match fe {
            // A frontend coming back (reload, kexec): start over.
            XenbusState::INITIALISING if self.state == XenbusState::CLOSED => self.init_wait(),
            // The frontend attached the LUNs offered (after a connect or a
            // hot-plug round).
            XenbusState::CONNECTED if self.connected && self.lun_hotplug => {
                self.actions.push_back(Action::ConfirmDevices);
                self.switch(XenbusState::CONNECTED);
            }
            XenbusState::RECONFIGURING if self.connected && self.lun_hotplug => {
                self.actions.push_back(Action::Reconfigure);
                self.switch(XenbusState::RECONFIGURED);
            }
            XenbusState::INITIALISED | XenbusState::CONNECTED => {
                // Both may be seen (two writes, one watch): connect once.
                if self.connected || self.connecting {
                    return;
                }
                if matches!(
                    self.state,
                    XenbusState::INIT_WAIT | XenbusState::RECONFIGURING
                ) {
                    self.connecting = true;
                    self.actions.push_back(Action::Connect);
                }
            }
            XenbusState::CLOSING => {
                self.disconnect();
                self.switch(XenbusState::CLOSING);
            }
            XenbusState::CLOSED => {
                self.disconnect();
                self.switch(XenbusState::CLOSED);
                if !self.online {
                    self.remove();
                }
            }
            XenbusState::RECONFIGURING if self.connected => {
                self.disconnect();
                self.switch(XenbusState::RECONFIGURING);
            }
            XenbusState::RECONFIGURED
                if self.state == XenbusState::RECONFIGURING && !self.connecting =>
            {
                self.connecting = true;
                self.actions.push_back(Action::Connect);
            }
            // Unknown (0, garbage), or a move that needs nothing here: the
            // frontend node's removal is reported separately.
            _ => {}
        }
    }

    /// The outcome of an [`Action::Connect`]: on success the backend goes
    /// `Connected`; on failure (bad ring keys, refused grants) it goes
    /// `Closing`, as Linux's `xenbus_dev_fatal` does.
    pub fn handle_connected(&mut self, ok: bool) {
        if !self.connecting {
            return; // A disconnect overtook the connect.
        }
        self.connecting = false;
        if ok {
            self.connected = true;
            self.switch(XenbusState::CONNECTED);
        } else {
            self.actions.push_back(Action::Disconnect);
            self.switch(XenbusState::CLOSING);
        }
    }

    /// The serving side stopped on its own (a frontend corrupted its
    /// ring): disconnect and go `Closing`.
    pub fn handle_ring_failed(&mut self) {
        if self.connected {
            self.disconnect();
            self.switch(XenbusState::CLOSING);
        }
    }

    /// The frontend's directory (or the backend's own) was removed: tear
    /// down now.
    pub fn handle_frontend_gone(&mut self) {
        if self.removed {
            return;
        }
        self.disconnect();
        self.switch(XenbusState::CLOSED);
        self.remove();
    }

    /// The process is shutting down: disconnect and go `Closed`.
    pub fn handle_shutdown(&mut self) {
        if self.removed {
            return;
        }
        self.disconnect();
        self.switch(XenbusState::CLOSED);
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u32) -> Action = |n| Action::SwitchState(XenbusState(n));

    fn drain(b: &mut Backend) -> Vec<Action> {
        std::iter::from_fn(|| b.poll_action()).collect()
    }

    fn connected() -> Backend {
        let mut b = Backend::new();
        drain(&mut b);
        b.handle_frontend(XenbusState::INITIALISED);
        assert_eq!(drain(&mut b), [Action::Connect]);
        b.handle_connected(true);
        assert_eq!(drain(&mut b), [S(4)]);
        b
    }

    #[test]
    fn parses_state_values() {
        assert_eq!(XenbusState::parse(b"4"), XenbusState::CONNECTED);
        assert_eq!(XenbusState::parse(b" 6\n\0"), XenbusState::CLOSED);
        assert_eq!(XenbusState::parse(b"x"), XenbusState::UNKNOWN);
        assert_eq!(XenbusState::parse(b""), XenbusState::UNKNOWN);
        assert_eq!(format!("{:?}", XenbusState(2)), "InitWait(2)");
        assert_eq!(XenbusState::RECONFIGURED.to_value(), "8");
    }

    #[test]
    fn advertises_then_waits() {
        let mut b = Backend::new();
        assert_eq!(drain(&mut b), [Action::Advertise, S(2)]);
        // A frontend still Initialising changes nothing.
        b.handle_frontend(XenbusState::INITIALISING);
        assert_eq!(drain(&mut b), []);
    }

    #[test]
    fn connects_once_for_initialised_then_connected() {
        let mut b = connected();
        b.handle_frontend(XenbusState::CONNECTED);
        b.handle_frontend(XenbusState::INITIALISED);
        assert_eq!(drain(&mut b), []);
        assert!(b.is_connected());
    }

    #[test]
    fn accepts_a_frontend_that_skips_initialised() {
        let mut b = Backend::new();
        drain(&mut b);
        b.handle_frontend(XenbusState::CONNECTED);
        assert_eq!(drain(&mut b), [Action::Connect]);
    }

    #[test]
    fn a_failed_connect_closes() {
        let mut b = Backend::new();
        drain(&mut b);
        b.handle_frontend(XenbusState::INITIALISED);
        drain(&mut b);
        b.handle_connected(false);
        assert_eq!(drain(&mut b), [Action::Disconnect, S(5)]);
        assert!(!b.is_connected());
    }

    #[test]
    fn detach_closing_then_closed_then_removed_when_offline() {
        let mut b = connected();
        b.handle_online(false); // libxl: online=0, backend state=5
        b.handle_frontend(XenbusState::CLOSING);
        assert_eq!(drain(&mut b), [Action::Disconnect, S(5)]);
        b.handle_frontend(XenbusState::CLOSED);
        assert_eq!(drain(&mut b), [S(6), Action::Remove]);
        assert!(b.is_removed());
        b.handle_frontend(XenbusState::INITIALISING);
        assert_eq!(drain(&mut b), []);
    }

    #[test]
    fn frontend_straight_to_closed_disconnects() {
        let mut b = connected();
        b.handle_frontend(XenbusState::CLOSED);
        assert_eq!(drain(&mut b), [Action::Disconnect, S(6)]);
        // Still online: a frontend that comes back is served again.
        b.handle_frontend(XenbusState::INITIALISING);
        assert_eq!(drain(&mut b), [Action::Advertise, S(2)]);
        b.handle_frontend(XenbusState::INITIALISED);
        assert_eq!(drain(&mut b), [Action::Connect]);
    }

    #[test]
    fn offline_after_closed_removes() {
        let mut b = connected();
        b.handle_frontend(XenbusState::CLOSED);
        drain(&mut b);
        b.handle_online(false);
        assert_eq!(drain(&mut b), [Action::Remove]);
    }

    #[test]
    fn lun_hotplug_keeps_the_rings_up() {
        let mut b = Backend::new().with_lun_hotplug();
        drain(&mut b);
        b.handle_frontend(XenbusState::INITIALISED);
        assert_eq!(drain(&mut b), [Action::Connect]);
        b.handle_connected(true);
        assert_eq!(drain(&mut b), [S(4)]);
        b.handle_frontend(XenbusState::CONNECTED);
        assert_eq!(drain(&mut b), [Action::ConfirmDevices]);
        // The toolstack wrote backend state 7; the frontend answers 7.
        b.handle_frontend(XenbusState::RECONFIGURING);
        assert_eq!(drain(&mut b), [Action::Reconfigure, S(8)]);
        assert!(b.is_connected());
        b.handle_frontend(XenbusState::CONNECTED);
        assert_eq!(drain(&mut b), [Action::ConfirmDevices, S(4)]);
        // A second round works the same way.
        b.handle_frontend(XenbusState::RECONFIGURING);
        assert_eq!(drain(&mut b), [Action::Reconfigure, S(8)]);
        // Not connected: Reconfiguring means nothing yet.
        let mut b = Backend::new().with_lun_hotplug();
        drain(&mut b);
        b.handle_frontend(XenbusState::RECONFIGURING);
        assert_eq!(drain(&mut b), []);
    }

    #[test]
    fn reconfigure_reconnects() {
        let mut b = connected();
        b.handle_frontend(XenbusState::RECONFIGURING);
        assert_eq!(drain(&mut b), [Action::Disconnect, S(7)]);
        b.handle_frontend(XenbusState::RECONFIGURED);
        assert_eq!(drain(&mut b), [Action::Connect]);
        b.handle_connected(true);
        assert_eq!(drain(&mut b), [S(4)]);
    }

    #[test]
    fn reconfigured_without_reconfiguring_is_ignored() {
        let mut b = connected();
        b.handle_frontend(XenbusState::RECONFIGURED);
        assert_eq!(drain(&mut b), []);
    }

    #[test]
    fn vanished_frontend_tears_down() {
        let mut b = connected();
        b.handle_frontend_gone();
        assert_eq!(drain(&mut b), [Action::Disconnect, S(6), Action::Remove]);
        b.handle_frontend_gone();
        assert_eq!(drain(&mut b), []);
    }

    #[test]
    fn vanishing_while_waiting_needs_no_disconnect() {
        let mut b = Backend::new();
        drain(&mut b);
        b.handle_frontend_gone();
        assert_eq!(drain(&mut b), [S(6), Action::Remove]);
    }

    #[test]
    fn a_disconnect_during_connect_wins() {
        let mut b = Backend::new();
        drain(&mut b);
        b.handle_frontend(XenbusState::INITIALISED);
        drain(&mut b);
        b.handle_frontend(XenbusState::CLOSING);
        assert_eq!(drain(&mut b), [Action::Disconnect, S(5)]);
        b.handle_connected(true);
        assert_eq!(drain(&mut b), []);
        assert!(!b.is_connected());
    }

    #[test]
    fn ring_failure_closes() {
        let mut b = connected();
        b.handle_ring_failed();
        assert_eq!(drain(&mut b), [Action::Disconnect, S(5)]);
    }

    #[test]
    fn shutdown_closes_and_removes() {
        let mut b = connected();
        b.handle_shutdown();
        assert_eq!(drain(&mut b), [Action::Disconnect, S(6), Action::Remove]);
    }

    #[test]
    fn garbage_states_never_move_the_backend() {
        let mut b = connected();
        for n in [0u32, 9, 99, u32::MAX] {
            b.handle_frontend(XenbusState(n));
        }
        assert_eq!(drain(&mut b), []);
        assert!(b.is_connected());
    }
}
