//! Sense data (SPC-4 §4.4): sense keys, additional sense codes, and the fixed
//! and descriptor formats.
//!
//! A [`Sense`] is the typed value; [`Sense::encode`] writes it in the format
//! the logical unit uses (fixed 70h/71h, or descriptor 72h/73h when D_SENSE
//! is set in the control mode page) and [`Sense::decode`] reads either
//! format back. Sense-key-specific field pointers ([`FieldPointer`]) say
//! which CDB or parameter-list byte and bit was wrong.
//!
//! Decoding never panics: short or malformed input is an error.

use std::fmt;

/// A sense key (SPC-4 table 27): an open newtype so unknown values survive.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenseKey(pub u8);

impl SenseKey {
    /// NO SENSE.
    pub const NO_SENSE: Self = Self(0x0);
    /// RECOVERED ERROR.
    pub const RECOVERED_ERROR: Self = Self(0x1);
    /// NOT READY.
    pub const NOT_READY: Self = Self(0x2);
    /// MEDIUM ERROR.
    pub const MEDIUM_ERROR: Self = Self(0x3);
    /// HARDWARE ERROR.
    pub const HARDWARE_ERROR: Self = Self(0x4);
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: Self = Self(0x5);
    /// UNIT ATTENTION.
    pub const UNIT_ATTENTION: Self = Self(0x6);
    /// DATA PROTECT.
    pub const DATA_PROTECT: Self = Self(0x7);
    /// BLANK CHECK.
    pub const BLANK_CHECK: Self = Self(0x8);
    /// COPY ABORTED.
    pub const COPY_ABORTED: Self = Self(0xA);
    /// ABORTED COMMAND.
    pub const ABORTED_COMMAND: Self = Self(0xB);
    /// VOLUME OVERFLOW.
    pub const VOLUME_OVERFLOW: Self = Self(0xD);
    /// MISCOMPARE.
    pub const MISCOMPARE: Self = Self(0xE);
}

impl fmt::Debug for SenseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SenseKey({:#x})", self.0)
    }
}

/// An additional sense code and qualifier, as `(ASC << 8) | ASCQ`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Asc(pub u16);

macro_rules! ascs {
    ($($(#[$doc:meta])* $name:ident = $asc:literal, $ascq:literal;)*) => {
        impl Asc {
            $( $(#[$doc])* pub const $name: Self = Self(($asc << 8) | $ascq); )*
        }
    };
}

ascs! {
    /// NO ADDITIONAL SENSE INFORMATION.
    NO_ADDITIONAL_SENSE = 0x00, 0x00;
    /// FILEMARK DETECTED.
    FILEMARK_DETECTED = 0x00, 0x01;
    /// END-OF-PARTITION/MEDIUM DETECTED.
    END_OF_PARTITION_MEDIUM_DETECTED = 0x00, 0x02;
    /// BEGINNING-OF-PARTITION/MEDIUM DETECTED.
    BEGINNING_OF_PARTITION_MEDIUM_DETECTED = 0x00, 0x04;
    /// END-OF-DATA DETECTED.
    END_OF_DATA_DETECTED = 0x00, 0x05;
    /// OPERATION IN PROGRESS.
    OPERATION_IN_PROGRESS = 0x00, 0x16;
    /// LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE.
    LUN_NOT_READY = 0x04, 0x00;
    /// LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED.
    LUN_NOT_READY_INIT_REQUIRED = 0x04, 0x02;
    /// LOGICAL UNIT NOT READY, FORMAT IN PROGRESS.
    LUN_NOT_READY_FORMAT_IN_PROGRESS = 0x04, 0x04;
    /// UNREACHABLE COPY TARGET.
    UNREACHABLE_COPY_TARGET = 0x08, 0x04;
    /// LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION.
    LUN_NOT_ACCESSIBLE_TRANSITIONING = 0x04, 0x0A;
    /// LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE.
    LUN_NOT_ACCESSIBLE_STANDBY = 0x04, 0x0B;
    /// LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE.
    LUN_NOT_ACCESSIBLE_UNAVAILABLE = 0x04, 0x0C;
    /// LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS.
    SANITIZE_IN_PROGRESS = 0x04, 0x1B;
    /// WRITE ERROR.
    WRITE_ERROR = 0x0C, 0x00;
    /// COPY TARGET DEVICE NOT REACHABLE.
    COPY_TARGET_DEVICE_NOT_REACHABLE = 0x0D, 0x02;
    /// UNRECOVERED READ ERROR.
    UNRECOVERED_READ_ERROR = 0x11, 0x00;
    /// MISCOMPARE DURING VERIFY OPERATION.
    MISCOMPARE_DURING_VERIFY = 0x1D, 0x00;
    /// PARAMETER LIST LENGTH ERROR.
    PARAMETER_LIST_LENGTH_ERROR = 0x1A, 0x00;
    /// INVALID COMMAND OPERATION CODE.
    INVALID_COMMAND_OPERATION_CODE = 0x20, 0x00;
    /// LOGICAL BLOCK ADDRESS OUT OF RANGE.
    LBA_OUT_OF_RANGE = 0x21, 0x00;
    /// INVALID FIELD IN CDB.
    INVALID_FIELD_IN_CDB = 0x24, 0x00;
    /// LOGICAL UNIT NOT SUPPORTED.
    LUN_NOT_SUPPORTED = 0x25, 0x00;
    /// INVALID FIELD IN PARAMETER LIST.
    INVALID_FIELD_IN_PARAMETER_LIST = 0x26, 0x00;
    /// PARAMETER NOT SUPPORTED.
    PARAMETER_NOT_SUPPORTED = 0x26, 0x01;
    /// PARAMETER VALUE INVALID.
    PARAMETER_VALUE_INVALID = 0x26, 0x02;
    /// INVALID RELEASE OF PERSISTENT RESERVATION.
    INVALID_RELEASE_OF_PERSISTENT_RESERVATION = 0x26, 0x04;
    /// TOO MANY TARGET DESCRIPTORS.
    TOO_MANY_TARGET_DESCRIPTORS = 0x26, 0x06;
    /// UNSUPPORTED TARGET DESCRIPTOR TYPE CODE.
    UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE = 0x26, 0x07;
    /// TOO MANY SEGMENT DESCRIPTORS.
    TOO_MANY_SEGMENT_DESCRIPTORS = 0x26, 0x08;
    /// UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE.
    UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE = 0x26, 0x09;
    /// WRITE PROTECTED.
    WRITE_PROTECTED = 0x27, 0x00;
    /// SPACE ALLOCATION FAILED WRITE PROTECT.
    SPACE_ALLOCATION_FAILED_WRITE_PROTECT = 0x27, 0x07;
    /// NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED.
    NOT_READY_TO_READY_CHANGE = 0x28, 0x00;
    /// POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    POWER_ON_RESET = 0x29, 0x00;
    /// POWER ON OCCURRED.
    POWER_ON_OCCURRED = 0x29, 0x01;
    /// BUS DEVICE RESET FUNCTION OCCURRED.
    BUS_DEVICE_RESET_FUNCTION_OCCURRED = 0x29, 0x03;
    /// I_T NEXUS LOSS OCCURRED.
    I_T_NEXUS_LOSS_OCCURRED = 0x29, 0x07;
    /// PARAMETERS CHANGED.
    PARAMETERS_CHANGED = 0x2A, 0x00;
    /// MODE PARAMETERS CHANGED.
    MODE_PARAMETERS_CHANGED = 0x2A, 0x01;
    /// RESERVATIONS PREEMPTED.
    RESERVATIONS_PREEMPTED = 0x2A, 0x03;
    /// RESERVATIONS RELEASED.
    RESERVATIONS_RELEASED = 0x2A, 0x04;
    /// ASYMMETRIC ACCESS STATE CHANGED.
    ASYMMETRIC_ACCESS_STATE_CHANGED = 0x2A, 0x06;
    /// REGISTRATIONS PREEMPTED.
    REGISTRATIONS_PREEMPTED = 0x2A, 0x05;
    /// CAPACITY DATA HAS CHANGED.
    CAPACITY_DATA_HAS_CHANGED = 0x2A, 0x09;
    /// COMMANDS CLEARED BY ANOTHER INITIATOR.
    COMMANDS_CLEARED_BY_ANOTHER_INITIATOR = 0x2F, 0x00;
    /// COMMANDS CLEARED BY DEVICE SERVER.
    COMMANDS_CLEARED_BY_DEVICE_SERVER = 0x2F, 0x02;
    /// SAVING PARAMETERS NOT SUPPORTED.
    SAVING_PARAMETERS_NOT_SUPPORTED = 0x39, 0x00;
    /// SANITIZE COMMAND FAILED.
    SANITIZE_COMMAND_FAILED = 0x31, 0x03;
    /// MEDIUM NOT PRESENT.
    MEDIUM_NOT_PRESENT = 0x3A, 0x00;
    /// MEDIUM FORMAT CORRUPTED.
    MEDIUM_FORMAT_CORRUPTED = 0x31, 0x00;
    /// INQUIRY DATA HAS CHANGED.
    INQUIRY_DATA_HAS_CHANGED = 0x3F, 0x03;
    /// REPORTED LUNS DATA HAS CHANGED.
    REPORTED_LUNS_DATA_HAS_CHANGED = 0x3F, 0x0E;
    /// INTERNAL TARGET FAILURE.
    INTERNAL_TARGET_FAILURE = 0x44, 0x00;
    /// INVALID MESSAGE ERROR.
    INVALID_MESSAGE_ERROR = 0x49, 0x00;
    /// COMMAND PHASE ERROR.
    COMMAND_PHASE_ERROR = 0x4A, 0x00;
    /// DATA PHASE ERROR.
    DATA_PHASE_ERROR = 0x4B, 0x00;
    /// OVERLAPPED COMMANDS ATTEMPTED.
    OVERLAPPED_COMMANDS_ATTEMPTED = 0x4E, 0x00;
    /// MEDIUM REMOVAL PREVENTED.
    MEDIUM_REMOVAL_PREVENTED = 0x53, 0x02;
    /// SET TARGET PORT GROUPS COMMAND FAILED.
    SET_TARGET_PORT_GROUPS_FAILED = 0x67, 0x0A;
    /// INSUFFICIENT REGISTRATION RESOURCES.
    INSUFFICIENT_REGISTRATION_RESOURCES = 0x55, 0x04;
    /// INSUFFICIENT RESOURCES TO CREATE ROD TOKEN.
    INSUFFICIENT_RESOURCES_TO_CREATE_ROD_TOKEN = 0x55, 0x0C;
    /// INVALID TOKEN OPERATION, CAUSE NOT REPORTABLE.
    INVALID_TOKEN_OPERATION = 0x23, 0x00;
    /// INVALID TOKEN OPERATION, UNSUPPORTED TOKEN TYPE.
    UNSUPPORTED_TOKEN_TYPE = 0x23, 0x01;
    /// INVALID TOKEN OPERATION, TOKEN UNKNOWN.
    TOKEN_UNKNOWN = 0x23, 0x04;
    /// INVALID TOKEN OPERATION, TOKEN REVOKED.
    TOKEN_REVOKED = 0x23, 0x06;
    /// INVALID TOKEN OPERATION, TOKEN EXPIRED.
    TOKEN_EXPIRED = 0x23, 0x07;
    /// INVALID TOKEN OPERATION, INVALID TOKEN LENGTH.
    INVALID_TOKEN_LENGTH = 0x23, 0x0A;
}

impl Asc {
    /// The additional sense code byte.
    #[must_use]
    pub fn asc(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// The additional sense code qualifier byte.
    #[must_use]
    pub fn ascq(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    /// Build from the two bytes.
    #[must_use]
    pub fn from_bytes(asc: u8, ascq: u8) -> Self {
        Self((u16::from(asc) << 8) | u16::from(ascq))
    }
}

impl fmt::Debug for Asc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Asc({:#04x}/{:#04x})", self.asc(), self.ascq())
    }
}

/// A sense-key-specific field pointer (SPC-4 §4.4.1.2, table 32): which byte
/// (and optionally bit) of the CDB or of the parameter list was invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// C/D: the error is in the CDB (true) or in the parameter data (false).
    pub in_cdb: bool,
    /// Bit number (0..=7) when the error is in one bit field; the BPV bit is
    /// set when this is `Some`.
    pub bit: Option<u8>,
    /// Byte offset of the invalid field.
    pub byte: u16,
}

impl FieldPointer {
    /// An invalid CDB byte (whole-byte or multi-byte field).
    #[must_use]
    pub fn cdb(byte: u16) -> Self {
        Self {
            in_cdb: true,
            bit: None,
            byte,
        }
    }

    /// An invalid CDB bit field starting at `bit` of `byte`.
    #[must_use]
    pub fn cdb_bit(byte: u16, bit: u8) -> Self {
        Self {
            in_cdb: true,
            bit: Some(bit & 7),
            byte,
        }
    }

    /// An invalid parameter-list byte.
    #[must_use]
    pub fn param(byte: u16) -> Self {
        Self {
            in_cdb: false,
            bit: None,
            byte,
        }
    }

    /// An invalid parameter-list bit field.
    #[must_use]
    pub fn param_bit(byte: u16, bit: u8) -> Self {
        Self {
            in_cdb: false,
            bit: Some(bit & 7),
            byte,
        }
    }

    fn to_bytes(self) -> [u8; 3] {
        let mut b0 = 0x80; // SKSV
        if self.in_cdb {
            b0 |= 0x40;
        }
        if let Some(bit) = self.bit {
            b0 |= 0x08 | (bit & 7);
        }
        let [hi, lo] = self.byte.to_be_bytes();
        [b0, hi, lo]
    }

    fn from_bytes(b: [u8; 3]) -> Option<Self> {
        if b[0] & 0x80 == 0 {
            return None;
        }
        Some(Self {
            in_cdb: b[0] & 0x40 != 0,
            bit: (b[0] & 0x08 != 0).then_some(b[0] & 7),
            byte: u16::from_be_bytes([b[1], b[2]]),
        })
    }
}

/// The stream commands bits of sense data (SSC-4 §4.2.3; fixed format
/// byte 2, or the stream commands descriptor 04h): set by sequential-access
/// devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamBits(pub u8);

impl StreamBits {
    /// No bit set.
    pub const NONE: Self = Self(0);
    /// FILEMARK: the command met a filemark.
    pub const FILEMARK: Self = Self(0x80);
    /// EOM: the medium is at or past an end (early warning, or the
    /// beginning of the partition when spacing backward).
    pub const EOM: Self = Self(0x40);
    /// ILI: incorrect length indicator (the logical block's length was not
    /// the one requested).
    pub const ILI: Self = Self(0x20);

    /// Whether no bit is set.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 & 0xe0 == 0
    }
}

impl std::ops::BitOr for StreamBits {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// Sense data format (SPC-4 §4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenseFormat {
    /// Fixed format (response codes 70h/71h).
    #[default]
    Fixed,
    /// Descriptor format (response codes 72h/73h), chosen by D_SENSE.
    Descriptor,
}

/// Typed sense data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// The sense key.
    pub key: SenseKey,
    /// Additional sense code and qualifier.
    pub asc: Asc,
    /// The INFORMATION field (e.g. the MISCOMPARE offset, or the LBA of a
    /// medium error); the VALID bit is set when present.
    pub information: Option<u64>,
    /// The COMMAND-SPECIFIC INFORMATION field, whose meaning the command
    /// defines (EXTENDED COPY: the number of the segment that failed, in
    /// its third and fourth bytes).
    /// The fixed format holds four bytes of it, and reads zero as absent.
    pub command_specific: Option<u64>,
    /// Sense-key-specific field pointer (ILLEGAL REQUEST).
    pub field: Option<FieldPointer>,
    /// Deferred error (response code 71h/73h) rather than current.
    pub deferred: bool,
    /// FILEMARK, EOM and ILI (sequential-access devices).
    pub stream: StreamBits,
}

/// Largest sense buffer SPC-4 allows (252 bytes); our encodings are shorter.
pub const MAX_SENSE_LEN: usize = 252;

/// Length of the fixed-format encoding we emit.
pub const FIXED_SENSE_LEN: usize = 18;

/// An error decoding sense data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenseDecodeError {
    /// Shorter than the format's fixed part.
    #[error("sense data too short")]
    TooShort,
    /// The response code is not 70h-73h.
    #[error("unknown sense response code {0:#x}")]
    UnknownResponseCode(u8),
}

impl Sense {
    /// Sense with a key and an additional sense code.
    #[must_use]
    pub fn new(key: SenseKey, asc: Asc) -> Self {
        Self {
            key,
            asc,
            information: None,
            command_specific: None,
            field: None,
            deferred: false,
            stream: StreamBits::NONE,
        }
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at `byte` (and `bit`).
    #[must_use]
    pub fn invalid_cdb_field(byte: u16, bit: Option<u8>) -> Self {
        let field = match bit {
            Some(b) => FieldPointer::cdb_bit(byte, b),
            None => FieldPointer::cdb(byte),
        };
        Self::new(SenseKey::ILLEGAL_REQUEST, Asc::INVALID_FIELD_IN_CDB).with_field(field)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, pointing at `byte`
    /// (and `bit`) of the parameter data.
    #[must_use]
    pub fn invalid_param_field(byte: u16, bit: Option<u8>) -> Self {
        let field = match bit {
            Some(b) => FieldPointer::param_bit(byte, b),
            None => FieldPointer::param(byte),
        };
        Self::new(
            SenseKey::ILLEGAL_REQUEST,
            Asc::INVALID_FIELD_IN_PARAMETER_LIST,
        )
        .with_field(field)
    }

    /// ILLEGAL REQUEST with `asc` and no field pointer.
    #[must_use]
    pub fn illegal(asc: Asc) -> Self {
        Self::new(SenseKey::ILLEGAL_REQUEST, asc)
    }

    /// UNIT ATTENTION with `asc`.
    #[must_use]
    pub fn unit_attention(asc: Asc) -> Self {
        Self::new(SenseKey::UNIT_ATTENTION, asc)
    }

    /// Set the field pointer.
    #[must_use]
    pub fn with_field(mut self, field: FieldPointer) -> Self {
        self.field = Some(field);
        self
    }

    /// Set the INFORMATION field.
    #[must_use]
    pub fn with_information(mut self, info: u64) -> Self {
        self.information = Some(info);
        self
    }

    /// Set the COMMAND-SPECIFIC INFORMATION field.
    #[must_use]
    pub fn with_command_specific(mut self, info: u64) -> Self {
        self.command_specific = Some(info);
        self
    }

    /// Set the INFORMATION field to a signed residue (SSC-4: requested
    /// minus actual, negative for an overlength block), as a two's
    /// complement value.
    #[must_use]
    pub fn with_residue(self, residue: i64) -> Self {
        // Two's complement is the wire form.
        #[allow(clippy::cast_sign_loss)]
        self.with_information(residue as u64)
    }

    /// Set the stream commands bits.
    #[must_use]
    pub fn with_stream(mut self, stream: StreamBits) -> Self {
        self.stream = stream;
        self
    }

    /// Encode in `format` into `out`; returns the encoded length.
    ///
    /// Fixed format is 18 bytes; descriptor format is 8 bytes plus one
    /// information descriptor (12), one command-specific information
    /// descriptor (12), one sense-key-specific descriptor (8) and one
    /// stream commands descriptor (4) when those fields are present. `out` must hold [`Sense::encoded_len`]
    /// bytes; a shorter `out` receives a truncated copy.
    pub fn encode(&self, format: SenseFormat, out: &mut [u8]) -> usize {
        let mut buf = [0u8; ENCODE_BUF];
        let len = match format {
            SenseFormat::Fixed => self.encode_fixed(&mut buf),
            SenseFormat::Descriptor => self.encode_descriptor(&mut buf),
        };
        let n = len.min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        n
    }

    /// Encode in `format` into a new byte vector.
    #[must_use]
    pub fn to_vec(&self, format: SenseFormat) -> Vec<u8> {
        let mut out = vec![0; self.encoded_len(format)];
        self.encode(format, &mut out);
        out
    }

    /// Length of the encoding in `format`.
    #[must_use]
    pub fn encoded_len(&self, format: SenseFormat) -> usize {
        match format {
            SenseFormat::Fixed => FIXED_SENSE_LEN,
            SenseFormat::Descriptor => {
                8 + if self.information.is_some() { 12 } else { 0 }
                    + if self.command_specific.is_some() {
                        12
                    } else {
                        0
                    }
                    + if self.field.is_some() { 8 } else { 0 }
                    + if self.stream.is_empty() { 0 } else { 4 }
            }
        }
    }

    fn encode_fixed(&self, b: &mut [u8; ENCODE_BUF]) -> usize {
        b[0] = if self.deferred { 0x71 } else { 0x70 };
        if let Some(info) = self.information {
            // The fixed format has four INFORMATION bytes; a larger value
            // cannot be VALID there (SPC-4 §4.4.3). A negative residue
            // (two's complement) that fits 32 bits is written as such.
            if let Some(info) = fixed_information(info) {
                b[0] |= 0x80;
                b[3..7].copy_from_slice(&info.to_be_bytes());
            }
        }
        b[2] = (self.key.0 & 0x0f) | (self.stream.0 & 0xe0);
        b[7] = 10; // additional sense length
        if let Some(info) = self.command_specific.and_then(|v| u32::try_from(v).ok()) {
            b[8..12].copy_from_slice(&info.to_be_bytes());
        }
        b[12] = self.asc.asc();
        b[13] = self.asc.ascq();
        if let Some(field) = self.field {
            b[15..18].copy_from_slice(&field.to_bytes());
        }
        FIXED_SENSE_LEN
    }

    fn encode_descriptor(&self, b: &mut [u8; ENCODE_BUF]) -> usize {
        b[0] = if self.deferred { 0x73 } else { 0x72 };
        b[1] = self.key.0 & 0x0f;
        b[2] = self.asc.asc();
        b[3] = self.asc.ascq();
        let mut at = 8;
        if let Some(info) = self.information {
            // Information descriptor (SPC-4 §4.4.2.2).
            b[at] = 0x00;
            b[at + 1] = 0x0a;
            b[at + 2] = 0x80; // VALID
            b[at + 4..at + 12].copy_from_slice(&info.to_be_bytes());
            at += 12;
        }
        if let Some(info) = self.command_specific {
            // Command-specific information descriptor (SPC-4 §4.4.2.3).
            b[at] = 0x01;
            b[at + 1] = 0x0a;
            b[at + 4..at + 12].copy_from_slice(&info.to_be_bytes());
            at += 12;
        }
        if let Some(field) = self.field {
            // Sense key specific descriptor (SPC-4 §4.4.2.3).
            b[at] = 0x02;
            b[at + 1] = 0x06;
            b[at + 4..at + 7].copy_from_slice(&field.to_bytes());
            at += 8;
        }
        if !self.stream.is_empty() {
            // Stream commands descriptor (SSC-4 §4.2.3.2).
            b[at] = 0x04;
            b[at + 1] = 0x02;
            b[at + 3] = self.stream.0 & 0xe0;
            at += 4;
        }
        b[7] = u8::try_from(at - 8).unwrap_or(0);
        at
    }

    /// Decode sense data in either format.
    ///
    /// # Errors
    ///
    /// [`SenseDecodeError`] when the data is too short or not sense data.
    pub fn decode(b: &[u8]) -> Result<Self, SenseDecodeError> {
        let code = *b.first().ok_or(SenseDecodeError::TooShort)? & 0x7f;
        match code {
            0x70 | 0x71 => {
                if b.len() < 14 {
                    return Err(SenseDecodeError::TooShort);
                }
                let information = (b[0] & 0x80 != 0)
                    .then(|| u64::from(u32::from_be_bytes([b[3], b[4], b[5], b[6]])));
                let field = if b.len() >= 18 {
                    FieldPointer::from_bytes([b[15], b[16], b[17]])
                } else {
                    None
                };
                let command_specific = Some(u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
                    .filter(|&v| v != 0)
                    .map(u64::from);
                Ok(Self {
                    key: SenseKey(b[2] & 0x0f),
                    asc: Asc::from_bytes(b[12], b[13]),
                    information,
                    command_specific,
                    field,
                    deferred: code == 0x71,
                    stream: StreamBits(b[2] & 0xe0),
                })
            }
            0x72 | 0x73 => {
                if b.len() < 8 {
                    return Err(SenseDecodeError::TooShort);
                }
                let mut sense = Self::new(SenseKey(b[1] & 0x0f), Asc::from_bytes(b[2], b[3]));
                sense.deferred = code == 0x73;
                let end = (8 + usize::from(b[7])).min(b.len());
                let mut at = 8;
                while at + 2 <= end {
                    let kind = b[at];
                    let len = usize::from(b[at + 1]);
                    let body_end = at + 2 + len;
                    if body_end > end {
                        break;
                    }
                    match kind {
                        0x00 if len >= 10 && b[at + 2] & 0x80 != 0 => {
                            let mut v = [0u8; 8];
                            v.copy_from_slice(&b[at + 4..at + 12]);
                            sense.information = Some(u64::from_be_bytes(v));
                        }
                        0x01 if len >= 10 => {
                            let mut v = [0u8; 8];
                            v.copy_from_slice(&b[at + 4..at + 12]);
                            sense.command_specific = Some(u64::from_be_bytes(v));
                        }
                        0x02 if len >= 6 => {
                            sense.field =
                                FieldPointer::from_bytes([b[at + 4], b[at + 5], b[at + 6]]);
                        }
                        0x04 if len >= 2 => sense.stream = StreamBits(b[at + 3] & 0xe0),
                        _ => {}
                    }
                    at = body_end;
                }
                Ok(sense)
            }
            other => Err(SenseDecodeError::UnknownResponseCode(other)),
        }
    }
}

/// Room for the longest encoding: descriptor format with every descriptor
/// we emit (8 + 12 + 12 + 8 + 4 bytes).
const ENCODE_BUF: usize = 48;

/// The four-byte fixed-format INFORMATION of `info`: a value that fits 32
/// bits, or a negative residue (two's complement) that does.
fn fixed_information(info: u64) -> Option<u32> {
    // Two's complement reinterpretation and truncation are the point.
    #[allow(
        clippy::cast_possible_wrap,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    u32::try_from(info)
        .ok()
        .or_else(|| i32::try_from(info as i64).ok().map(|v| v as u32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_fixed_invalid_field_pointer() {
        // INVALID FIELD IN CDB, byte 1 bit 2 (SPC-4 table 32).
        let s = Sense::invalid_cdb_field(1, Some(2)).to_vec(SenseFormat::Fixed);
        assert_eq!(s.len(), 18);
        assert_eq!(s[0], 0x70);
        assert_eq!(s[2], 0x05);
        assert_eq!((s[12], s[13]), (0x24, 0x00));
        assert_eq!(&s[15..18], &[0xca, 0x00, 0x01]);
    }

    #[test]
    fn encodes_descriptor_with_information() {
        let s = Sense::new(SenseKey::MISCOMPARE, Asc::MISCOMPARE_DURING_VERIFY)
            .with_information(0x1_0000_0001)
            .to_vec(SenseFormat::Descriptor);
        assert_eq!(s[0], 0x72);
        assert_eq!(s[1], 0x0e);
        assert_eq!(s[7], 12);
        assert_eq!(&s[8..12], &[0x00, 0x0a, 0x80, 0x00]);
        assert_eq!(&s[12..20], &0x1_0000_0001u64.to_be_bytes());
    }

    #[test]
    fn encodes_stream_bits_and_negative_residues() {
        let s = Sense::new(SenseKey::NO_SENSE, Asc::NO_ADDITIONAL_SENSE)
            .with_stream(StreamBits::ILI)
            .with_residue(-6);
        let f = s.to_vec(SenseFormat::Fixed);
        assert_eq!(f[2], 0x20);
        assert_eq!(f[0], 0xf0);
        assert_eq!(&f[3..7], &(-6i32).to_be_bytes());
        let d = s.to_vec(SenseFormat::Descriptor);
        assert_eq!(&d[20..24], &[0x04, 0x02, 0x00, 0x20]);
        assert_eq!(Sense::decode(&d).unwrap(), s);
    }

    #[test]
    fn encodes_command_specific_information() {
        // EXTENDED COPY's segment number sits in bytes 2-3 of the field.
        let s = Sense::new(SenseKey::COPY_ABORTED, Asc::NO_ADDITIONAL_SENSE)
            .with_command_specific(3)
            .with_field(FieldPointer::param(16));
        let f = s.to_vec(SenseFormat::Fixed);
        assert_eq!(&f[8..12], &[0, 0, 0, 3]);
        assert_eq!(Sense::decode(&f).unwrap(), s);
        let d = s.to_vec(SenseFormat::Descriptor);
        assert_eq!(d.len(), s.encoded_len(SenseFormat::Descriptor));
        assert_eq!(&d[8..12], &[0x01, 0x0a, 0x00, 0x00]);
        assert_eq!(&d[12..20], &3u64.to_be_bytes());
        assert_eq!(&d[20..22], &[0x02, 0x06]);
        assert_eq!(Sense::decode(&d).unwrap(), s);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Sense::decode(&[]), Err(SenseDecodeError::TooShort));
        assert_eq!(
            Sense::decode(&[0x10; 20]),
            Err(SenseDecodeError::UnknownResponseCode(0x10))
        );
        assert_eq!(Sense::decode(&[0x70; 5]), Err(SenseDecodeError::TooShort));
    }

    fn any_sense() -> impl Strategy<Value = Sense> {
        (
            0u8..16,
            any::<u16>(),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            proptest::option::of((any::<bool>(), proptest::option::of(0u8..8), any::<u16>())),
            any::<bool>(),
            any::<u8>(),
        )
            .prop_map(
                |(key, asc, information, command_specific, field, deferred, stream)| Sense {
                    key: SenseKey(key),
                    asc: Asc(asc),
                    information,
                    command_specific,
                    field: field.map(|(in_cdb, bit, byte)| FieldPointer { in_cdb, bit, byte }),
                    deferred,
                    stream: StreamBits(stream & 0xe0),
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips_descriptor(sense in any_sense()) {
            let bytes = sense.to_vec(SenseFormat::Descriptor);
            prop_assert_eq!(Sense::decode(&bytes).unwrap(), sense);
        }

        #[test]
        fn round_trips_fixed(sense in any_sense()) {
            let bytes = sense.to_vec(SenseFormat::Fixed);
            let mut expect = sense;
            expect.information = sense.information.and_then(fixed_information).map(u64::from);
            expect.command_specific = sense
                .command_specific
                .filter(|&v| v != 0 && u32::try_from(v).is_ok());
            prop_assert_eq!(Sense::decode(&bytes).unwrap(), expect);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Sense::decode(&bytes);
        }
    }
}
