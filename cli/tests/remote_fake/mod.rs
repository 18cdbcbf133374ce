//! A fake controller for the CLI tests: a real ZeroMQ ROUTER (the same transport the controller
//! uses) that records every request and answers from a script. It stands in for the controller
//! process until the end-to-end tests in `tests/` run the real one.

#![allow(dead_code)]

use meshlift_protocol::transport::Router;
use meshlift_protocol::{Envelope, Message, MAX_FRAME_DEFAULT};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Answers the n-th request (counting from 0) of the test.
pub type Script = Box<dyn FnMut(usize, &Message) -> Message + Send>;

pub struct FakeController {
    pub endpoint: String,
    received: Arc<Mutex<Vec<Message>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeController {
    /// Bind on a free port of 127.0.0.1 and serve `script` on a thread of its own.
    pub fn start(mut script: Script) -> FakeController {
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let (ep_tx, ep_rx) = std::sync::mpsc::channel();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let (router, mut rx) =
                    Router::bind("tcp://127.0.0.1:0", MAX_FRAME_DEFAULT, Duration::from_secs(2))
                        .await
                        .unwrap();
                ep_tx.send(router.endpoint().to_string()).unwrap();
                let mut n = 0;
                loop {
                    let inc = tokio::select! {
                        _ = &mut stop_rx => return,
                        inc = rx.recv() => match inc { Some(i) => i, None => return },
                    };
                    let Ok(env) = inc.frame else { continue };
                    let reply = script(n, &env.body);
                    n += 1;
                    rec.lock().unwrap().push(env.body);
                    let _ = router.send(&inc.identity, b"ctrl", &Envelope::new(env.request_id, reply)).await;
                }
            });
        });
        let endpoint = ep_rx.recv_timeout(Duration::from_secs(10)).expect("fake controller bound");
        FakeController { endpoint, received, shutdown: Some(stop_tx), thread: Some(thread) }
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Message> {
        self.received.lock().unwrap().clone()
    }

    /// Run `meshlift <args> --controller <this>` and wait for it.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--controller", &self.endpoint]);
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

/// Run the built `meshlift` binary with a fixed operator identity.
pub fn meshlift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshlift"))
        .args(args)
        .env("USER", "alice")
        .env("HOSTNAME", "noc1")
        .env_remove("MESHLIFT_CONTROLLER")
        .output()
        .expect("run meshlift")
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
