//! Operational parameters (RFC 7143 §13) and the target's side of their
//! negotiation.
//!
//! Each key the initiator offers gets exactly one answer from
//! [`Negotiator::answer`]: the result value for negotiated keys (the
//! numeric minimum or maximum, the boolean OR or AND, the first acceptable
//! list item), `Irrelevant` where the session type makes it so,
//! `NotUnderstood` for unknown keys and `Reject` for malformed values.

/// What the target is willing to do; the upper bounds of negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLimits {
    /// Our MaxRecvDataSegmentLength: the largest data segment we accept
    /// (declared to the initiator; 512..=16777215).
    pub max_recv_data_segment_length: u32,
    /// Largest MaxBurstLength we agree to.
    pub max_burst_length: u32,
    /// Largest FirstBurstLength we agree to.
    pub first_burst_length: u32,
    /// Largest MaxOutstandingR2T we agree to.
    pub max_outstanding_r2t: u16,
    /// Whether we accept immediate data (ImmediateData AND).
    pub immediate_data: bool,
    /// Whether we insist on InitialR2T=Yes (InitialR2T OR).
    pub initial_r2t: bool,
    /// Whether CRC32C digests may be chosen.
    pub digests: bool,
    /// Commands a session may have outstanding (the CmdSN window).
    pub queue_depth: u32,
    /// Largest Expected Data Transfer Length of one command; larger ones
    /// get CHECK CONDITION rather than a buffer.
    pub max_command_data: u32,
}

impl Default for TargetLimits {
    fn default() -> Self {
        Self {
            max_recv_data_segment_length: 256 * 1024,
            max_burst_length: 1024 * 1024,
            first_burst_length: 256 * 1024,
            max_outstanding_r2t: 4,
            immediate_data: true,
            initial_r2t: false,
            digests: true,
            queue_depth: 128,
            max_command_data: 16 * 1024 * 1024,
        }
    }
}

/// The parameters in force for a session after login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// HeaderDigest=CRC32C.
    pub header_digest: bool,
    /// DataDigest=CRC32C.
    pub data_digest: bool,
    /// Our MaxRecvDataSegmentLength (what we accept).
    pub max_recv_data_segment_length: u32,
    /// The initiator's MaxRecvDataSegmentLength (what we may send).
    pub max_xmit_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// DefaultTime2Wait.
    pub default_time2wait: u16,
    /// DefaultTime2Retain.
    pub default_time2retain: u16,
    /// ErrorRecoveryLevel (always 0 here).
    pub error_recovery_level: u8,
    /// MaxConnections (always 1 here).
    pub max_connections: u16,
}

impl Default for SessionParams {
    /// The RFC 7143 §13 defaults.
    fn default() -> Self {
        Self {
            header_digest: false,
            data_digest: false,
            max_recv_data_segment_length: 8192,
            max_xmit_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            initial_r2t: true,
            immediate_data: true,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            default_time2wait: 2,
            default_time2retain: 20,
            error_recovery_level: 0,
            max_connections: 1,
        }
    }
}

/// The answer to one offered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Reply `key=value`.
    Reply(String),
    /// A declarative key that needs no reply (InitiatorAlias, ...).
    None,
}

/// Negotiates operational keys for one login (RFC 7143 §6.2, §13).
#[derive(Debug, Clone)]
pub struct Negotiator {
    limits: TargetLimits,
    /// The result so far.
    pub params: SessionParams,
    discovery: bool,
}

fn parse_num(v: &str) -> Option<u64> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if v.len() <= 20 && !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_owned()
}

impl Negotiator {
    /// A negotiator for a Normal (`discovery == false`) or Discovery session.
    #[must_use]
    pub fn new(limits: TargetLimits, discovery: bool) -> Self {
        let params = SessionParams {
            max_recv_data_segment_length: limits.max_recv_data_segment_length,
            ..SessionParams::default()
        };
        Self {
            limits,
            params,
            discovery,
        }
    }

    /// Whether `key` is an operational key this negotiator answers.
    #[must_use]
    pub fn handles(key: &str) -> bool {
        matches!(
            key,
            "HeaderDigest"
                | "DataDigest"
                | "MaxRecvDataSegmentLength"
                | "MaxBurstLength"
                | "FirstBurstLength"
                | "InitialR2T"
                | "ImmediateData"
                | "MaxOutstandingR2T"
                | "DataPDUInOrder"
                | "DataSequenceInOrder"
                | "DefaultTime2Wait"
                | "DefaultTime2Retain"
                | "ErrorRecoveryLevel"
                | "MaxConnections"
                | "IFMarker"
                | "OFMarker"
                | "IFMarkInt"
                | "OFMarkInt"
                | "InitiatorAlias"
                | "TargetAlias"
                | "iSCSIProtocolLevel"
                | "TaskReporting"
        )
    }

    /// The answer to `key=value`, updating [`Negotiator::params`].
    pub fn answer(&mut self, key: &str, value: &str) -> Answer {
        let reply = |s: &str| Answer::Reply(s.to_owned());
        let p = &mut self.params;
        let l = &self.limits;
        let irrelevant_in_discovery = matches!(
            key,
            "MaxBurstLength"
                | "FirstBurstLength"
                | "InitialR2T"
                | "ImmediateData"
                | "MaxOutstandingR2T"
                | "DataPDUInOrder"
                | "DataSequenceInOrder"
                | "MaxConnections"
        );
        if self.discovery && irrelevant_in_discovery {
            // RFC 7143 §13: these keys are irrelevant for Discovery sessions.
            return reply("Irrelevant");
        }
        match key {
            "HeaderDigest" | "DataDigest" => {
                // List: pick the first acceptable item in the initiator's order.
                let choice = value.split(',').find(|v| match *v {
                    "None" => true,
                    "CRC32C" => l.digests,
                    _ => false,
                });
                match choice {
                    Some(c) => {
                        let on = c == "CRC32C";
                        if key == "HeaderDigest" {
                            p.header_digest = on;
                        } else {
                            p.data_digest = on;
                        }
                        reply(c)
                    }
                    None => reply("Reject"),
                }
            }
            "MaxRecvDataSegmentLength" => match parse_num(value) {
                // Declarative: the initiator's receive limit, 512..2^24-1.
                Some(n @ 512..=16_777_215) => {
                    p.max_xmit_data_segment_length = u32::try_from(n).unwrap_or(8192);
                    // Our own value is declared by the login machine.
                    Answer::None
                }
                _ => reply("Reject"),
            },
            "MaxBurstLength" | "FirstBurstLength" => match parse_num(value) {
                Some(n @ 512..=16_777_215) => {
                    let n = u32::try_from(n).unwrap_or(512);
                    if key == "MaxBurstLength" {
                        p.max_burst_length = n.min(l.max_burst_length);
                        p.first_burst_length = p.first_burst_length.min(p.max_burst_length);
                        Answer::Reply(p.max_burst_length.to_string())
                    } else {
                        // FirstBurstLength <= MaxBurstLength (§13.14).
                        p.first_burst_length = n.min(l.first_burst_length).min(p.max_burst_length);
                        Answer::Reply(p.first_burst_length.to_string())
                    }
                }
                _ => reply("Reject"),
            },
            "InitialR2T" => match parse_bool(value) {
                Some(b) => {
                    p.initial_r2t = b || l.initial_r2t; // OR
                    Answer::Reply(yes_no(p.initial_r2t))
                }
                None => reply("Reject"),
            },
            "ImmediateData" => match parse_bool(value) {
                Some(b) => {
                    p.immediate_data = b && l.immediate_data; // AND
                    Answer::Reply(yes_no(p.immediate_data))
                }
                None => reply("Reject"),
            },
            "DataPDUInOrder" | "DataSequenceInOrder" => match parse_bool(value) {
                // OR: we answer Yes, so the result is Yes.
                Some(_) => reply("Yes"),
                None => reply("Reject"),
            },
            "MaxOutstandingR2T" => match parse_num(value) {
                Some(n @ 1..=65535) => {
                    p.max_outstanding_r2t = u16::try_from(n)
                        .unwrap_or(1)
                        .min(l.max_outstanding_r2t)
                        .max(1);
                    Answer::Reply(p.max_outstanding_r2t.to_string())
                }
                _ => reply("Reject"),
            },
            "DefaultTime2Wait" | "DefaultTime2Retain" => match parse_num(value) {
                Some(n @ 0..=3600) => {
                    let n = u16::try_from(n).unwrap_or(0);
                    if key == "DefaultTime2Wait" {
                        p.default_time2wait = n; // max(ours=0, theirs)
                        Answer::Reply(p.default_time2wait.to_string())
                    } else {
                        // min(theirs, ours=0): ERL 0 keeps no state after loss.
                        p.default_time2retain = 0;
                        reply("0")
                    }
                }
                _ => reply("Reject"),
            },
            "ErrorRecoveryLevel" => match parse_num(value) {
                Some(0..=2) => {
                    p.error_recovery_level = 0;
                    reply("0")
                }
                _ => reply("Reject"),
            },
            "MaxConnections" => match parse_num(value) {
                Some(1..=65535) => {
                    p.max_connections = 1;
                    reply("1")
                }
                _ => reply("Reject"),
            },
            // RFC 3720 markers, removed by RFC 7143 (§13.25): never used.
            "IFMarker" | "OFMarker" => reply("No"),
            "IFMarkInt" | "OFMarkInt" => reply("Irrelevant"),
            "InitiatorAlias" => Answer::None,
            // TargetAlias is ours to declare; the initiator may not send it.
            "TargetAlias" => reply("Reject"),
            // RFC 7144 keys: we implement RFC 7143 (protocol level 1) and
            // RFC 3720 task reporting.
            "iSCSIProtocolLevel" => match parse_num(value) {
                Some(_) => reply("1"),
                None => reply("Reject"),
            },
            "TaskReporting" => reply("RFC3720"),
            _ => reply("NotUnderstood"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neg() -> Negotiator {
        Negotiator::new(TargetLimits::default(), false)
    }

    #[test]
    fn accepts_numeric_minimum_and_maximum() {
        // RFC 7143 §13.13/§13.14: MaxBurstLength and FirstBurstLength are min().
        let mut n = neg();
        assert_eq!(
            n.answer("MaxBurstLength", "16776192"),
            Answer::Reply("1048576".into())
        );
        assert_eq!(
            n.answer("FirstBurstLength", "65536"),
            Answer::Reply("65536".into())
        );
        assert_eq!(n.answer("DefaultTime2Wait", "2"), Answer::Reply("2".into()));
        assert_eq!(n.params.max_burst_length, 1_048_576);
    }

    #[test]
    fn accepts_boolean_or_and_and() {
        // §13.10 InitialR2T is OR; §13.11 ImmediateData is AND.
        let mut n = Negotiator::new(
            TargetLimits {
                immediate_data: false,
                ..TargetLimits::default()
            },
            false,
        );
        assert_eq!(n.answer("InitialR2T", "No"), Answer::Reply("No".into()));
        assert_eq!(n.answer("ImmediateData", "Yes"), Answer::Reply("No".into()));
        assert!(!n.params.immediate_data);
    }

    #[test]
    fn accepts_first_digest_in_initiator_order() {
        let mut n = neg();
        assert_eq!(
            n.answer("HeaderDigest", "CRC32C,None"),
            Answer::Reply("CRC32C".into())
        );
        assert_eq!(
            n.answer("DataDigest", "None,CRC32C"),
            Answer::Reply("None".into())
        );
        assert!(n.params.header_digest && !n.params.data_digest);
        let mut off = Negotiator::new(
            TargetLimits {
                digests: false,
                ..TargetLimits::default()
            },
            false,
        );
        assert_eq!(
            off.answer("HeaderDigest", "CRC32C"),
            Answer::Reply("Reject".into())
        );
    }

    #[test]
    fn rejects_out_of_range_values() {
        // §13.12: MaxRecvDataSegmentLength is 512 to 2^24-1.
        let mut n = neg();
        assert_eq!(
            n.answer("MaxRecvDataSegmentLength", "511"),
            Answer::Reply("Reject".into())
        );
        assert_eq!(
            n.answer("MaxBurstLength", "yes"),
            Answer::Reply("Reject".into())
        );
        assert_eq!(
            n.answer("InitialR2T", "maybe"),
            Answer::Reply("Reject".into())
        );
        assert_eq!(
            n.answer("X-com.example.Foo", "1"),
            Answer::Reply("NotUnderstood".into())
        );
    }

    #[test]
    fn accepts_erl0_and_one_connection_only() {
        let mut n = neg();
        assert_eq!(
            n.answer("ErrorRecoveryLevel", "2"),
            Answer::Reply("0".into())
        );
        assert_eq!(n.answer("MaxConnections", "8"), Answer::Reply("1".into()));
    }

    #[test]
    fn accepts_irrelevant_keys_in_discovery() {
        let mut n = Negotiator::new(TargetLimits::default(), true);
        assert_eq!(
            n.answer("MaxBurstLength", "262144"),
            Answer::Reply("Irrelevant".into())
        );
        assert_eq!(n.answer("MaxRecvDataSegmentLength", "65536"), Answer::None);
        assert_eq!(n.params.max_xmit_data_segment_length, 65536);
    }
}
