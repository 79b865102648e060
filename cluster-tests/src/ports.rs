//! Free loopback ports for test nodes, shared by every test harness in the workspace (the
//! node's and the CLI's integration tests and benches use it as a dev-dependency).

use std::collections::BTreeSet;
use std::sync::Mutex;

/// The lowest port the kernel hands out for outgoing connections (and for bind to port 0).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A port free on 127.0.0.1 now and never handed out twice by this process.
///
/// Ports come from below the kernel's ephemeral range when there is room: a node restarted
/// with its old ports must find them free, and no outgoing connection (of which the cluster
/// tests make many) ever takes a port from outside that range. Otherwise it binds port 0.
pub fn free_port() -> u16 {
    static HANDED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed = HANDED.lock().unwrap_or_else(|e| e.into_inner());
    const LOW: u16 = 10_000;
    let high = ephemeral_low();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 9);
    if high > LOW + 1000 {
        let span = u64::from(high - LOW);
        for step in 0..span {
            let p = LOW + ((seed + step * 7919) % span) as u16;
            if !handed.contains(&p) && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
                handed.insert(p);
                return p;
            }
        }
    }
    loop {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if handed.insert(p) {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    /// Ports are bindable when handed out and never handed out twice. Each is bound at once
    /// (and held). Another process on the machine may take a port between the hand-out and
    /// the bind (CI saw it right after the CLI suite's nodes were killed), so a few misses are
    /// allowed; handing out ports in use would miss nearly every time.
    #[test]
    fn free_ports_are_bindable_and_distinct() {
        let mut held = Vec::new();
        let mut missed = Vec::new();
        let ports: Vec<u16> = (0..50)
            .map(|_| {
                let p = super::free_port();
                match std::net::TcpListener::bind(("127.0.0.1", p)) {
                    Ok(l) => held.push(l),
                    Err(e) => missed.push(format!("{p}: {e}")),
                }
                p
            })
            .collect();
        let mut unique = ports.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port was handed out twice: {ports:?}"
        );
        assert!(
            missed.len() <= 5,
            "not bindable when handed out: {missed:?}"
        );
    }
}
