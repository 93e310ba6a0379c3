//! A real OpenAI-compatible LLM server for end-to-end tests: llama-cpp-python's server
//! (FastAPI + uvicorn + sse-starlette around llama.cpp) on a tiny random-weight model the test
//! writes (tests/llm/make_model.py), driven by the official openai SDK (tests/llm/client.py).
//! The Python environment is `cargo xtask setup`'s `target/llm-venv`.

use std::{
    net::{Ipv4Addr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{http::free_port, record_skip};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The LLM environment's interpreter (`PROFILER_LLM_PYTHON`, else `target/llm-venv`); `None`
/// (the test recorded as skipped) when it is not installed.
pub fn llm_python(test: &str) -> Option<PathBuf> {
    let python = std::env::var_os("PROFILER_LLM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/llm-venv/bin/python"));
    if python.exists() {
        Some(python)
    } else {
        record_skip(
            test,
            &format!(
                "{} is missing: `cargo xtask setup` installs the LLM test environment",
                python.display()
            ),
        );
        None
    }
}

/// llama-cpp-python's server on 127.0.0.1, serving a fresh random-weight model.
pub struct LlamaServer {
    child: Child,
    pub port: u16,
    python: PathBuf,
    dir: PathBuf,
}

impl LlamaServer {
    pub fn start(python: &Path, dir: &Path) -> Self {
        let model = dir.join("tiny.gguf");
        let made = Command::new(python)
            .arg(workspace().join("tests/llm/make_model.py"))
            .arg(&model)
            .status()
            .expect("run make_model.py");
        assert!(made.success(), "make_model.py: {made}");
        let port = free_port();
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let mut child = Command::new(python)
            .args([
                "-m",
                "llama_cpp.server",
                "--host",
                "127.0.0.1",
                "--n_ctx",
                "512",
            ])
            .arg("--model")
            .arg(&model)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start llama_cpp.server");
        // Importing FastAPI and loading the model take seconds, more on a loaded CI machine.
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "llama_cpp.server exited before listening: {status}\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "llama_cpp.server not listening");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            python: python.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs the openai SDK client for `rounds` rounds of `max_tokens` tokens; its lines. The
    /// client runs in SCHED_FIFO (priority 1; root) so its own times are not those of a process
    /// waiting for a CPU that the server's generation and the profiler keep busy (2 cores).
    pub fn run_client(&self, rounds: u32, max_tokens: u32) -> Vec<Value> {
        let out = Command::new("chrt")
            .args(["-f", "1"])
            .arg(&self.python)
            .arg(workspace().join("tests/llm/client.py"))
            .arg(format!("http://127.0.0.1:{}/v1", self.port))
            .arg(rounds.to_string())
            .arg(max_tokens.to_string())
            .output()
            .expect("run client.py");
        assert!(
            out.status.success(),
            "client.py: {}\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("client line is JSON"))
            .collect()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
