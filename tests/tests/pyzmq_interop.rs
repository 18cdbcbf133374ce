//! Interop with the reference implementation as a Terragraph tool would use it: pyzmq (Debian's
//! `python3-zmq`, libzmq underneath) with the operator's CURVE keys asks the controller for its
//! state and gets the reply bytes back, which decode as a state dump; the same
//! client in plain text gets nothing.

use meshlift_meshsim::lab::Lab;
use meshlift_protocol::*;
use meshlift_tests::*;

const CLIENT: &str = r#"
import binascii, sys, zmq
ep, server, public, secret, payload = sys.argv[1:6]
s = zmq.Context().socket(zmq.DEALER)
if server != "-":
    s.curve_serverkey = server.encode()
    s.curve_publickey = public.encode()
    s.curve_secretkey = secret.encode()
s.rcvtimeo = int(sys.argv[6])
s.linger = 0
s.connect(ep)
s.send_multipart([b"pyzmq", binascii.unhexlify(payload)])
try:
    print(binascii.hexlify(s.recv_multipart()[-1]).decode())
except zmq.Again:
    print("timeout")
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn pyzmq(args: &[&str]) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(CLIENT)
        .args(args)
        .output()
        .expect("Debian's python3 with python3-zmq (.ci/setup installs it)");
    assert!(out.status.success(), "pyzmq client failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pyzmq_curve_client_talks_to_the_controller() {
    let (cfg, _dir) = lab_config(small_topology());
    let lab = Lab::start(cfg).await.expect("lab starts");
    let key = std::fs::read_to_string(lab.operator_key_path().expect("CURVE lab")).expect("key file");
    let line = |p: &str| key.lines().find_map(|l| l.strip_prefix(p)).expect("key line").trim().to_string();
    let (public, secret) = (line("public "), line("secret "));
    let server = lab.controller_public_key().expect("controller key").to_z85();
    let payload =
        hex(&encode(&Envelope::new(42, Message::UpgradeStateReq(UpgradeStateReq {}))).expect("encode"));
    let ep = lab.app_endpoint();

    let reply = tokio::task::spawn_blocking({
        let (ep, server, payload) = (ep.clone(), server.clone(), payload.clone());
        move || pyzmq(&[&ep, &server, &public, &secret, &payload, "10000"])
    })
    .await
    .expect("pyzmq");
    assert_ne!(reply, "timeout", "no reply over CURVE from pyzmq");
    let env = decode(&unhex(&reply), MAX_FRAME_DEFAULT).expect("the reply decodes");
    assert_eq!(env.request_id, 42);
    assert!(matches!(env.body, Message::UpgradeStateDump(_)), "{:?}", env.body.kind());

    let plain = tokio::task::spawn_blocking(move || pyzmq(&[&ep, "-", "-", "-", &payload, "1500"]))
        .await
        .expect("pyzmq");
    assert_eq!(plain, "timeout", "a plain-text client must get nothing");
    lab.stop().await;
}
