//! Opens idle iSCSI sessions against a target and holds them, so that
//! `scripts/bench-scale.sh` can read what each one costs the target
//! process (its resident memory before and after).
//!
//! `iscsi_idle ADDR IQN COUNT`: logs COUNT sessions in to target IQN at
//! ADDR (host:port), each over its own TCP connection with the keys Linux's
//! initiator offers, and has each read 4 KiB once (after the power-on unit
//! attention), so every session has done I/O, as an idle one in service
//! has. It then prints `ready COUNT` and holds them until standard input
//! closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use tgtkit_iscsi::pdu::{encode_pdu, Bhs, Digests, LoginRequest, PduDecoder, ScsiCommand, Stage};
use tgtkit_iscsi::text;

const INITIATOR: &str = "iqn.2026-12.dev.tgtkit:idle-initiator";

struct Session {
    io: TcpStream,
    dec: PduDecoder,
}

impl Session {
    fn send(&mut self, bhs: Bhs, data: &[u8]) -> std::io::Result<()> {
        let mut out = Vec::new();
        encode_pdu(&bhs.emit(), &[], data, Digests::default(), &mut out)
            .map_err(std::io::Error::other)?;
        self.io.write_all(&out)
    }

    fn recv(&mut self) -> std::io::Result<Bhs> {
        loop {
            if let Some(f) = self.dec.decode().map_err(std::io::Error::other)? {
                return Bhs::parse(&f.header).map_err(std::io::Error::other);
            }
            let mut tmp = [0u8; 16384];
            let n = self.io.read(&mut tmp)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.dec.extend(&tmp[..n]);
        }
    }

    fn open(addr: &str, iqn: &str, i: u32) -> std::io::Result<Self> {
        let mut s = Self {
            io: TcpStream::connect(addr)?,
            dec: PduDecoder::new(1 << 20),
        };
        let keys = text::encode(&[
            ("InitiatorName", INITIATOR),
            ("TargetName", iqn),
            ("SessionType", "Normal"),
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("MaxBurstLength", "16776192"),
            ("FirstBurstLength", "262144"),
            ("ImmediateData", "Yes"),
            ("InitialR2T", "No"),
            ("MaxOutstandingR2T", "1"),
            ("ErrorRecoveryLevel", "0"),
        ]);
        let b = i.to_be_bytes();
        let login = Bhs::LoginRequest(LoginRequest {
            transit: true,
            cont: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            version_max: 0,
            version_min: 0,
            isid: [0x80, 0, b[0], b[1], b[2], b[3]],
            tsih: 0,
            itt: 0,
            cid: 0,
            cmd_sn: 1,
            exp_stat_sn: 0,
        });
        s.send(login, &keys)?;
        match s.recv()? {
            Bhs::LoginResponse(r) if r.status_class == 0 && r.transit => {}
            other => return Err(std::io::Error::other(format!("login refused: {other:?}"))),
        }
        // The power-on unit attention, then one 4 KiB READ(10).
        let mut read10 = [0u8; 16];
        read10[0] = 0x28;
        read10[8] = 8;
        for (itt, cmd_sn) in [(1u32, 1u32), (2, 2)] {
            s.send(
                Bhs::ScsiCommand(ScsiCommand {
                    immediate: false,
                    final_: true,
                    read: true,
                    write: false,
                    attr: 1,
                    lun: 0,
                    itt,
                    edtl: 4096,
                    cmd_sn,
                    exp_stat_sn: 0,
                    cdb: read10,
                }),
                &[],
            )?;
            loop {
                match s.recv()? {
                    Bhs::ScsiResponse(r) if r.itt == itt => break,
                    Bhs::DataIn(d) if d.itt == itt && d.status.is_some() => break,
                    _ => {}
                }
            }
        }
        Ok(s)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, iqn, count] = args.as_slice() else {
        eprintln!("usage: iscsi_idle ADDR IQN COUNT");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u32>() else {
        eprintln!("COUNT must be a number");
        return ExitCode::from(2);
    };
    let mut sessions = Vec::new();
    for i in 0..count {
        match Session::open(addr, iqn, i) {
            Ok(s) => sessions.push(s),
            Err(e) => {
                eprintln!("session {i}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("ready {}", sessions.len());
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}
