//! The embedder's guide: a new transport and a new backstore, each in one
//! page of code.
//!
//! tgtkit is a set of libraries, so a target of your own is two pieces you
//! write around a [`Target`]: a **transport**, which carries SCSI commands
//! from some wire to the engine and answers back, and a **backstore**,
//! which holds the data. Both examples below are complete programs,
//! compiled and run as doc tests; they use nothing but this crate and
//! `futures`. Two binaries in the `tgtkit-examples` package grow them into
//! programs: `null-transport` (the transport below, over a Unix socket,
//! with a `--client` that checks INQUIRY, READ CAPACITY, WRITE and READ)
//! and `closure-backstore` (a backstore whose reads and writes are two
//! closures).
//!
//! # Writing a transport
//!
//! The engine knows nothing of wires. A transport's whole job is:
//!
//! 1. **One nexus per I_T nexus.** Call [`Target::add_nexus`] when an
//!    initiator port logs in (here: a connection opens), naming the port
//!    in [`NexusInfo`]; call [`Target::remove_nexus`] when it goes away,
//!    however it goes away. Reservations, unit attentions and task sets
//!    are kept per nexus, so two connections must not share one.
//! 2. **Lend your memory.** Each command's [`Command::data`] is a
//!    [`DataBuffer`] over memory the transport already holds: the data-out
//!    as it arrived (below: a slice of the frame just read, no copy), or a
//!    buffer of the expected data-in length. The engine and the backstore
//!    read and write it in place.
//! 3. **Unique tags.** [`Command::tag`] must be unique among the nexus's
//!    outstanding commands (a counter does for a transport that runs one
//!    at a time; iSCSI uses its ITT).
//! 4. **Answer what [`Target::execute`] returns.** Send
//!    [`Response::status`], [`Response::sense_bytes`], the first
//!    [`Response::data_len`] bytes of the buffer as data-in, and
//!    [`Response::residual`] if your wire carries one. A response with
//!    [`Response::aborted`] was ended by task management: send nothing for
//!    it.
//! 5. **Concurrency and task management are yours to map.** `execute`
//!    futures may run concurrently (e.g. in a `FuturesUnordered`), in any
//!    order; [`TaskAttribute`] orders them. Dropping a future aborts its
//!    command. Turn your wire's abort and reset requests into
//!    [`Target::task_management`] with a [`TmFunction`].
//! 6. **Bound what the peer sizes.** Check every length before allocating
//!    and close the connection on a malformed frame.
//!
//! What the engine does for you: it finds the logical unit (an unknown LUN
//! is answered with LOGICAL UNIT NOT SUPPORTED), decodes the CDB through
//! the one [command table](crate::table) (an opcode that is not in it is
//! INVALID COMMAND OPERATION CODE, a bad field INVALID FIELD IN CDB with
//! its field pointer), reports and clears unit attentions, checks SPC-2
//! and persistent reservations, orders the task set, runs INQUIRY with its
//! VPD pages, MODE SENSE/SELECT, REPORT LUNS and the rest of SPC/SBC,
//! checks every LBA range, encodes sense in the format the logical unit
//! uses, and computes residuals.
//!
//! The transport below reads length-prefixed frames from any
//! `futures::io::AsyncRead` and writes responses to any `AsyncWrite`, so
//! it runs on any executor (here `futures::executor::block_on`, over
//! bytes in memory). All integers are big-endian; a request is `u32 body
//! length | u8 LUN | u8 CDB length | u32 data-in length | CDB | data-out`,
//! a response `u32 body length | u8 status | u8 sense length | sense |
//! data-in`.
//!
//! ```
//! use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Cursor};
//! use std::{io, sync::Arc};
//! use tgtkit_scsi_core::buffer::DataBuffer;
//! use tgtkit_scsi_core::engine::*;
//! use tgtkit_scsi_core::sense::{Asc, Sense, SenseKey};
//! use tgtkit_scsi_core::{lun::Lun, status::Status, test_utils::MemBackstore};
//!
//! /// The most one frame may make us allocate.
//! const MAX_FRAME: usize = 1 << 20;
//!
//! fn bad(what: &str) -> io::Error {
//!     io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
//! }
//!
//! /// Serve one connection as the I_T nexus of `initiator`.
//! async fn serve(target: &Target, initiator: &str, r: impl AsyncRead + Unpin,
//!                w: impl AsyncWrite + Unpin) -> io::Result<()> {
//!     let info = NexusInfo { initiator_port: initiator.into(), relative_port: 1, ..NexusInfo::default() };
//!     let nexus = target.add_nexus(info);
//!     let result = commands(target, nexus, r, w).await;
//!     target.remove_nexus(nexus); // I_T nexus loss: its tasks and UAs go
//!     result
//! }
//!
//! async fn commands(target: &Target, nexus: NexusId, mut r: impl AsyncRead + Unpin,
//!                   mut w: impl AsyncWrite + Unpin) -> io::Result<()> {
//!     for tag in 1u64.. {
//!         let mut len = [0u8; 4];
//!         match r.read_exact(&mut len).await {
//!             Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
//!             other => other?,
//!         }
//!         let len = u32::from_be_bytes(len) as usize;
//!         if !(6..=MAX_FRAME).contains(&len) { return Err(bad("frame length")); }
//!         let mut body = vec![0; len];
//!         r.read_exact(&mut body).await?;
//!         let (lun, cdb_end) = (u16::from(body[0]), 6 + usize::from(body[1]));
//!         let data_in = u32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
//!         let cdb = body.get(6..cdb_end).and_then(|c| RawCdb::new(c).ok()).ok_or_else(|| bad("CDB"))?;
//!         let data_out = body.len() - cdb_end;
//!         if data_in > MAX_FRAME || (data_in > 0 && data_out > 0) { return Err(bad("direction")); }
//!         // Lend the engine our memory: data-out in place, or room for data-in.
//!         let data = match data_out {
//!             0 => DataBuffer::zeroed(data_in),
//!             n => DataBuffer::from_vec(body).slice(cdb_end, n).ok_or_else(|| bad("data"))?,
//!         };
//!         let lun = Lun::from_index(lun).ok_or_else(|| bad("LUN"))?;
//!         let attribute = TaskAttribute::Simple;
//!         let resp = target.execute(Command { nexus, lun, tag, attribute, cdb, data: data.clone() }).await;
//!         let sense = resp.sense_bytes();
//!         let data_in = if data_out > 0 { 0 } else { resp.data_len };
//!         let mut out = ((2 + sense.len() + data_in) as u32).to_be_bytes().to_vec();
//!         out.extend([resp.status.0, sense.len() as u8]);
//!         out.extend_from_slice(sense);
//!         out.extend(data.slice(0, data_in).map(|d| d.to_vec()).unwrap_or_default());
//!         w.write_all(&out).await?;
//!     }
//!     Ok(())
//! }
//!
//! // The initiator's side: five requests, in one byte stream.
//! fn frame(cdb: &[u8], data_in: u32, data_out: &[u8]) -> Vec<u8> {
//!     let mut f = ((6 + cdb.len() + data_out.len()) as u32).to_be_bytes().to_vec();
//!     f.extend([0, cdb.len() as u8]); // LUN 0
//!     f.extend(data_in.to_be_bytes());
//!     f.extend(cdb.iter().chain(data_out));
//!     f
//! }
//! let mut input = frame(&[0; 6], 0, &[]); // TEST UNIT READY
//! input.extend(frame(&[0x12, 0, 0, 0, 36, 0], 36, &[])); // INQUIRY
//! input.extend(frame(&[0x2a, 0, 0, 0, 0, 9, 0, 0, 1, 0], 0, &[0xa5; 512])); // WRITE (10)
//! input.extend(frame(&[0x28, 0, 0, 0, 0, 9, 0, 0, 1, 0], 512, &[])); // READ (10)
//! input.extend(frame(&[0xc7, 0, 0, 0, 0, 0], 0, &[])); // no such command
//!
//! let target = Target::new(TargetConfig::default());
//! target.add_lun(0, LuConfig::new(Arc::new(MemBackstore::new(2048, 512)))).unwrap();
//! let mut output = Vec::new();
//! futures::executor::block_on(serve(&target, "guide.1", Cursor::new(input), &mut output)).unwrap();
//!
//! let mut replies = Vec::new(); // (status, sense, data-in)
//! let mut rest = &output[..];
//! while let [a, b, c, d, tail @ ..] = rest {
//!     let (body, next) = tail.split_at(u32::from_be_bytes([*a, *b, *c, *d]) as usize);
//!     let sense_end = 2 + usize::from(body[1]);
//!     replies.push((Status(body[0]), Sense::decode(&body[2..sense_end]).ok(), body[sense_end..].to_vec()));
//!     rest = next;
//! }
//! assert_eq!(replies.len(), 5);
//! // A new nexus first hears of the power on, as a unit attention.
//! let (status, ua, _) = &replies[0];
//! assert_eq!((*status, ua.unwrap().key, ua.unwrap().asc.asc()), (Status::CHECK_CONDITION, SenseKey::UNIT_ATTENTION, 0x29));
//! assert_eq!(&replies[1].2[8..14], b"TGTKIT");
//! assert_eq!((replies[2].0, replies[3].0), (Status::GOOD, Status::GOOD));
//! assert_eq!(replies[3].2, [0xa5; 512]);
//! assert_eq!(replies[4].1.unwrap().asc, Asc::INVALID_COMMAND_OPERATION_CODE);
//! ```
//!
//! # Writing a backstore
//!
//! A [`Backstore`] is byte-addressed async storage that knows nothing of
//! SCSI. What you must do:
//!
//! 1. **Describe the medium.** [`Backstore::geometry`] (size, logical and
//!    physical block size, read-only, rotational) is called before every
//!    command, so keep it cheap; return a new size and the engine raises
//!    CAPACITY DATA HAS CHANGED on every nexus.
//!    [`Backstore::capabilities`] says what else you do (discard, write
//!    zeroes, a write cache, FUA, allocation status).
//! 2. **Move bytes in place.** [`Backstore::read`] fills the transport's
//!    buffer and [`Backstore::write`] drains it, with
//!    [`DataBuffer::write_at`], [`DataBuffer::read_at`] and
//!    [`DataBuffer::fill`] (or [`DataBuffer::segments`] for syscalls): the
//!    memory may belong to a guest and is never a `&[u8]`.
//! 3. **Never block the executor.** Blocking I/O goes on a thread pool you
//!    own; a backstore whose data is at hand may also implement the
//!    [`read_nowait`](crate::backstore::Backstore::read_nowait) and
//!    [`write_nowait`](crate::backstore::Backstore::write_nowait) fast path.
//! 4. **Fail with an [`IoError`].** The engine turns it into the sense SBC
//!    prescribes ([`IoError::sense`]), with the failing LBA.
//! 5. **Register it** with [`Target::add_lun`] through a [`LuConfig`]
//!    (read-only, serial number, NAA identifier, a store for persistent
//!    reservations).
//!
//! What the engine does for you: every offset and length it passes is
//! block-aligned and inside the geometry (a range past the end is LBA OUT
//! OF RANGE before your code runs); it parses READ/WRITE in all their
//! sizes, VERIFY, WRITE SAME, COMPARE AND WRITE, UNMAP's parameter list
//! and SYNCHRONIZE CACHE into these few calls; it keeps COMPARE AND WRITE
//! and WRITE ATOMIC from interleaving with the unit's other writes; it
//! checks reservations before your code sees a command; it answers READ CAPACITY,
//! the VPD pages and the mode pages from your geometry and capabilities;
//! and it refuses writes to a read-only unit. Only what you declare is
//! offered: without [`Capabilities::DISCARD`] UNMAP is refused.
//!
//! The backstore below is a thin disk: only written blocks take memory,
//! the rest read as zeroes, and UNMAP gives blocks back.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
//! use std::sync::{Arc, Mutex};
//! use tgtkit_scsi_core::backstore::{Backstore, Capabilities, Geometry, IoResult, WriteFlags};
//! use tgtkit_scsi_core::buffer::DataBuffer;
//! use tgtkit_scsi_core::engine::{Command, LuConfig, NexusInfo, RawCdb, Response, Target, TargetConfig, TaskAttribute};
//! use tgtkit_scsi_core::{lun::Lun, sense::Asc, status::Status};
//!
//! const BS: usize = 512;
//!
//! #[derive(Default)]
//! struct Sparse {
//!     blocks: u64,
//!     map: Mutex<HashMap<u64, Box<[u8]>>>,
//!     calls: AtomicUsize,
//! }
//!
//! #[async_trait::async_trait]
//! impl Backstore for Sparse {
//!     fn geometry(&self) -> Geometry { Geometry::new(self.blocks * BS as u64, BS as u32) }
//!     fn capabilities(&self) -> Capabilities { Capabilities::DISCARD | Capabilities::DISCARD_ZEROES }
//!     async fn read(&self, offset: u64, buf: DataBuffer) -> IoResult<()> {
//!         self.calls.fetch_add(1, Relaxed);
//!         let map = self.map.lock().unwrap();
//!         for at in (0..buf.len()).step_by(BS) {
//!             match map.get(&((offset + at as u64) / BS as u64)) {
//!                 Some(block) => buf.write_at(at, block),
//!                 None => buf.fill(at, BS, 0),
//!             };
//!         }
//!         Ok(())
//!     }
//!     async fn write(&self, offset: u64, buf: DataBuffer, _: WriteFlags) -> IoResult<()> {
//!         self.calls.fetch_add(1, Relaxed);
//!         let mut map = self.map.lock().unwrap();
//!         for at in (0..buf.len()).step_by(BS) {
//!             let mut block = vec![0; BS].into_boxed_slice();
//!             buf.read_at(at, &mut block);
//!             map.insert((offset + at as u64) / BS as u64, block);
//!         }
//!         Ok(())
//!     }
//!     async fn flush(&self) -> IoResult<()> { Ok(()) }
//!     async fn discard(&self, offset: u64, len: u64) -> IoResult<()> {
//!         let mut map = self.map.lock().unwrap();
//!         (offset / BS as u64..(offset + len) / BS as u64).for_each(|b| { map.remove(&b); });
//!         Ok(())
//!     }
//! }
//!
//! let disk = Arc::new(Sparse { blocks: 1024, ..Sparse::default() });
//! let target = Target::new(TargetConfig::default());
//! target.add_lun(0, LuConfig::new(disk.clone())).unwrap();
//! let nexus = target.add_nexus(NexusInfo::default());
//! let run = |cdb: &[u8], data: &DataBuffer| -> Response {
//!     let (lun, cdb) = (Lun::from_index(0).unwrap(), RawCdb::new(cdb).unwrap());
//!     let cmd = Command { nexus, lun, tag: 1, attribute: TaskAttribute::Simple, cdb, data: data.clone() };
//!     futures::executor::block_on(target.execute(cmd))
//! };
//! let none = DataBuffer::empty();
//! assert_eq!(run(&[0; 6], &none).status, Status::CHECK_CONDITION); // the power-on UA
//!
//! let capacity = DataBuffer::zeroed(8);
//! assert_eq!(run(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], &capacity).status, Status::GOOD);
//! assert_eq!(capacity.to_vec(), [0, 0, 0x03, 0xff, 0, 0, 0x02, 0]); // last LBA 1023, 512 B
//!
//! let rw10 = |op: u8, lba: u8, blocks: u8| [op, 0, 0, 0, 0, lba, 0, 0, blocks, 0];
//! let data: Vec<u8> = (0..2 * BS).map(|i| (i % 251) as u8).collect();
//! assert_eq!(run(&rw10(0x2a, 7, 2), &DataBuffer::from_vec(data.clone())).status, Status::GOOD);
//! let back = DataBuffer::zeroed(3 * BS);
//! assert_eq!(run(&rw10(0x28, 6, 3), &back).status, Status::GOOD);
//! let back = back.to_vec();
//! assert!(back[..BS].iter().all(|&b| b == 0)); // block 6 was never written
//! assert_eq!(back[BS..], data[..]);
//! assert_eq!(disk.map.lock().unwrap().len(), 2);
//!
//! // READ (10) of LBA 1024: refused by the engine, the backstore never called.
//! let calls = disk.calls.load(Relaxed);
//! let past = run(&[0x28, 0, 0, 0, 0x04, 0, 0, 0, 1, 0], &DataBuffer::zeroed(BS));
//! assert_eq!(past.sense_data().unwrap().asc, Asc::LBA_OUT_OF_RANGE);
//! assert_eq!(disk.calls.load(Relaxed), calls);
//!
//! // UNMAP of block 7: the engine parses the parameter list and calls discard.
//! let mut list = vec![0, 22, 0, 16, 0, 0, 0, 0];
//! list.extend([0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0]);
//! assert_eq!(run(&[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], &DataBuffer::from_vec(list)).status, Status::GOOD);
//! assert_eq!(disk.map.lock().unwrap().keys().collect::<Vec<_>>(), [&8]);
//! ```
//!
//! [`Target`]: crate::engine::Target
//! [`Target::add_nexus`]: crate::engine::Target::add_nexus
//! [`Target::remove_nexus`]: crate::engine::Target::remove_nexus
//! [`Target::execute`]: crate::engine::Target::execute
//! [`Target::task_management`]: crate::engine::Target::task_management
//! [`Target::add_lun`]: crate::engine::Target::add_lun
//! [`NexusInfo`]: crate::engine::NexusInfo
//! [`Command::data`]: crate::engine::Command::data
//! [`Command::tag`]: crate::engine::Command::tag
//! [`Response::status`]: crate::engine::Response::status
//! [`Response::sense_bytes`]: crate::engine::Response::sense_bytes
//! [`Response::data_len`]: crate::engine::Response::data_len
//! [`Response::residual`]: crate::engine::Response::residual
//! [`Response::aborted`]: crate::engine::Response::aborted
//! [`TaskAttribute`]: crate::engine::TaskAttribute
//! [`TmFunction`]: crate::engine::TmFunction
//! [`LuConfig`]: crate::engine::LuConfig
//! [`DataBuffer`]: crate::buffer::DataBuffer
//! [`DataBuffer::write_at`]: crate::buffer::DataBuffer::write_at
//! [`DataBuffer::read_at`]: crate::buffer::DataBuffer::read_at
//! [`DataBuffer::fill`]: crate::buffer::DataBuffer::fill
//! [`DataBuffer::segments`]: crate::buffer::DataBuffer::segments
//! [`Backstore`]: crate::backstore::Backstore
//! [`Backstore::geometry`]: crate::backstore::Backstore::geometry
//! [`Backstore::capabilities`]: crate::backstore::Backstore::capabilities
//! [`Backstore::read`]: crate::backstore::Backstore::read
//! [`Backstore::write`]: crate::backstore::Backstore::write
//! [`Capabilities::DISCARD`]: crate::backstore::Capabilities::DISCARD
//! [`IoError`]: crate::backstore::IoError
//! [`IoError::sense`]: crate::backstore::IoError::sense
