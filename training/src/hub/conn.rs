//! Accepting connections and serving each one on its own thread, so a throttled
//! multi-gigabyte download never holds up other requests.

use std::io::{BufReader, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::http::{self, Incoming, Sent, Shaping};
use super::{lock, route, State};

/// How long a kept-alive connection may sit idle, or a request take to arrive.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one write may block on a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections beyond this are answered 503 and closed.
const MAX_CONNECTIONS: usize = 256;

/// Accepts until the server is stopping; errors such as running out of file
/// descriptors pause briefly and never end the loop.
pub(crate) fn accept_loop(listener: TcpListener, state: Arc<State>) {
    for incoming in listener.incoming() {
        if state.stopping.load(Ordering::SeqCst) {
            break;
        }
        match incoming {
            Ok(stream) => spawn(&state, stream),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A connection's entry in the server's registry, removed when the thread ends.
struct Registration {
    state: Arc<State>,
    id: u64,
}

impl Registration {
    fn new(state: &Arc<State>, stream: &TcpStream) -> Option<Registration> {
        let handle = stream.try_clone().ok()?;
        let mut conns = lock(&state.conns);
        if conns.len() >= MAX_CONNECTIONS {
            return None;
        }
        let id = state.next_conn.fetch_add(1, Ordering::SeqCst);
        conns.insert(id, handle);
        Some(Registration {
            state: Arc::clone(state),
            id,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.state.conns).remove(&self.id);
    }
}

fn spawn(state: &Arc<State>, stream: TcpStream) {
    let Some(registration) = Registration::new(state, &stream) else {
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let busy = route::reject(state, 503, "too many open connections");
        let _ = http::write_response(
            &mut &stream,
            busy,
            false,
            true,
            &Shaping::default(),
            &AtomicU64::new(0),
            &state.stopping,
        );
        return;
    };
    let conn_state = Arc::clone(state);
    // If the thread cannot start, the closure is dropped: the stream closes and
    // the registration removes itself.
    let _ = thread::Builder::new()
        .name("hub-conn".to_string())
        .spawn(move || {
            let _registration = registration;
            serve(&conn_state, stream);
        });
}

fn serve(state: &State, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = &stream;
    while !state.stopping.load(Ordering::SeqCst) {
        let request = match http::read_request(&mut reader, &mut out) {
            Incoming::Request(request) => request,
            Incoming::Closed => return,
            Incoming::Invalid { status, message } => {
                let response = route::reject(state, status, message);
                let none = Shaping::default();
                let sent = AtomicU64::new(0);
                let _ = http::write_response(
                    &mut out,
                    response,
                    false,
                    true,
                    &none,
                    &sent,
                    &state.stopping,
                );
                linger_close(&stream);
                return;
            }
        };
        let reply = route::handle(state, &request);
        let close = request.wants_close();
        let head_only = request.method == "HEAD";
        let end = http::write_response(
            &mut out,
            reply.response,
            head_only,
            close,
            &reply.shaping,
            &reply.sent,
            &state.stopping,
        );
        match end {
            Sent::Complete if !close => {}
            Sent::Complete | Sent::Cut => {
                linger_close(&stream);
                return;
            }
            Sent::Failed => return,
        }
    }
}

/// Sends FIN, then reads briefly what the client still sends, so that closing
/// does not turn into a reset that could destroy data the client has not read.
fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut scratch = [0u8; 4096];
    let mut drained = 0;
    let mut input = stream;
    while drained < 256 * 1024 {
        match input.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
