//! The real servers the HTTP end-to-end tests profile (nginx, Python's `http.server`, BusyBox
//! httpd, our hyper `http-server`), each stopped on Drop.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{TempDir, alive, children_of, free_port, read_jsonl, signal_pid, tool, wait_for_port};

/// nginx: a master and one worker (`daemon off`) on 127.0.0.1, serving [`STATIC_FILES`] and
/// `location = /fail { return 500; }`, keep-alive up to 1,000,000 requests per connection.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: TempDir,
    access_log: bool,
}

impl Nginx {
    /// Starts nginx serving `files`; with `access_log`, every request is logged to
    /// `access.log` in its directory (see [`Nginx::access_log_lines`]).
    pub fn start(files: &[(&str, usize)], access_log: bool) -> Self {
        let dir = TempDir::new(&format!("nginx-{}", free_port()));
        let root = dir.with_files("www", files);
        let port = free_port();
        let d = dir.path().display();
        let access = if access_log {
            format!("access_log {d}/access.log;")
        } else {
            "access_log off;".to_owned()
        };
        let conf = format!(
            "worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    {access}
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    sendfile on;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /fail {{ return 500; }}
    }}
}}
",
            root = root.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("nginx stderr");
        let mut child = Command::new(tool("nginx"))
            .arg("-e")
            .arg("stderr")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nginx");
        wait_for_port(port, &mut child, "nginx");
        let nginx = Self {
            child,
            port,
            dir,
            access_log,
        };
        // The worker must exist before the profiler attaches (it follows existing children).
        let deadline = Instant::now() + Duration::from_secs(10);
        while nginx.worker_pids().is_empty() {
            assert!(
                Instant::now() < deadline,
                "nginx started no worker: {}",
                nginx.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests logged so far (access log lines; nginx writes each one when the request ends).
    pub fn access_log_lines(&self) -> usize {
        assert!(self.access_log, "nginx started without access log");
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// What nginx printed on stderr (its error log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.worker_pids();
        // Fast shutdown: the master stops its workers and exits.
        signal_pid(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in workers {
            if alive(pid) {
                signal_pid(pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python's `http.server` (HTTP/1.0: one request per connection, a thread per connection).
pub struct PythonServer {
    child: Child,
    pub port: u16,
    stderr_path: PathBuf,
}

impl PythonServer {
    /// Serves `dir`; its request log (one line per request on stderr) goes to a file next to it.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        // Debian's interpreter rather than a version manager's shim script.
        let python = if Path::new("/usr/bin/python3").exists() {
            PathBuf::from("/usr/bin/python3")
        } else {
            tool("python3")
        };
        let stderr_path = dir.with_extension("python-stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("python stderr");
        let mut child = Command::new(python)
            .args(["-u", "-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start python3 -m http.server");
        wait_for_port(port, &mut child, "python3 -m http.server");
        Self {
            child,
            port,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests the server logged (`"GET /path HTTP/1.1" STATUS -` lines).
    pub fn logged_requests(&self) -> usize {
        std::fs::read_to_string(&self.stderr_path)
            .map(|s| s.lines().filter(|l| l.contains("\"GET ")).count())
            .unwrap_or(0)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// BusyBox's `httpd` in the foreground: a fork per connection (the child reads the request and
/// writes the response on the socket its parent accepted), HTTP/1.0-style one request per
/// connection, every request logged with `-vv` on stderr.
pub struct BusyboxHttpd {
    child: Child,
    pub port: u16,
    stderr_path: PathBuf,
}

impl BusyboxHttpd {
    /// Serves `dir` (`cargo xtask setup` installs busybox-static).
    pub fn start(dir: &Path) -> Self {
        let busybox = tool("busybox");
        let port = free_port();
        let stderr_path = dir.with_extension("httpd-stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("httpd stderr");
        let mut child = Command::new(busybox)
            .args(["httpd", "-f", "-vv", "-p"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-h")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start busybox httpd");
        wait_for_port(port, &mut child, "busybox httpd");
        Self {
            child,
            port,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Responses the server logged (`-vv`: one `response:200` line each).
    pub fn logged_responses(&self) -> usize {
        std::fs::read_to_string(&self.stderr_path)
            .map(|s| s.lines().filter(|l| l.contains("response:")).count())
            .unwrap_or(0)
    }
}

impl Drop for BusyboxHttpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// A binary of this package, built by cargo next to the test executables (`target/<profile>/`).
pub fn package_bin(name: &str) -> PathBuf {
    crate::workload_bin().with_file_name(name)
}

/// Our hyper server (`http-server`), logging ground truth per request (see its module docs).
pub struct HyperServer {
    child: Child,
    pub port: u16,
    dir: TempDir,
}

impl HyperServer {
    /// Starts `http-server --port 0 --fifo --log DIR/truth.jsonl ARGS` and waits for
    /// `listening on`. `--fifo` (SCHED_FIFO threads, so that their timestamps are not delayed
    /// by preemption; without root it only warns) makes its latencies agree with syscall-exit
    /// timestamps within a few µs.
    pub fn start(args: &[&str]) -> Self {
        let dir = TempDir::new(&format!("hyper-{}", free_port()));
        let mut child = Command::new(package_bin("http-server"))
            .args(["--port", "0", "--fifo", "--log"])
            .arg(dir.path().join("truth.jsonl"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start http-server");
        let stdout = child.stdout.take().expect("http-server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read http-server stdout");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("http-server said {line:?}"));
        Self { child, port, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn addr(&self) -> (&'static str, u16) {
        ("127.0.0.1", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Ground-truth lines written so far (a request's line is written when the next request on
    /// its connection starts or the connection closes).
    pub fn truth(&self) -> Vec<Value> {
        read_jsonl(&self.dir.path().join("truth.jsonl"))
    }

    /// Stops the server with SIGTERM (it writes the lines of connections still open) and
    /// returns every ground-truth line.
    pub fn stop(mut self) -> Vec<Value> {
        signal_pid(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > deadline => panic!("http-server ignored SIGTERM"),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        self.truth()
    }
}

impl Drop for HyperServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
