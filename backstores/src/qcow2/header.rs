//! Our own check of a qcow2 header before imago sees the image.
//!
//! imago opens what it understands; this module refuses, with a clear
//! error, what tgtkit's qcow2 backstore does not support or what imago
//! would mishandle silently (imago 0.2 does not look at `crypt_method`).
//! The layout is QEMU's `docs/interop/qcow2.txt`, "Header".
//!
//! Panic contract: [`check_header`] never panics and never allocates more
//! than the 104-byte header it copies; every field is read from a copy.

use zerocopy::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::Qcow2Error;

/// The qcow magic, "QFI\xfb" (qcow2.txt, header byte 0-3).
pub(crate) const QCOW_MAGIC: u32 = 0x5146_49fb;

/// Smallest and largest cluster_bits QEMU accepts (qcow2.txt, bytes 20-23:
/// "must not be less than 9"; QEMU's implementation limit is 2 MiB).
pub(crate) const MIN_CLUSTER_BITS: u32 = 9;
/// See [`MIN_CLUSTER_BITS`].
pub(crate) const MAX_CLUSTER_BITS: u32 = 21;

/// QEMU's limit on the L1 table (`QCOW_MAX_L1_SIZE`, 32 MiB).
const MAX_L1_BYTES: u64 = 32 << 20;
/// QEMU's limit on the refcount table (`QCOW_MAX_REFTABLE_SIZE`, 8 MiB).
const MAX_REFTABLE_BYTES: u64 = 8 << 20;

/// The version 2 header, bytes 0-71 (qcow2.txt, "Header").
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct RawHeaderV2 {
    magic: U32,
    version: U32,
    backing_file_offset: U64,
    backing_file_size: U32,
    cluster_bits: U32,
    size: U64,
    crypt_method: U32,
    l1_size: U32,
    l1_table_offset: U64,
    refcount_table_offset: U64,
    refcount_table_clusters: U32,
    nb_snapshots: U32,
    snapshots_offset: U64,
}

/// The version 3 additions, bytes 72-103 (qcow2.txt, "Header").
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct RawHeaderV3 {
    incompatible_features: U64,
    compatible_features: U64,
    autoclear_features: U64,
    refcount_order: U32,
    header_length: U32,
}

/// Incompatible feature bits (qcow2.txt, bytes 72-79).
pub(crate) mod incompat {
    /// Bit 0: dirty (lazy refcounts were in use and not written back).
    pub const DIRTY: u64 = 1 << 0;
    /// Bit 1: corrupt.
    pub const CORRUPT: u64 = 1 << 1;
    /// Bit 2: external data file.
    pub const EXTERNAL_DATA_FILE: u64 = 1 << 2;
    /// Bit 3: non-default compression type (zstd).
    pub const COMPRESSION_TYPE: u64 = 1 << 3;
    /// Bit 4: extended L2 entries (subclusters).
    pub const EXTENDED_L2: u64 = 1 << 4;
}

/// What we learned from a header that passed [`check_header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    /// 2 or 3.
    pub version: u32,
    /// Cluster size in bytes.
    pub cluster_size: u64,
    /// Virtual disk size in bytes.
    pub size: u64,
    /// Internal snapshots present.
    pub snapshots: u32,
    /// Offset of the refcount table.
    pub reftable_offset: u64,
    /// Size of the refcount table in clusters.
    pub reftable_clusters: u32,
    /// log2 of the refcount width in bits (4 for version 2).
    pub refcount_order: u32,
    /// Where header extensions start (version 3), 0 for version 2.
    pub header_length: u32,
}

/// Whether the first bytes of a file carry the qcow magic.
pub(crate) fn has_qcow_magic(first: &[u8]) -> bool {
    first.len() >= 4 && first[..4] == QCOW_MAGIC.to_be_bytes()
}

/// Check the first 104 bytes of an image (fewer if the file is shorter).
///
/// `writable` is whether the image is to be opened for writing: internal
/// snapshots are refused only then (reading the active layer ignores them).
pub(crate) fn check_header(bytes: &[u8], writable: bool) -> Result<HeaderInfo, Qcow2Error> {
    let (v2, rest) = RawHeaderV2::read_from_prefix(bytes)
        .map_err(|_| Qcow2Error::Invalid("file shorter than a qcow2 header".into()))?;
    // qcow2.txt bytes 0-3: magic.
    if v2.magic.get() != QCOW_MAGIC {
        return Err(Qcow2Error::Invalid("no qcow magic".into()));
    }
    // Bytes 4-7: version 2 or 3.
    let version = v2.version.get();
    if version != 2 && version != 3 {
        return Err(Qcow2Error::Unsupported(format!("qcow2 version {version}")));
    }
    // Bytes 20-23: cluster_bits.
    let cluster_bits = v2.cluster_bits.get();
    if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
        return Err(Qcow2Error::Invalid(format!(
            "cluster_bits {cluster_bits} outside {MIN_CLUSTER_BITS}..={MAX_CLUSTER_BITS}"
        )));
    }
    let cluster_size = 1u64 << cluster_bits;
    // Bytes 32-35: crypt_method. imago 0.2 ignores this field and would
    // return ciphertext as data, so we refuse here.
    match v2.crypt_method.get() {
        0 => {}
        1 => return Err(Qcow2Error::Unsupported("AES-encrypted image".into())),
        2 => return Err(Qcow2Error::Unsupported("LUKS-encrypted image".into())),
        m => return Err(Qcow2Error::Invalid(format!("unknown crypt_method {m}"))),
    }
    // Bytes 36-39: l1_size; QEMU caps the L1 table at 32 MiB.
    if u64::from(v2.l1_size.get()) * 8 > MAX_L1_BYTES {
        return Err(Qcow2Error::Invalid(format!(
            "L1 table of {} entries exceeds 32 MiB",
            v2.l1_size.get()
        )));
    }
    // Bytes 56-59: refcount_table_clusters; QEMU caps the table at 8 MiB.
    if u64::from(v2.refcount_table_clusters.get()) * cluster_size > MAX_REFTABLE_BYTES {
        return Err(Qcow2Error::Invalid(format!(
            "refcount table of {} clusters exceeds 8 MiB",
            v2.refcount_table_clusters.get()
        )));
    }
    // Bytes 48-59: the refcount table. QEMU refuses an image without one
    // ("Image does not contain a reference count table") or with it in the
    // header cluster; imago 0.2 recurses until its stack overflows when it
    // frees a cluster of such an image (found by the qcow2_open fuzz target).
    if v2.refcount_table_clusters.get() == 0 {
        return Err(Qcow2Error::Invalid("no refcount table".into()));
    }
    if v2.refcount_table_offset.get() < cluster_size {
        return Err(Qcow2Error::Invalid(
            "refcount table overlaps the header cluster".into(),
        ));
    }
    // Bytes 40-47: the L1 table must not overlap the header cluster either.
    if v2.l1_size.get() != 0 && v2.l1_table_offset.get() < cluster_size {
        return Err(Qcow2Error::Invalid(
            "L1 table overlaps the header cluster".into(),
        ));
    }
    // Bytes 60-63: nb_snapshots. imago reads the active L1 table correctly
    // but does not keep snapshot refcounts (COW of shared clusters), so
    // writing is refused.
    let snapshots = v2.nb_snapshots.get();
    if snapshots != 0 && writable {
        return Err(Qcow2Error::Unsupported(format!(
            "writing an image with {snapshots} internal snapshot(s)"
        )));
    }
    let mut refcount_order = 4;
    let mut header_length = 0;
    if version == 3 {
        let (v3, _) = RawHeaderV3::read_from_prefix(rest)
            .map_err(|_| Qcow2Error::Invalid("file shorter than a qcow2 v3 header".into()))?;
        check_incompatible(v3.incompatible_features.get())?;
        // Bytes 96-99: refcount_order, at most 6 (64-bit refcounts).
        if v3.refcount_order.get() > 6 {
            return Err(Qcow2Error::Invalid(format!(
                "refcount_order {}",
                v3.refcount_order.get()
            )));
        }
        refcount_order = v3.refcount_order.get();
        header_length = v3.header_length.get();
    }
    Ok(HeaderInfo {
        version,
        cluster_size,
        size: v2.size.get(),
        snapshots,
        reftable_offset: v2.refcount_table_offset.get(),
        reftable_clusters: v2.refcount_table_clusters.get(),
        refcount_order,
        header_length,
    })
}

/// Header extension type of the feature name table (qcow2.txt).
const EXT_FEATURE_TABLE: u32 = 0x6803_f857;

/// Walk the header extensions of a version 3 image (qcow2.txt, "Header
/// extensions": type, length, data padded to 8 bytes, inside the first
/// cluster, ended by type 0) and refuse a feature name table whose length
/// is not a whole number of 48-byte entries: imago 0.2 indexes past the
/// end of a short last entry and panics (found by the qcow2_open fuzz
/// target). `first` is the image's first cluster (or all of a shorter file).
pub(crate) fn check_extensions(info: &HeaderInfo, first: &[u8]) -> Result<(), Qcow2Error> {
    if info.version < 3 {
        return Ok(());
    }
    let limit = (first.len() as u64).min(info.cluster_size);
    let mut at = u64::from(info.header_length);
    // Each extension takes at least 8 bytes, so this ends.
    while at + 8 <= limit {
        let i = usize::try_from(at).map_err(|_| Qcow2Error::Invalid("header".into()))?;
        let kind = u32::from_be_bytes([first[i], first[i + 1], first[i + 2], first[i + 3]]);
        let len = u32::from_be_bytes([first[i + 4], first[i + 5], first[i + 6], first[i + 7]]);
        if kind == 0 {
            return Ok(());
        }
        if kind == EXT_FEATURE_TABLE && len % 48 != 0 {
            return Err(Qcow2Error::Invalid(format!(
                "feature name table of {len} bytes is not a multiple of 48"
            )));
        }
        at += 8 + u64::from(len).next_multiple_of(8);
    }
    // Running off the cluster is imago's error to report ("Header
    // extensions exceed the first cluster").
    Ok(())
}

/// Refuse incompatible features (qcow2.txt bytes 72-79: "An implementation
/// must fail to open an image if an unknown bit is set").
fn check_incompatible(bits: u64) -> Result<(), Qcow2Error> {
    use incompat::*;
    if bits & DIRTY != 0 {
        return Err(Qcow2Error::Unsupported(
            "dirty image (lazy refcounts not written back): repair it with \
             `qemu-img check -r all` first"
                .into(),
        ));
    }
    if bits & CORRUPT != 0 {
        return Err(Qcow2Error::Unsupported(
            "image is marked corrupt: repair it with `qemu-img check -r all` first".into(),
        ));
    }
    if bits & EXTERNAL_DATA_FILE != 0 {
        return Err(Qcow2Error::Unsupported("external data file".into()));
    }
    if bits & COMPRESSION_TYPE != 0 {
        return Err(Qcow2Error::Unsupported(
            "non-zlib compression type (zstd)".into(),
        ));
    }
    if bits & EXTENDED_L2 != 0 {
        return Err(Qcow2Error::Unsupported(
            "extended L2 entries (subclusters)".into(),
        ));
    }
    if bits != 0 {
        return Err(Qcow2Error::Unsupported(format!(
            "unknown incompatible feature bits {bits:#x}"
        )));
    }
    Ok(())
}

/// Check, before writing, that the refcount table lies in the file and
/// has a refblock for cluster 0 (the header) and for every refblock-sized
/// range of clusters up to the file's last one (qcow2.txt "Host cluster
/// management": every cluster in use is refcounted). Only the range the
/// file ends in may lack its refblock: a process killed after writing a
/// self-describing refblock there and before entering it in the table
/// leaves such a file, and it is harmless.
///
/// imago 0.2 allocates a missing refblock by allocating a cluster for it,
/// which may need another missing refblock below it, recursively: with
/// entries missing throughout, its stack overflows (found by the
/// qcow2_open fuzz target on truncated images). Images qemu-img made or
/// repaired always pass.
pub(crate) fn check_refcount_coverage(
    info: &HeaderInfo,
    reftable: &[u8],
    file_len: u64,
) -> Result<(), Qcow2Error> {
    let table_len = u64::from(info.reftable_clusters) * info.cluster_size;
    if info.reftable_offset.saturating_add(table_len) > file_len
        || reftable.len() as u64 != table_len
    {
        return Err(Qcow2Error::Invalid(
            "refcount table past the end of the file".into(),
        ));
    }
    let cluster_bits = info.cluster_size.trailing_zeros();
    // Clusters covered by one refblock: cluster_size * 8 / refcount_bits.
    let rb_shift = cluster_bits + 3 - info.refcount_order.min(cluster_bits + 3);
    let clusters = file_len.div_ceil(info.cluster_size);
    let needed = (clusters >> rb_shift).max(1);
    let have = (reftable.len() / 8) as u64;
    if needed > have {
        return Err(Qcow2Error::Unsupported(format!(
            "refcount table covers {have} refblocks, the file needs {needed}: \
             repair it with `qemu-img check -r all` first"
        )));
    }
    for (i, e) in reftable
        .chunks_exact(8)
        .take(usize::try_from(needed).unwrap_or(usize::MAX))
        .enumerate()
    {
        let entry = u64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        if entry == 0 {
            return Err(Qcow2Error::Unsupported(format!(
                "refcount table entry {i} is missing for clusters in use: \
                 repair it with `qemu-img check -r all` first"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layout_matches_qcow2_txt() {
        assert_eq!(size_of::<RawHeaderV2>(), 72);
        assert_eq!(size_of::<RawHeaderV3>(), 32);
        assert_eq!(offset_of!(RawHeaderV2, cluster_bits), 20);
        assert_eq!(offset_of!(RawHeaderV2, size), 24);
        assert_eq!(offset_of!(RawHeaderV2, crypt_method), 32);
        assert_eq!(offset_of!(RawHeaderV2, l1_size), 36);
        assert_eq!(offset_of!(RawHeaderV2, refcount_table_clusters), 56);
        assert_eq!(offset_of!(RawHeaderV2, nb_snapshots), 60);
        assert_eq!(offset_of!(RawHeaderV2, snapshots_offset), 64);
        assert_eq!(offset_of!(RawHeaderV3, refcount_order), 24);
        assert_eq!(offset_of!(RawHeaderV3, header_length), 28);
    }

    fn header(version: u32, tweak: impl FnOnce(&mut [u8])) -> Vec<u8> {
        let mut b = vec![0u8; 104];
        b[0..4].copy_from_slice(&QCOW_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&version.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
        b[100..104].copy_from_slice(&104u32.to_be_bytes());
        b[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes()); // L1 at cluster 3
        b[48..56].copy_from_slice(&(1u64 << 16).to_be_bytes()); // reftable at cluster 1
        b[56..60].copy_from_slice(&1u32.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        tweak(&mut b);
        b
    }

    #[test]
    fn accepts_plain_v2_and_v3() {
        let info = check_header(&header(2, |_| {}), true).unwrap();
        assert_eq!(
            (info.version, info.cluster_size, info.size),
            (2, 65536, 1 << 20)
        );
        assert_eq!(check_header(&header(3, |_| {}), true).unwrap().version, 3);
    }

    #[test]
    fn rejects_encryption() {
        for m in [1u32, 2] {
            let h = header(3, |b| b[32..36].copy_from_slice(&m.to_be_bytes()));
            assert!(matches!(
                check_header(&h, false),
                Err(Qcow2Error::Unsupported(_))
            ));
        }
    }

    #[test]
    fn rejects_snapshots_only_for_writing() {
        let h = header(3, |b| b[60..64].copy_from_slice(&1u32.to_be_bytes()));
        assert!(check_header(&h, false).is_ok());
        assert!(matches!(
            check_header(&h, true),
            Err(Qcow2Error::Unsupported(_))
        ));
    }

    #[test]
    fn rejects_incompatible_features() {
        for bit in 0..64 {
            let h = header(3, |b| {
                b[72..80].copy_from_slice(&(1u64 << bit).to_be_bytes());
            });
            assert!(check_header(&h, false).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn rejects_bad_magic_version_and_clusters() {
        assert!(check_header(&header(3, |b| b[0] = 0), false).is_err());
        assert!(check_header(&header(4, |_| {}), false).is_err());
        assert!(check_header(&header(3, |b| b[23] = 8), false).is_err());
        assert!(check_header(&header(3, |b| b[23] = 22), false).is_err());
        assert!(check_header(&header(3, |_| {})[..80], false).is_err());
    }

    #[test]
    fn rejects_missing_or_misplaced_tables() {
        let h = header(3, |b| b[56..60].copy_from_slice(&0u32.to_be_bytes()));
        assert!(check_header(&h, false).is_err());
        let h = header(3, |b| b[48..56].copy_from_slice(&0u64.to_be_bytes()));
        assert!(check_header(&h, false).is_err());
        let h = header(3, |b| {
            b[36..40].copy_from_slice(&1u32.to_be_bytes());
            b[40..48].copy_from_slice(&0u64.to_be_bytes());
        });
        assert!(check_header(&h, false).is_err());
    }

    #[test]
    fn rejects_ragged_feature_table() {
        let mut h = header(3, |_| {});
        let info = check_header(&h, false).unwrap();
        // A 49-byte feature name table, then the end marker.
        h.extend_from_slice(&EXT_FEATURE_TABLE.to_be_bytes());
        h.extend_from_slice(&49u32.to_be_bytes());
        h.extend_from_slice(&[0u8; 56]);
        h.extend_from_slice(&[0u8; 8]);
        assert!(check_extensions(&info, &h).is_err());
        h[104 + 7] = 48;
        assert!(check_extensions(&info, &h).is_ok());
    }

    #[test]
    fn rejects_huge_tables() {
        let h = header(3, |b| b[36..40].copy_from_slice(&u32::MAX.to_be_bytes()));
        assert!(check_header(&h, false).is_err());
        let h = header(3, |b| b[56..60].copy_from_slice(&1000u32.to_be_bytes()));
        assert!(check_header(&h, false).is_err());
    }
}
