//! Private instances of RabbitMQ, PostgreSQL and Redis for tests that stop, kill and restart
//! them: each on its own ports and data directory, so the machine's shared services (and every
//! other test) are never disturbed, and each is torn down when dropped, even after a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for_port(port: u16, up: bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if listening == up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} did not become {}",
            if up { "open" } else { "closed" }
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn scratch_dir(name: &str, owner: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("traceledger-chaos-{name}-{}", free_port()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    run(Command::new("chown")
        .arg("-R")
        .arg(format!("{owner}:{owner}"))
        .arg(&dir));
    dir
}

/// A RabbitMQ node of its own (the machine's RabbitMQ install, another node name and ports).
pub struct PrivateRabbit {
    node: String,
    dir: PathBuf,
    pub port: u16,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        let port = free_port();
        let dir = scratch_dir("rabbitmq", "rabbitmq");
        let node = format!("tlchaos{port}@localhost");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        run(Command::new("chown")
            .arg("-R")
            .arg("rabbitmq:rabbitmq")
            .arg(&dir));
        let rabbit = Self { node, dir, port };
        let mut start = Command::new("rabbitmq-server");
        start
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &rabbit.node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            .env("RABBITMQ_CONFIG_FILE", rabbit.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", rabbit.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", rabbit.dir.join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                rabbit.dir.join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", rabbit.dir.join("pid"));
        run(&mut start);
        wait_for_port(port, true, Duration::from_secs(60));
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `rabbitmqctl stop_app`: the node stays, the broker stops (connections are closed).
    pub fn stop_app(&self) {
        run(Command::new("rabbitmqctl").args(["-n", &self.node, "stop_app"]));
        wait_for_port(self.port, false, Duration::from_secs(30));
    }

    pub fn start_app(&self) {
        run(Command::new("rabbitmqctl").args(["-n", &self.node, "start_app"]));
        wait_for_port(self.port, true, Duration::from_secs(60));
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "shutdown"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL cluster of its own (the machine's binaries, a fresh data directory).
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .max()
            .expect("a PostgreSQL version");
        let postgres = Self {
            bin: version.join("bin"),
            dir: scratch_dir("postgres", "postgres"),
            port: free_port(),
        };
        postgres.as_postgres(
            "initdb",
            &[
                "-D",
                &postgres.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        postgres.pg_ctl("start");
        postgres
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops it (fast: connections are cut); `pg_ctl` returns once it is down.
    pub fn stop(&self) {
        self.pg_ctl("stop");
    }

    /// Starts it again after `stop`.
    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg_ctl(&self, action: &str) {
        // pg_stat_statements: tests count the statements the service sends.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 \
             -c shared_preload_libraries=pg_stat_statements",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-m",
                "fast",
                "-w",
                action,
            ],
        );
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(Path::new("/")));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server of its own, in memory only.
pub struct PrivateRedis {
    child: Option<Child>,
    pub port: u16,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: it loses everything it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port(self.port, false, Duration::from_secs(10));
    }

    pub fn restart(&mut self) {
        self.spawn();
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        wait_for_port(self.port, true, Duration::from_secs(10));
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
