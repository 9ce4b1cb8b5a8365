//! SRP target: any bytes as an information unit.

use tgtkit_srp::Iu;

/// Most bytes an IU may have here (a common `max_it_iu_len`).
const MAX_IU: usize = 4096;

/// Decode arbitrary bytes as an SRP IU; whatever decodes must re-encode to
/// an IU that decodes to the same value.
pub fn srp_iu(data: &[u8]) {
    let Ok(iu) = Iu::decode(data, MAX_IU) else {
        return;
    };
    let bytes = iu.encode();
    let again = Iu::decode(&bytes, MAX_IU).expect("own encoding decodes");
    assert_eq!(again, iu);
}
