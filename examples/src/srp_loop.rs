//! The `srp-loop` example: an SRP initiator and target over a Unix
//! socketpair, each IU framed by its big-endian 32-bit length. The target
//! side is [`tgtkit_srp::engine::EngineTarget`] on a ram disk; the
//! initiator logs in, writes a pattern with an indirect descriptor table,
//! reads it back with a direct descriptor and logs out. Both ends share
//! one [`LocalMemory`] (descriptor addresses are offsets into it), as an
//! RDMA initiator and target share registered memory.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use tgtkit_scsi_core::engine::{LuConfig, NexusInfo, Target, TargetConfig};
use tgtkit_srp::cmd::{Command, TaskAttr};
use tgtkit_srp::desc::{DataDesc, DirectBuf};
use tgtkit_srp::engine::{EngineTarget, LocalMemory};
use tgtkit_srp::iu::Iu;
use tgtkit_srp::login::LOGIN_REQ_LEN;
use tgtkit_srp::logout::{ILogout, OP_I_LOGOUT};
use tgtkit_srp::session::{Event, ExistingChannels, Session, SessionConfig};
use zerocopy::{FromZeros, IntoBytes};

/// Most bytes of one framed IU.
const MAX_FRAME: usize = 1 << 16;

fn send(s: &mut UnixStream, iu: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(iu.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    s.write_all(&len.to_be_bytes())?;
    s.write_all(iu)
}

fn recv(s: &mut UnixStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut iu = vec![0; len];
    s.read_exact(&mut iu)?;
    Ok(Some(iu))
}

/// Serve IUs from `sock` until the initiator logs out or hangs up.
fn target_side(
    mut sock: UnixStream,
    engine: &EngineTarget<Arc<LocalMemory>>,
) -> Result<(), String> {
    let mut session = Session::new(SessionConfig::default());
    while let Some(iu) = recv(&mut sock).map_err(|e| e.to_string())? {
        let events = futures::executor::block_on(engine.handle(&mut session, &iu))
            .map_err(|e| e.to_string())?;
        if events.iter().any(|e| matches!(e, Event::Login { .. })) {
            // One channel per initiator here: nothing else to terminate.
            session
                .accept_login(ExistingChannels::None)
                .map_err(|e| e.to_string())?;
        }
        while let Some(out) = session.poll_transmit() {
            send(&mut sock, &out).map_err(|e| e.to_string())?;
        }
        if events.contains(&Event::Logout) {
            return Ok(());
        }
    }
    Ok(())
}

fn command(tag: u8, cdb: &[u8], data_out: DataDesc, data_in: DataDesc) -> Vec<u8> {
    let mut c = cdb.to_vec();
    c.resize(16, 0);
    Command {
        sol_not: 0,
        tag: [tag; 8],
        lun: [0; 8],
        task_attr: TaskAttr::Simple,
        cdb: c,
        data_out,
        data_in,
    }
    .encode()
}

/// Run the loop with a disk of `blocks` 512-byte blocks; a report line per
/// step.
///
/// # Errors
///
/// A step that failed, with why.
pub fn run(blocks: u64) -> Result<Vec<String>, String> {
    let target = Target::new(TargetConfig::default());
    let disk = tgtkit_backstores::RamOptions::new()
        .build(blocks * 512)
        .map_err(|e| e.to_string())?;
    target
        .add_lun(0, LuConfig::new(Arc::new(disk)))
        .map_err(|e| e.to_string())?;
    let nexus = target.add_nexus(NexusInfo {
        initiator_port: "srp-loop-initiator".into(),
        target_port: "srp-loop-target".into(),
        relative_port: 1,
        transport_id: Vec::new(),
    });
    let mem = Arc::new(LocalMemory::new(1 << 20));
    let engine = EngineTarget::new(target, nexus, Arc::clone(&mem));
    let (mut ini, tgt) = UnixStream::pair().map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || target_side(tgt, &engine));
    let mut report = Vec::new();
    let mut ask = |iu: Vec<u8>| -> Result<Iu, String> {
        send(&mut ini, &iu).map_err(|e| e.to_string())?;
        let bytes = recv(&mut ini)
            .map_err(|e| e.to_string())?
            .ok_or("target hung up")?;
        Iu::decode(&bytes, MAX_FRAME).map_err(|e| e.to_string())
    };
    let mut login = vec![0u8; LOGIN_REQ_LEN];
    login[16..20].copy_from_slice(&1024u32.to_be_bytes());
    login[24..26].copy_from_slice(&6u16.to_be_bytes());
    match ask(login)? {
        Iu::LoginRsp(r) => report.push(format!(
            "login: {} credits, max IU {}/{}",
            r.req_lim_delta.get(),
            r.max_it_iu_len.get(),
            r.max_ti_iu_len.get()
        )),
        other => return Err(format!("login answered {other:?}")),
    }
    let status = |iu: Iu| match iu {
        Iu::Rsp(r) => Ok(r.status),
        other => Err(format!("answered {other:?}")),
    };
    // The power-on unit attention, then the data.
    status(ask(command(1, &[0; 6], DataDesc::None, DataDesc::None))?)?;
    let pattern: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    let k = LocalMemory::KEY;
    let table = [
        DirectBuf::new(0x1_0000, k, 4096),
        DirectBuf::new(0x3_0000, k, 4096),
    ];
    let mut t = Vec::new();
    for d in &table {
        t.extend_from_slice(d.as_bytes());
    }
    mem.write(0x8000, &t);
    mem.write(0x1_0000, &pattern[..4096]);
    mem.write(0x3_0000, &pattern[4096..]);
    let write = command(
        2,
        &[0x2a, 0, 0, 0, 0, 64, 0, 0, 16, 0],
        DataDesc::Indirect {
            table: DirectBuf::new(0x8000, k, 32),
            total_len: 8192,
            list: table.to_vec(),
        },
        DataDesc::None,
    );
    let s = status(ask(write)?)?;
    report.push(format!(
        "WRITE(10) 16 blocks, indirect table of 2: status {s:#04x}"
    ));
    let read = command(
        3,
        &[0x28, 0, 0, 0, 0, 64, 0, 0, 16, 0],
        DataDesc::None,
        DataDesc::Direct(DirectBuf::new(0x5_0000, k, 8192)),
    );
    let s = status(ask(read)?)?;
    let same = mem.read(0x5_0000, 8192) == pattern;
    report.push(format!(
        "READ(10) 16 blocks, direct: status {s:#04x}, data {}",
        if same { "matches" } else { "DIFFERS" }
    ));
    let mut lo = ILogout::new_zeroed();
    lo.opcode = OP_I_LOGOUT;
    send(&mut ini, lo.as_bytes()).map_err(|e| e.to_string())?;
    server.join().map_err(|_| "target panicked")??;
    report.push("logout".into());
    if !same || s != 0 {
        return Err(report.join("; "));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_loop_writes_and_reads_back() {
        let report = super::run(1024).unwrap();
        assert_eq!(report.len(), 4, "{report:?}");
        assert!(report[2].contains("matches"));
    }
}
