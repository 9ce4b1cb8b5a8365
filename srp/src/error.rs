//! The one error of every IU decoder.

/// Why bytes are not a well-formed information unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The information unit is shorter than its layout needs.
    #[error("IU is {got} bytes, needs {need}")]
    Short {
        /// Bytes received.
        got: usize,
        /// Bytes the layout needs.
        need: usize,
    },
    /// The first byte is not the expected opcode.
    #[error("opcode {got:#04x}, expected {want:#04x}")]
    Opcode {
        /// Opcode received.
        got: u8,
        /// Opcode expected.
        want: u8,
    },
    /// An opcode no SRP information unit has.
    #[error("unknown IU opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// Longer than the negotiated maximum IU length.
    #[error("IU is {len} bytes, more than the negotiated {max}")]
    TooLong {
        /// Bytes received.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A data buffer descriptor format code that SRP reserves.
    #[error("reserved data descriptor format {0}")]
    DescriptorFormat(u8),
    /// A length field that does not fit the information unit.
    #[error("{0} does not fit the IU")]
    Length(&'static str),
}
