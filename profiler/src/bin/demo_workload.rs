//! The built-in demo workload for `cargo xtask demo`: a CPU-bound thread, a thread that sleeps
//! and wakes, and a small HTTP/1.1 endpoint with a client thread calling it, so every capability
//! of the profiler has something to observe.
//!
//! Usage: demo-workload [--seconds N] [--port P]   (defaults: run until killed, an ephemeral port)

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let seconds = value("--seconds");
    let port = value("--port").unwrap_or(0) as u16;

    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind HTTP endpoint");
    let addr = listener.local_addr().expect("local addr");
    println!(
        "demo-workload: pid {} serving http://{addr}/",
        std::process::id()
    );

    spawn("burner", burn);
    spawn("sleeper", || {
        loop {
            thread::sleep(Duration::from_millis(20));
        }
    });
    spawn("http-server", move || {
        for stream in listener.incoming().flatten() {
            thread::Builder::new()
                .name("http-conn".into())
                .spawn(move || serve(stream))
                .expect("spawn connection thread");
        }
    });
    spawn("http-client", move || client(addr));

    match seconds {
        Some(s) => thread::sleep(Duration::from_secs(s)),
        None => loop {
            thread::park();
        },
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn thread");
}

/// Busy work in slices, so the thread stays runnable but also yields the CPU now and then.
fn burn() {
    let mut x = 1u64;
    loop {
        let slice = Instant::now();
        while slice.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        thread::sleep(Duration::from_millis(5));
    }
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // Skip headers until the blank line.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        thread::sleep(Duration::from_millis(2)); // "inference"
        let body = "{\"ok\":true}\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn client(addr: std::net::SocketAddr) {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return;
    };
    let mut buf = [0u8; 512];
    loop {
        let req = format!("GET /v1/health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        if stream.write_all(req.as_bytes()).is_err() || stream.read(&mut buf).unwrap_or(0) == 0 {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
