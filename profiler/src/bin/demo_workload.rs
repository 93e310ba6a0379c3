//! The built-in demo workload for `cargo xtask demo`: a CPU-bound thread, a thread that sleeps
//! and wakes, and a small HTTP/1.1 server with two client threads — one polling a JSON health
//! endpoint, one calling an OpenAI-style streaming completion endpoint (server-sent events: a
//! 30 ms "prefill", 16 tokens 8 ms apart, a `usage` event) — so every capability of the
//! profiler has something to observe. With `--cuda-driver PATH` (the stand-in libcuda.so.1 from
//! tests/cuda/, which `cargo xtask demo` builds) a "gpu" thread also runs a small inference loop
//! of CUDA driver calls (`demo_workload/gpu.rs`).
//!
//! Usage: demo-workload [--seconds N] [--port P] [--cuda-driver PATH]
//!        (defaults: run until killed, an ephemeral port, no CUDA)

#[path = "demo_workload/gpu.rs"]
mod gpu;

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
    let cuda_driver = args
        .iter()
        .position(|a| a == "--cuda-driver")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);

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
    spawn("llm-client", move || llm_client(addr));
    if let Some(driver) = cuda_driver {
        spawn("gpu", move || gpu::run(&driver));
    }

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
        // Headers until the blank line; a body only by Content-Length.
        let mut body_len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                body_len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; body_len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let ok = if request_line.starts_with("POST /v1/chat/completions") {
            stream_completion(&mut writer)
        } else {
            thread::sleep(Duration::from_millis(2)); // "inference"
            let body = "{\"ok\":true}\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            writer.write_all(response.as_bytes()).is_ok()
        };
        if !ok {
            return;
        }
    }
}

/// An OpenAI-style streamed completion: chunked `text/event-stream`, one write per event.
fn stream_completion(w: &mut TcpStream) -> bool {
    const TOKENS: usize = 16;
    let chunk = |w: &mut TcpStream, data: &str| {
        let event = format!("data: {data}\n\n");
        w.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
            .is_ok()
    };
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    if w.write_all(head.as_bytes()).is_err() {
        return false;
    }
    thread::sleep(Duration::from_millis(30)); // "prefill"
    for i in 0..TOKENS {
        if i > 0 {
            thread::sleep(Duration::from_millis(8)); // "decode"
        }
        let data = format!("{{\"choices\":[{{\"delta\":{{\"content\":\"tok{i}\"}}}}]}}");
        if !chunk(w, &data) {
            return false;
        }
    }
    let usage = format!(
        "{{\"choices\":[],\"usage\":{{\"prompt_tokens\":24,\"completion_tokens\":{TOKENS}}}}}"
    );
    chunk(w, &usage) && chunk(w, "[DONE]") && w.write_all(b"0\r\n\r\n").is_ok()
}

/// Calls the streaming endpoint every 200 ms on one keep-alive connection, reading each stream
/// to its last chunk.
fn llm_client(addr: std::net::SocketAddr) {
    let Ok(stream) = TcpStream::connect(addr) else {
        return;
    };
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    let body = r#"{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    loop {
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(req.as_bytes()).is_err() {
            return;
        }
        // Read lines until the terminating zero-size chunk and its blank line.
        let mut last_was_zero = false;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if last_was_zero && line == "\r\n" {
                break;
            }
            last_was_zero = line == "0\r\n";
        }
        thread::sleep(Duration::from_millis(200));
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
