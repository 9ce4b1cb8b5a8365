//! Logical unit numbers (SAM-5 §4.7): eight-byte LUN encoding.
//!
//! A [`Lun`] is the eight-byte wire form. [`Lun::from_index`] encodes a LUN
//! number with peripheral device addressing (0-255) or flat space addressing
//! (256-16383), as SAM-5 §4.7.7 prefers; [`Lun::index`] decodes the first
//! level of either method. The REPORT LUNS well-known logical unit
//! ([`Lun::REPORT_LUNS_WLUN`]) is C101h in the well-known LUN format.

use std::fmt;

/// An eight-byte LUN as it travels on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Lun(pub [u8; 8]);

/// Largest LUN number [`Lun::from_index`] encodes (flat space addressing).
pub const MAX_LUN_INDEX: u16 = 0x3fff;

impl Lun {
    /// The REPORT LUNS well-known logical unit (SAM-5 §8.2).
    pub const REPORT_LUNS_WLUN: Self = Self([0xc1, 0x01, 0, 0, 0, 0, 0, 0]);

    /// Encode LUN number `index` as SAM-5 recommends: peripheral device
    /// addressing below 256, flat space addressing up to 16383.
    ///
    /// Returns `None` above [`MAX_LUN_INDEX`].
    #[must_use]
    pub fn from_index(index: u16) -> Option<Self> {
        match index {
            0..=0xff => Some(Self([0, index.to_be_bytes()[1], 0, 0, 0, 0, 0, 0])),
            0x100..=MAX_LUN_INDEX => {
                let [hi, lo] = index.to_be_bytes();
                Some(Self([0x40 | hi, lo, 0, 0, 0, 0, 0, 0]))
            }
            _ => None,
        }
    }

    /// Decode a single-level LUN in peripheral or flat space addressing.
    ///
    /// Returns `None` for other address methods, well-known LUNs, non-zero
    /// bus identifiers, or any non-zero byte in the lower levels.
    #[must_use]
    pub fn index(&self) -> Option<u16> {
        if self.0[2..].iter().any(|&b| b != 0) {
            return None;
        }
        match self.0[0] >> 6 {
            0b00 if self.0[0] == 0 => Some(u16::from(self.0[1])),
            0b01 => Some(u16::from_be_bytes([self.0[0] & 0x3f, self.0[1]])),
            _ => None,
        }
    }

    /// The LUN as a big-endian `u64` (the form Linux's `scsilun_to_int`
    /// inverts, and the form iSCSI and SRP carry).
    #[must_use]
    pub fn to_u64(&self) -> u64 {
        u64::from_be_bytes(self.0)
    }

    /// From the big-endian `u64` form.
    #[must_use]
    pub fn from_u64(v: u64) -> Self {
        Self(v.to_be_bytes())
    }

    /// Whether this is a well-known LUN (address method 11b, extended 2h).
    #[must_use]
    pub fn is_well_known(&self) -> bool {
        self.0[0] == 0xc1
    }
}

impl fmt::Debug for Lun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index() {
            Some(i) => write!(f, "Lun({i})"),
            None => write!(f, "Lun({:#018x})", self.to_u64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_peripheral_and_flat() {
        assert_eq!(Lun::from_index(5).unwrap().0, [0, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Lun::from_index(0x123).unwrap().0,
            [0x41, 0x23, 0, 0, 0, 0, 0, 0]
        );
        assert!(Lun::from_index(0x4000).is_none());
    }

    #[test]
    fn rejects_multilevel_and_wlun() {
        assert_eq!(Lun([0, 1, 0, 2, 0, 0, 0, 0]).index(), None);
        assert_eq!(Lun::REPORT_LUNS_WLUN.index(), None);
        assert!(Lun::REPORT_LUNS_WLUN.is_well_known());
    }

    proptest! {
        #[test]
        fn round_trips(i in 0u16..=MAX_LUN_INDEX) {
            prop_assert_eq!(Lun::from_index(i).unwrap().index(), Some(i));
            let l = Lun::from_index(i).unwrap();
            prop_assert_eq!(Lun::from_u64(l.to_u64()), l);
        }
    }
}
