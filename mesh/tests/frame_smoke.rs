//! A stable-toolchain smoke run of what `mesh/fuzz` (cargo fuzz) does:
//! valid frames of every kind, mutated many ways, and random bytes go into
//! the decoders; each input gives an error or a frame that round-trips,
//! never a panic. Deterministic (a fixed xorshift seed), so a failure
//! reproduces.

use plasmoid_mesh::{Frame, Request, WireOp, decode, encode_into, frame_len};
use plasmoid_runtime::{ExitReason, Msg, NodeId, Pid, RemoteOp};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let a = Pid {
        node: NodeId([1; 32]),
        seq: 7,
    };
    let b = Pid {
        node: NodeId([2; 32]),
        seq: 9,
    };
    let ops = [
        RemoteOp::Send {
            to: b,
            msg: Msg::Data(b"payload".to_vec()),
        },
        RemoteOp::Send {
            to: b,
            msg: Msg::Tagged {
                sender: a,
                reference: 5,
                payload: vec![4; 40],
            },
        },
        RemoteOp::Link { from: a, to: b },
        RemoteOp::Unlink { from: a, to: b },
        RemoteOp::Monitor {
            watcher: a,
            target: b,
            reference: 1,
        },
        RemoteOp::Exit {
            from: a,
            to: b,
            reason: ExitReason::Exception("boom".into()),
            link: true,
        },
        RemoteOp::Down {
            target: b,
            watcher: a,
            reference: 3,
            reason: ExitReason::Noconnection,
        },
        RemoteOp::Spawn {
            node: b.node,
            component: "echo".into(),
            init: "{}".into(),
            parent: a,
            reference: 8,
        },
        RemoteOp::Lookup {
            node: b.node,
            from: a.node,
            name: "ledger".into(),
            reference: 2,
        },
        RemoteOp::Found {
            node: a.node,
            reference: 2,
            pid: Some(b),
        },
    ];
    let mut out = Vec::new();
    let mut frames: Vec<Frame> = ops
        .into_iter()
        .filter_map(WireOp::from_op)
        .map(Frame::Op)
        .collect();
    frames.push(Frame::Heartbeat);
    frames.push(Frame::Hello { version: 1 });
    for f in frames {
        let mut buf = Vec::new();
        encode_into(&f, &mut buf);
        out.push(buf[4..].to_vec());
    }
    out.push(postcard::to_allocvec(&Request::Status).unwrap());
    out.push(
        postcard::to_allocvec(&Request::Call {
            target: "e@b".into(),
            data: vec![1, 2, 3],
            timeout_ms: 100,
        })
        .unwrap(),
    );
    out
}

fn check(data: &[u8]) {
    if let Some(p) = data.get(..4) {
        let _ = frame_len([p[0], p[1], p[2], p[3]]);
    }
    if let Ok(frame) = decode(data) {
        let mut out = Vec::new();
        encode_into(&frame, &mut out);
        assert_eq!(decode(&out[4..]).ok(), Some(frame.clone()), "{data:?}");
        if let Frame::Op(op) = frame {
            let _ = op.into_op();
        }
    }
    let _ = postcard::from_bytes::<Request>(data);
}

#[test]
fn mutated_and_random_frames_never_panic_the_decoders() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200_000 {
        let mut d = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !d.is_empty() => {
                    let i = rng.below(d.len());
                    d[i] ^= 1 << rng.below(8);
                }
                1 if !d.is_empty() => {
                    let i = rng.below(d.len());
                    d[i] = rng.next() as u8;
                }
                2 => d.truncate(rng.below(d.len() + 1)),
                3 => {
                    let i = rng.below(d.len() + 1);
                    d.insert(i, rng.next() as u8);
                }
                // Huge varints: lengths that claim more than is there.
                _ => {
                    let i = rng.below(d.len() + 1);
                    d.splice(i..i, [0xff, 0xff, 0xff, 0xff, 0x0f]);
                }
            }
        }
        check(&d);
    }
    for _ in 0..50_000 {
        let len = rng.below(64);
        let d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&d);
    }
}
