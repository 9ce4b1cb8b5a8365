//! The null transport: SCSI commands in length-prefixed frames over any
//! byte stream, one I_T nexus per connection.
//!
//! It is the transport of the crate-level guide of `tgtkit-scsi-core`
//! (`tgtkit_scsi_core::guide`), grown into something a binary can serve:
//! [`serve`] is the target side over any `futures` `AsyncRead`/`AsyncWrite`
//! pair, [`Client`] the initiator side over a blocking stream.
//!
//! # Framing
//!
//! All integers are big-endian. A request is
//!
//! ```text
//! u32 body length | u8 LUN | u8 CDB length | u32 data-in length | CDB | data-out
//! ```
//!
//! where data-out is the rest of the body (empty for a command without
//! data-out) and data-in length is the allocation for a READ-direction
//! command (0 otherwise; a request with both is refused). A response is
//!
//! ```text
//! u32 body length | u8 status | u8 sense length | sense | data-in
//! ```
//!
//! Commands are answered in order, one at a time. A body longer than
//! [`MAX_FRAME`], a CDB outside 1..=32 bytes or a request with both
//! data-in and data-out closes the connection.

use std::io::{self, Read, Write};

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tgtkit_scsi_core::buffer::DataBuffer;
use tgtkit_scsi_core::engine::{Command, NexusInfo, RawCdb, Target, TaskAttribute};
use tgtkit_scsi_core::lun::Lun;
use tgtkit_scsi_core::status::Status;

/// The largest body (and data-in length) a peer may ask for: a bound on
/// what one frame makes either side allocate.
pub const MAX_FRAME: usize = 1 << 20;

/// Bytes of a request body before the CDB.
const REQUEST_HEADER: usize = 6;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Read one frame body, or `None` at a clean end of stream.
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| invalid("frame length"))?;
    if len > MAX_FRAME {
        return Err(invalid("frame longer than MAX_FRAME"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// A decoded request: LUN, CDB, data-in length, and where data-out starts.
struct Request {
    lun: Lun,
    cdb: RawCdb,
    data_in: usize,
    data_out_at: usize,
}

fn decode_request(body: &[u8]) -> io::Result<Request> {
    let header = body
        .get(..REQUEST_HEADER)
        .ok_or_else(|| invalid("short request"))?;
    let cdb_len = usize::from(header[1]);
    let data_in = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
    let data_in = usize::try_from(data_in).map_err(|_| invalid("data-in length"))?;
    let data_out_at = REQUEST_HEADER + cdb_len;
    let cdb = body
        .get(REQUEST_HEADER..data_out_at)
        .and_then(|c| RawCdb::new(c).ok())
        .ok_or_else(|| invalid("CDB length"))?;
    if data_in > MAX_FRAME || (data_in > 0 && body.len() > data_out_at) {
        return Err(invalid("data-in and data-out lengths"));
    }
    Ok(Request {
        lun: Lun::from_index(u16::from(header[0])).ok_or_else(|| invalid("LUN"))?,
        cdb,
        data_in,
        data_out_at,
    })
}

/// Serve one connection as the I_T nexus of initiator port `initiator`:
/// read requests from `r` until it ends, run each on `target`, write each
/// response to `w`. The nexus is removed when the connection ends, however
/// it ends (I_T nexus loss: its tasks are aborted, its unit attentions
/// dropped).
///
/// # Errors
///
/// The stream's I/O errors, and `InvalidData` for a malformed frame.
pub async fn serve(
    target: &Target,
    initiator: &str,
    mut r: impl AsyncRead + Unpin,
    mut w: impl AsyncWrite + Unpin,
) -> io::Result<()> {
    let nexus = target.add_nexus(NexusInfo {
        initiator_port: initiator.to_owned(),
        target_port: format!("{},t,0x0001", target.config().name),
        relative_port: 1,
        transport_id: Vec::new(),
    });
    let result = serve_nexus(target, nexus, &mut r, &mut w).await;
    target.remove_nexus(nexus);
    result
}

async fn serve_nexus(
    target: &Target,
    nexus: tgtkit_scsi_core::engine::NexusId,
    r: &mut (impl AsyncRead + Unpin),
    w: &mut (impl AsyncWrite + Unpin),
) -> io::Result<()> {
    let mut tag = 0u64;
    while let Some(body) = read_frame(r).await? {
        let req = decode_request(&body)?;
        let data_out = body.len() - req.data_out_at;
        // Data-out is lent in place: a slice of the frame we just read.
        let data = if data_out > 0 {
            DataBuffer::from_vec(body)
                .slice(req.data_out_at, data_out)
                .ok_or_else(|| invalid("data-out"))?
        } else {
            DataBuffer::zeroed(req.data_in)
        };
        tag += 1;
        let resp = target
            .execute(Command {
                nexus,
                lun: req.lun,
                tag,
                attribute: TaskAttribute::Simple,
                cdb: req.cdb,
                data: data.clone(),
            })
            .await;
        let sense = resp.sense_bytes();
        let data_in = if data_out == 0 { resp.data_len } else { 0 };
        let mut out = Vec::with_capacity(6 + sense.len() + data_in);
        let body_len = 2 + sense.len() + data_in;
        out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes());
        out.push(resp.status.0);
        out.push(u8::try_from(sense.len()).unwrap_or(0));
        out.extend_from_slice(sense);
        out.resize(out.len() + data_in, 0);
        let at = out.len() - data_in;
        data.read_at(0, &mut out[at..]);
        w.write_all(&out).await?;
        w.flush().await?;
    }
    Ok(())
}

/// A response as the initiator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// SCSI status.
    pub status: Status,
    /// Sense data (fixed or descriptor format), empty without CHECK CONDITION.
    pub sense: Vec<u8>,
    /// Data-in bytes.
    pub data: Vec<u8>,
}

impl Reply {
    /// The sense key, ASC and ASCQ of the sense data, if any.
    #[must_use]
    pub fn sense_code(&self) -> Option<(u8, u8, u8)> {
        tgtkit_scsi_core::sense::Sense::decode(&self.sense)
            .ok()
            .map(|s| (s.key.0, s.asc.asc(), s.asc.ascq()))
    }
}

/// The initiator side of the null transport over a blocking stream.
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
}

impl<S: Read + Write> Client<S> {
    /// A client over a connected stream.
    pub fn new(stream: S) -> Self {
        Self { stream }
    }

    /// Send one command to `lun` and wait for its response: `data_in`
    /// bytes of allocation for a READ-direction command, or `data_out` to
    /// send with a WRITE-direction one.
    ///
    /// # Errors
    ///
    /// The stream's I/O errors, and `InvalidData` for a malformed response
    /// or a request the framing cannot carry.
    pub fn command(
        &mut self,
        lun: u8,
        cdb: &[u8],
        data_in: u32,
        data_out: &[u8],
    ) -> io::Result<Reply> {
        let body_len = REQUEST_HEADER + cdb.len() + data_out.len();
        if body_len > MAX_FRAME || cdb.is_empty() || cdb.len() > 32 {
            return Err(invalid("request too large"));
        }
        let mut out = Vec::with_capacity(4 + body_len);
        out.extend_from_slice(&u32::try_from(body_len).unwrap_or(u32::MAX).to_be_bytes());
        out.push(lun);
        out.push(u8::try_from(cdb.len()).unwrap_or(0));
        out.extend_from_slice(&data_in.to_be_bytes());
        out.extend_from_slice(cdb);
        out.extend_from_slice(data_out);
        self.stream.write_all(&out)?;
        self.stream.flush()?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| invalid("length"))?;
        if !(2..=MAX_FRAME + 2 + 255).contains(&len) {
            return Err(invalid("response length"));
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body)?;
        let sense_len = usize::from(body[1]);
        let sense = body
            .get(2..2 + sense_len)
            .ok_or_else(|| invalid("sense length"))?
            .to_vec();
        Ok(Reply {
            status: Status(body[0]),
            sense,
            data: body[2 + sense_len..].to_vec(),
        })
    }

    /// Send TEST UNIT READY until it answers GOOD, consuming the unit
    /// attentions a new nexus starts with (at most 8 tries).
    ///
    /// # Errors
    ///
    /// I/O errors, and `Other` if the unit never becomes ready.
    pub fn wait_ready(&mut self, lun: u8) -> io::Result<()> {
        for _ in 0..8 {
            if self.command(lun, &[0; 6], 0, &[])?.status == Status::GOOD {
                return Ok(());
            }
        }
        Err(io::Error::other("TEST UNIT READY never answered GOOD"))
    }
}

/// The `--socket` default: `$XDG_RUNTIME_DIR/tgtkit-null.sock`, or
/// `/tmp/tgtkit-null.sock` without it.
#[must_use]
pub fn default_socket() -> std::path::PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| "/tmp".into(), std::path::PathBuf::from)
        .join("tgtkit-null.sock")
}

/// Bind a Unix socket at `path`, replacing a socket file an earlier run
/// left behind (any other kind of file is left alone, and bind fails).
///
/// # Errors
///
/// The error from `bind`.
pub fn bind_unix(path: &std::path::Path) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
    std::os::unix::net::UnixListener::bind(path)
}

/// Accept connections on `listener` forever, serving each on its own
/// thread under `futures::executor::block_on` (no async runtime needed).
/// Connection `n` is initiator port `null.<n>`.
///
/// # Errors
///
/// An error from `accept`.
pub fn serve_unix(
    target: &std::sync::Arc<Target>,
    listener: &std::os::unix::net::UnixListener,
) -> io::Result<()> {
    for n in 1u64.. {
        let (stream, _) = listener.accept()?;
        let target = std::sync::Arc::clone(target);
        std::thread::spawn(move || {
            let reader = match stream.try_clone() {
                Ok(r) => futures::io::AllowStdIo::new(r),
                Err(e) => return tracing::warn!("connection {n}: {e}"),
            };
            let writer = futures::io::AllowStdIo::new(stream);
            let name = format!("null.{n}");
            if let Err(e) = futures::executor::block_on(serve(&target, &name, reader, writer)) {
                tracing::warn!("connection {n}: {e}");
            }
        });
    }
    Ok(())
}
