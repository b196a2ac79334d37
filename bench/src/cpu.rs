//! Where the CPU went during a scenario, by process, from /proc: the API (with its worker),
//! PostgreSQL, RabbitMQ, Redis, the benchmark's own load, and everything else on the machine.
//! With `perf` unavailable here, this is the profile that tells which part saturates the cores.

use std::time::Instant;

/// Linux reports process times in clock ticks of 1/100 s (USER_HZ) on every common platform.
const TICKS_PER_SECOND: f64 = 100.0;

/// Cumulative CPU seconds at one moment.
#[derive(Clone, Copy, Default)]
pub struct CpuSample {
    at: Option<Instant>,
    api: f64,
    bench: f64,
    postgres: f64,
    rabbitmq: f64,
    redis: f64,
    machine: f64,
}

/// CPU seconds spent between two samples.
pub struct CpuUse {
    pub wall: f64,
    pub api: f64,
    pub bench: f64,
    pub postgres: f64,
    pub rabbitmq: f64,
    pub redis: f64,
    pub other: f64,
}

impl CpuSample {
    pub fn take(api_pid: Option<u32>) -> Self {
        let mut sample = Self {
            at: Some(Instant::now()),
            machine: machine_busy_seconds().unwrap_or(0.0),
            ..Self::default()
        };
        let own_pid = std::process::id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return sample;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Some((name, seconds)) = process_seconds(pid) else {
                continue;
            };
            let bucket = if Some(pid) == api_pid {
                &mut sample.api
            } else if pid == own_pid {
                &mut sample.bench
            } else {
                match name.as_str() {
                    "postgres" => &mut sample.postgres,
                    "beam.smp" | "erl_child_setup" | "epmd" => &mut sample.rabbitmq,
                    "redis-server" => &mut sample.redis,
                    _ => continue,
                }
            };
            *bucket += seconds;
        }
        sample
    }

    pub fn since(&self, earlier: &CpuSample) -> CpuUse {
        let wall = match (self.at, earlier.at) {
            (Some(now), Some(then)) => now.duration_since(then).as_secs_f64(),
            _ => 0.0,
        };
        let api = self.api - earlier.api;
        let bench = self.bench - earlier.bench;
        let postgres = self.postgres - earlier.postgres;
        let rabbitmq = self.rabbitmq - earlier.rabbitmq;
        let redis = self.redis - earlier.redis;
        let machine = self.machine - earlier.machine;
        CpuUse {
            wall,
            api,
            bench,
            postgres,
            rabbitmq,
            redis,
            other: (machine - api - bench - postgres - rabbitmq - redis).max(0.0),
        }
    }
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        write!(
            f,
            "CPU s over {:.1} s × {cores} cores: API {:.1}, PostgreSQL {:.1}, RabbitMQ {:.1}, \
             Redis {:.1}, load generator {:.1}, rest of the machine {:.1}",
            self.wall, self.api, self.postgres, self.rabbitmq, self.redis, self.bench, self.other
        )
    }
}

/// A process's command name and user + system CPU seconds, from /proc/<pid>/stat.
fn process_seconds(pid: u32) -> Option<(String, f64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(stat: &str) -> Option<(String, f64)> {
    // The name is in parentheses and may itself contain spaces or parentheses.
    let (head, tail) = stat.rsplit_once(") ")?;
    let name = head.split_once(" (")?.1.to_owned();
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, as in proc(5)).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS_PER_SECOND))
}

/// Busy CPU seconds of the whole machine (every core), from the first line of /proc/stat.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy: f64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::parse_stat;

    #[test]
    fn a_stat_line_gives_the_name_and_user_plus_system_seconds() {
        let line = "4242 (tokio (worker) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0";
        assert_eq!(parse_stat(line), Some(("tokio (worker) 1".to_owned(), 3.0)));
    }

    #[test]
    fn a_truncated_stat_line_gives_nothing() {
        assert_eq!(parse_stat("4242 (postgres) S 1 2"), None);
    }
}
