//! A wake-up pipe between the async side and a socket's I/O thread.
//!
//! The I/O thread sleeps in `zmq::poll` on its socket and on the read end of this pipe; a sender
//! queues a command on a channel, then writes one byte here. Writes never block (a full pipe
//! already means "wake up"), so the tokio side never waits on the thread.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// The writing end, shared by every handle of a socket.
#[derive(Clone)]
pub(crate) struct Waker(Arc<UnixStream>);

/// The reading end, owned by the I/O thread.
pub(crate) struct WakeReader(UnixStream);

pub(crate) fn pair() -> std::io::Result<(Waker, WakeReader)> {
    let (w, r) = UnixStream::pair()?;
    w.set_nonblocking(true)?;
    r.set_nonblocking(true)?;
    Ok((Waker(Arc::new(w)), WakeReader(r)))
}

impl Waker {
    pub(crate) fn wake(&self) {
        // WouldBlock: the pipe is full of wake-ups already; any other error: the thread is gone,
        // which the command channel reports to the sender.
        let _ = (&*self.0).write(&[1]);
    }
}

impl WakeReader {
    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Empty the pipe (one poll wake-up serves every command queued so far).
    pub(crate) fn drain(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = self.0.read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
    }
}
