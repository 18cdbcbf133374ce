//! A fake controller for the CLI tests: a real ZeroMQ ROUTER (the same transport the controller
//! uses), CurveZMQ by default with a ZAP authorizer that admits one operator key, that records
//! every request (and the operator its key authenticated) and answers from a script. It stands in
//! for the controller process until the end-to-end tests in `tests/` run the real one.

#![allow(dead_code)]

use meshlift_protocol::transport::zap::{Authorizer, ZapRequest};
use meshlift_protocol::transport::{
    CurveKeyPair, CurvePublicKey, Router, RouterConfig, RouterEvent, ServerSecurity,
};
use meshlift_protocol::{Envelope, Message};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers the n-th request (counting from 0) of the test.
pub type Script = Box<dyn FnMut(usize, &Message) -> Message + Send>;

/// Name the fake's authorizer gives the admitted operator key.
pub const OPERATOR: &str = "alice-op";

/// Key files of one test: the controller's pair, an admitted operator and a stranger.
pub struct TestKeys {
    pub dir: tempfile::TempDir,
    pub controller: CurveKeyPair,
    pub controller_pub: PathBuf,
    pub operator_key: PathBuf,
    pub operator: CurvePublicKey,
    pub stranger_key: PathBuf,
}

impl TestKeys {
    pub fn new() -> TestKeys {
        let dir = tempfile::tempdir().unwrap();
        let controller = CurveKeyPair::generate().unwrap();
        let (_, controller_pub) = controller.save(dir.path(), "controller").unwrap();
        let op = CurveKeyPair::generate().unwrap();
        let (operator_key, _) = op.save(dir.path(), "operator").unwrap();
        let (stranger_key, _) = CurveKeyPair::generate().unwrap().save(dir.path(), "stranger").unwrap();
        TestKeys { dir, controller, controller_pub, operator_key, operator: op.public(), stranger_key }
    }

    /// `--operator-key` (what every remote command takes, `node` included, where `--key` names
    /// the node's key) and `--controller-key` for the admitted operator.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--operator-key".into(),
            path(&self.operator_key),
            "--controller-key".into(),
            path(&self.controller_pub),
        ]
    }
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Admits exactly one key, as operator [`OPERATOR`].
struct AdmitOne(CurvePublicKey);

impl Authorizer for AdmitOne {
    fn authorize(&self, req: &ZapRequest) -> Result<String, String> {
        if req.key == Some(self.0) {
            Ok(OPERATOR.to_string())
        } else {
            Err("unknown operator key".into())
        }
    }
}

/// Every request received, with the operator its connection's key authenticated (if any).
type Received = Arc<Mutex<Vec<(Message, Option<String>)>>>;

pub struct FakeController {
    pub endpoint: String,
    /// `None` when the fake runs insecure.
    pub keys: Option<TestKeys>,
    received: Received,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeController {
    /// A CURVE fake admitting [`TestKeys::operator`]; [`FakeController::run`] passes its keys.
    pub fn start(script: Script) -> FakeController {
        Self::start_with(script, Some(TestKeys::new()))
    }

    /// A plain-text fake; [`FakeController::run`] passes `--insecure`.
    pub fn start_insecure(script: Script) -> FakeController {
        Self::start_with(script, None)
    }

    fn start_with(mut script: Script, keys: Option<TestKeys>) -> FakeController {
        static DOMAINS: AtomicUsize = AtomicUsize::new(0);
        let security = match &keys {
            Some(k) => ServerSecurity::Curve {
                keys: k.controller.clone(),
                // One ZAP domain per fake: several run at once in one test process.
                domain: format!("fake-app-{}", DOMAINS.fetch_add(1, Ordering::Relaxed)),
                auth: Arc::new(AdmitOne(k.operator)),
            },
            None => ServerSecurity::Insecure,
        };
        let received: Received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let (ep_tx, ep_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let (router, mut rx) =
                    Router::bind(RouterConfig::new("tcp://127.0.0.1:0", security)).unwrap();
                ep_tx.send(router.endpoint().to_string()).unwrap();
                let mut n = 0;
                loop {
                    let ev = tokio::select! {
                        _ = &mut stop_rx => return,
                        ev = rx.recv() => match ev { Some(ev) => ev, None => return },
                    };
                    let RouterEvent::Frame(inc) = ev else { continue };
                    let Ok(env) = inc.frame else { continue };
                    let reply = script(n, &env.body);
                    n += 1;
                    rec.lock().unwrap().push((env.body, inc.user_id));
                    let _ = router.send(&inc.identity, b"ctrl", Envelope::new(env.request_id, reply));
                }
            });
        });
        let endpoint = ep_rx.recv_timeout(Duration::from_secs(10)).expect("fake controller bound");
        FakeController { endpoint, keys, received, shutdown: Some(stop_tx), thread: Some(thread) }
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Message> {
        self.received.lock().unwrap().iter().map(|(m, _)| m.clone()).collect()
    }

    /// The operator each request came from (the ZAP user id; `None` on an insecure fake).
    pub fn senders(&self) -> Vec<Option<String>> {
        self.received.lock().unwrap().iter().map(|(_, u)| u.clone()).collect()
    }

    /// Run `meshlift <args> --controller <this>` with the admitted operator's keys (or
    /// `--insecure` on an insecure fake) and wait for it.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--controller".to_string(), self.endpoint.clone()]);
        match &self.keys {
            Some(k) => all.extend(k.args()),
            None => all.push("--insecure".into()),
        }
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        meshlift(&all)
    }
}

impl Drop for FakeController {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The built `meshlift` binary with a fixed operator identity and none of the caller's
/// `MESHLIFT_*` settings or default key (`HOME` points nowhere).
pub fn meshlift_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshlift"));
    cmd.env("USER", "alice")
        .env("HOSTNAME", "noc1")
        .env("HOME", "/nonexistent/meshlift-test-home")
        .env_remove("MESHLIFT_CONTROLLER")
        .env_remove("MESHLIFT_KEY")
        .env_remove("MESHLIFT_CONTROLLER_KEY")
        .env_remove("MESHLIFT_INSECURE");
    cmd
}

/// Run [`meshlift_cmd`] with `args`.
pub fn meshlift(args: &[&str]) -> Output {
    meshlift_cmd().args(args).output().expect("run meshlift")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A free TCP port on 127.0.0.1 with nothing listening (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
